-- Every base-vs-tuned comparison with its test: the significant ones (adjusted p below 0.05)
-- first, latest evaluation first.
select
    comparisons.evaluation_id,
    family,
    metric,
    slice,
    n,
    excluded,
    round(base, 4) as base,
    round(tuned, 4) as tuned,
    round(delta, 4) as delta,
    round(ci_low, 4) as ci_low,
    round(ci_high, 4) as ci_high,
    test,
    round(p_value, 4) as p,
    round(p_adjusted, 4) as p_adjusted,
    correction,
    round(mde, 4) as mde
from comparisons
left join evaluations on comparisons.evaluation_id = evaluations.evaluation_id
order by evaluations.started_at desc nulls last, comparisons.evaluation_id,
    p_adjusted < 0.05 desc, p_adjusted, family, metric, slice
