-- Goal improvement: per run, prompt domain and metric, the mean score of base and of tuned on
-- the same prompts, and the difference tuned - base. Prompts scored for one variant only are
-- left out, so both means cover the same prompts.
create or replace view goal_improvement as

with

scores as (
    select * from scores
),

prompts as (
    select * from prompts
),

base as (
    select run_id, prompt_id, metric, value
    from scores
    where variant = 'base'
),

tuned as (
    select run_id, prompt_id, metric, value
    from scores
    where variant = 'tuned'
),

paired as (
    select
        base.run_id,
        prompts.domain,
        base.metric,
        base.value as base_value,
        tuned.value as tuned_value
    from base
    inner join tuned
        on base.run_id = tuned.run_id
        and base.prompt_id = tuned.prompt_id
        and base.metric = tuned.metric
    left join prompts
        on base.run_id = prompts.run_id
        and base.prompt_id = prompts.prompt_id
),

per_metric as (
    select
        run_id,
        domain,
        metric,
        count(*) as n,
        avg(base_value) as base_mean,
        avg(tuned_value) as tuned_mean
    from paired
    group by run_id, domain, metric
)

select
    run_id,
    domain,
    metric,
    n,
    base_mean,
    tuned_mean,
    tuned_mean - base_mean as delta
from per_metric
