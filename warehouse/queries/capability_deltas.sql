-- Did tuning cost general capability? Accuracy change per task and metric with its interval,
-- the items lost and gained, the exact McNemar p (and adjusted over the evaluation's
-- comparisons) and the minimum detectable effect, latest evaluation first.
select
    capability_preservation.evaluation_id,
    capability_preservation.run_id,
    task,
    metric,
    n,
    round(base_acc, 3) as base_acc,
    round(tuned_acc, 3) as tuned_acc,
    round(delta, 3) as delta,
    round(ci_low, 3) as ci_low,
    round(ci_high, 3) as ci_high,
    lost,
    gained,
    round(p_value, 4) as p,
    round(p_adjusted, 4) as p_adjusted,
    round(mde, 3) as mde
from capability_preservation
left join evaluations on capability_preservation.evaluation_id = evaluations.evaluation_id
order by evaluations.started_at desc nulls last, capability_preservation.evaluation_id, task,
    metric
