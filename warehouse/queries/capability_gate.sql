-- The capability regression gate's verdict per task and metric, failures first, latest evaluation
-- first.
select
    capability_gate.evaluation_id,
    capability_gate.run_id,
    task,
    metric,
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
from capability_gate
left join evaluations on capability_gate.evaluation_id = evaluations.evaluation_id
order by evaluations.started_at desc nulls last, capability_gate.evaluation_id, failed desc, task, metric
