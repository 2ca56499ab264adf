-- The capability gate's verdicts, failures first.
select * exclude (run_id)
from capability_gate
where run_id = $run_id
order by failed desc, task, metric
