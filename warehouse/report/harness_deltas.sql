-- lm-evaluation-harness results per task and metric, base vs tuned.
select * exclude (run_id)
from harness_deltas
where run_id = $run_id
order by task, metric
