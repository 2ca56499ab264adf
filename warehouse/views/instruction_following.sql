-- Instruction following: the mean of each metric per run, variant and prompt domain.
-- Scores whose prompt is missing from prompts are kept, with a null domain.
create or replace view instruction_following as

with

scores as (
    select * from scores
),

prompts as (
    select * from prompts
),

scored as (
    select
        scores.run_id,
        scores.variant,
        prompts.domain,
        scores.metric,
        scores.value
    from scores
    left join prompts
        on scores.run_id = prompts.run_id
        and scores.prompt_id = prompts.prompt_id
)

select
    run_id,
    variant,
    domain,
    metric,
    count(*) as n,
    avg(value) as mean_value
from scored
group by run_id, variant, domain, metric
