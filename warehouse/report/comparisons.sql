-- Every base-vs-tuned comparison of the evaluation, by family: the HTML report's forest plot
-- and limitations read these rows (a new family appears here as soon as it is compared);
-- higher_is_better gives each its good direction (null: none).
select
    family,
    metric,
    slice,
    n,
    excluded,
    base,
    tuned,
    delta,
    ci_low,
    ci_high,
    confidence,
    interval,
    test,
    p_value,
    p_adjusted,
    correction,
    mde,
    higher_is_better
from comparisons
where evaluation_id = $evaluation_id
order by family, metric, slice
