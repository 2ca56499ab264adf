-- Experiment results in one long table: for every member run of an experiment, its tuning-goal
-- deltas (per domain and metric) and capability deltas (per task, with the paired 95 % CI),
-- next to the swept parameter's value. Pivot or filter it to compare the values.
create or replace view experiment_results as

with

experiments as (
    select * from experiments
),

goal as (
    select
        evaluation_id,
        run_id,
        'goal' as kind,
        domain as subject,
        metric,
        base_mean as base,
        tuned_mean as tuned,
        delta,
        null::double as ci_low,
        null::double as ci_high
    from goal_improvement
),

capability as (
    select
        evaluation_id,
        run_id,
        'capability' as kind,
        task as subject,
        'acc' as metric,
        base_acc as base,
        tuned_acc as tuned,
        delta_acc as delta,
        delta_acc_ci_low as ci_low,
        delta_acc_ci_high as ci_high
    from capability_preservation
),

results as (
    select * from goal
    union all
    select * from capability
)

select
    experiments.experiment_id,
    experiments.parameter,
    experiments.position,
    experiments.value,
    experiments.lora_rank,
    experiments.lora_scale,
    results.*
from experiments
inner join results
    on experiments.run_id = results.run_id
