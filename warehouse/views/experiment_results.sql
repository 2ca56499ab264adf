-- Experiment results in one long table: for every member run of an experiment, each of its
-- base-vs-tuned comparisons (tuning goal per domain and metric, capability per task, ...)
-- with its interval, p and adjusted p and minimum detectable effect, next to the swept
-- parameter's value. Pivot or filter it to compare the values.
create or replace view experiment_results as

with

experiments as (
    select * from experiments
),

comparisons as (
    select * from comparisons
)

select
    experiments.experiment_id,
    experiments.parameter,
    experiments.position,
    experiments.value,
    experiments.lora_rank,
    experiments.lora_scale,
    comparisons.evaluation_id,
    comparisons.run_id,
    comparisons.family as kind,
    comparisons.slice as subject,
    comparisons.metric,
    comparisons.n,
    comparisons.base,
    comparisons.tuned,
    comparisons.delta,
    comparisons.ci_low,
    comparisons.ci_high,
    comparisons.p_value,
    comparisons.p_adjusted,
    comparisons.mde
from experiments
inner join comparisons
    on experiments.run_id = comparisons.run_id
