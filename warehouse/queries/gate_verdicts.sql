-- The regression gate's verdict per gated comparison (eval.gate_families: capability per task,
-- behaviour families per prompt set), failures first, latest evaluation first.
select
    gate_verdicts.evaluation_id,
    gate_verdicts.run_id,
    family,
    slice,
    metric,
    case when higher_is_better then 'higher' else 'lower' end as better,
    round(delta, 3) as delta,
    round(ci_low, 3) as ci_low,
    round(ci_high, 3) as ci_high,
    lost,
    gained,
    round(p_value, 4) as p,
    alpha,
    max_drop,
    require_ci,
    failed
from gate_verdicts
left join evaluations on gate_verdicts.evaluation_id = evaluations.evaluation_id
order by evaluations.started_at desc nulls last, gate_verdicts.evaluation_id, failed desc,
    family, slice, metric
