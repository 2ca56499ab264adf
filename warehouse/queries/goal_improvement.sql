-- Did tuning reach the goal? Mean score of base and tuned per domain and metric, latest run
-- first.
select
    goal_improvement.run_id,
    domain,
    metric,
    n,
    round(base_mean, 3) as base_mean,
    round(tuned_mean, 3) as tuned_mean,
    round(delta, 3) as delta
from goal_improvement
left join runs on goal_improvement.run_id = runs.run_id
order by runs.started_at desc nulls last, goal_improvement.run_id, domain, metric
