-- Is the model's confidence on multiple choice as good a guide as before tuning? Per
-- evaluation, task and variant: accuracy, mean confidence, expected calibration error and
-- Brier score (lower is better for both), latest evaluation first. `reliability_bins` holds
-- the reliability diagram; comparisons (family 'calibration') the base-vs-tuned tests.
select
    calibration.evaluation_id,
    calibration.run_id,
    task,
    variant,
    n,
    round(accuracy, 3) as accuracy,
    round(mean_confidence, 3) as mean_confidence,
    round(ece, 4) as ece,
    round(brier, 4) as brier
from calibration
left join evaluations on calibration.evaluation_id = evaluations.evaluation_id
order by evaluations.started_at desc nulls last, calibration.evaluation_id, task, variant
