-- Did tuning reach the goal? Mean score of base and tuned per domain and metric, latest evaluation
-- first.
select
    goal_improvement.evaluation_id,
    goal_improvement.run_id,
    domain,
    metric,
    n,
    round(base_mean, 3) as base_mean,
    round(tuned_mean, 3) as tuned_mean,
    round(delta, 3) as delta
from goal_improvement
left join evaluations on goal_improvement.evaluation_id = evaluations.evaluation_id
order by evaluations.started_at desc nulls last, goal_improvement.evaluation_id, domain, metric
