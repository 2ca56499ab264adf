-- lm-eval tasks: change per task and metric (tuned - base) with its 95 % CI, latest evaluation first.
select
    harness_deltas.evaluation_id,
    harness_deltas.run_id,
    task,
    metric,
    base_n as n,
    round(base_value, 3) as base,
    round(tuned_value, 3) as tuned,
    round(delta, 3) as delta,
    round(delta_ci_low, 3) as ci_low,
    round(delta_ci_high, 3) as ci_high,
    lm_eval_version
from harness_deltas
left join evaluations on harness_deltas.evaluation_id = evaluations.evaluation_id
order by evaluations.started_at desc nulls last, harness_deltas.evaluation_id, task, metric
