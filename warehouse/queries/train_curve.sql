-- Train and validation loss per step of the latest run that has training metrics.
with

runs as (
    select * from runs
),

train_metrics as (
    select * from train_metrics
),

latest_run as (
    select runs.run_id
    from runs
    where runs.run_id in (select run_id from train_metrics)
    order by runs.started_at desc nulls last
    limit 1
)

select
    train_metrics.run_id,
    train_metrics.step,
    max(train_metrics.loss) filter (where train_metrics.split = 'train') as train_loss,
    max(train_metrics.loss) filter (where train_metrics.split = 'valid') as valid_loss,
    max(train_metrics.learning_rate) as learning_rate,
    max(train_metrics.tokens_per_second) as tokens_per_second
from train_metrics
inner join latest_run on train_metrics.run_id = latest_run.run_id
group by train_metrics.run_id, train_metrics.step
order by train_metrics.step
