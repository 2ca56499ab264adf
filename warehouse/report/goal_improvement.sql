-- Tuning goal: mean score per domain and metric, base vs tuned.
select * exclude (run_id)
from goal_improvement
where run_id = $run_id
order by domain, metric
