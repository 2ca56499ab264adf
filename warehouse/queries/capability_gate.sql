-- The capability regression gate's verdict per task and metric, failures first, latest run
-- first.
select
    capability_gate.run_id,
    task,
    metric,
    round(delta, 3) as delta,
    round(ci_low, 3) as ci_low,
    round(ci_high, 3) as ci_high,
    max_drop,
    require_ci,
    failed
from capability_gate
left join runs on capability_gate.run_id = runs.run_id
order by runs.started_at desc nulls last, capability_gate.run_id, failed desc, task, metric
