-- lm-evaluation-harness results per task and metric, base vs tuned.
select * exclude (evaluation_id, run_id)
from harness_deltas
where evaluation_id = $evaluation_id
order by task, metric
