-- Did tuning reach the goal? Mean score of base and tuned per domain and metric, the change
-- with its interval, p, p adjusted over the evaluation's comparisons and the minimum
-- detectable effect, latest evaluation first.
select
    goal_improvement.evaluation_id,
    goal_improvement.run_id,
    domain,
    metric,
    n,
    round(base_mean, 3) as base_mean,
    round(tuned_mean, 3) as tuned_mean,
    round(delta, 3) as delta,
    round(ci_low, 3) as ci_low,
    round(ci_high, 3) as ci_high,
    round(p_value, 4) as p,
    round(p_adjusted, 4) as p_adjusted,
    round(mde, 3) as mde
from goal_improvement
left join evaluations on goal_improvement.evaluation_id = evaluations.evaluation_id
order by evaluations.started_at desc nulls last, goal_improvement.evaluation_id, domain, metric
