-- Did tuning cost general capability? Accuracy change per task with its 95 % CI, latest evaluation
-- first.
select
    capability_preservation.evaluation_id,
    capability_preservation.run_id,
    task,
    n,
    round(base_acc, 3) as base_acc,
    round(tuned_acc, 3) as tuned_acc,
    round(delta_acc, 3) as delta_acc,
    round(delta_acc_ci_low, 3) as ci_low,
    round(delta_acc_ci_high, 3) as ci_high,
    round(delta_acc_norm, 3) as delta_acc_norm,
    round(delta_acc_norm_ci_low, 3) as norm_ci_low,
    round(delta_acc_norm_ci_high, 3) as norm_ci_high
from capability_preservation
left join evaluations on capability_preservation.evaluation_id = evaluations.evaluation_id
order by evaluations.started_at desc nulls last, capability_preservation.evaluation_id, task
