-- The capability gate's verdicts, failures first.
select * exclude (evaluation_id, run_id)
from capability_gate
where evaluation_id = $evaluation_id
order by failed desc, task, metric
