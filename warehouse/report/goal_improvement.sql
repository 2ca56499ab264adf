-- Tuning goal: mean score per domain and metric, base vs tuned.
select * exclude (evaluation_id, run_id)
from goal_improvement
where evaluation_id = $evaluation_id
order by domain, metric
