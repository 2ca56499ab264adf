-- Domain transfer: the matrix of a domain experiment (`lorascope experiment domains`). Each
-- member run is tuned on its own domain (trained_domain, the member's config name) and
-- evaluated on every member's domain (evaluated_domain): that member's eval.prompts scored
-- with that member's eval.goal. One row per trained domain, evaluated domain and
-- base-vs-tuned comparison (goal per slice and metric, capability, test loss, instruction
-- following, failure modes, calibration, behaviour families ...), with its interval, p,
-- adjusted p (within its evaluation) and minimum detectable effect. The diagonal
-- (trained = evaluated) is the in-domain gain; off it, the gain or loss on another domain.
-- An evaluation of a member run counts as evaluated on a member's domain when its
-- eval.prompts and eval.goal are that member's; of several, the newest completed one.
create or replace view domain_transfer as

with

experiments as (
    select * from experiments
),

runs as (
    select * from runs
),

evaluations as (
    select * from evaluations
),

comparisons as (
    select * from comparisons
),

members as (
    select
        experiments.experiment_id,
        experiments.run_id,
        experiments.position,
        experiments.value as domain,
        (runs.config_json -> '$.eval.prompts')::varchar as prompts,
        (runs.config_json -> '$.eval.goal')::varchar as goal
    from experiments
    inner join runs
        on experiments.run_id = runs.run_id
    where experiments.parameter = 'domain'
),

cells as (
    select
        trained.experiment_id,
        trained.domain as trained_domain,
        trained.position as trained_position,
        evaluated.domain as evaluated_domain,
        evaluated.position as evaluated_position,
        evaluations.evaluation_id
    from members as trained
    inner join evaluations
        on trained.run_id = evaluations.run_id
    inner join members as evaluated
        on trained.experiment_id = evaluated.experiment_id
        and (evaluations.eval_config -> '$.prompts')::varchar = evaluated.prompts
        and (evaluations.eval_config -> '$.goal')::varchar = evaluated.goal
    where evaluations.status = 'completed'
    qualify row_number() over (
        partition by trained.experiment_id, trained.run_id, evaluated.run_id
        order by evaluations.started_at desc
    ) = 1
)

select
    cells.experiment_id,
    cells.trained_domain,
    cells.evaluated_domain,
    cells.trained_position,
    cells.evaluated_position,
    cells.trained_domain = cells.evaluated_domain as same_domain,
    cells.evaluation_id,
    comparisons.run_id,
    comparisons.family,
    comparisons.slice,
    comparisons.metric,
    comparisons.n,
    comparisons.base,
    comparisons.tuned,
    comparisons.delta,
    comparisons.ci_low,
    comparisons.ci_high,
    comparisons.test,
    comparisons.p_value,
    comparisons.p_adjusted,
    comparisons.mde
from cells
inner join comparisons
    on cells.evaluation_id = comparisons.evaluation_id
