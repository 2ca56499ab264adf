-- Failure modes: per run, mode, broken instruction (format violations only) and prompt
-- category, how many generations of base and of tuned show the mode, and what fraction of
-- that category's generations that is. One generation can show several modes.
create or replace view failure_modes as

with

generation_failures as (
    select * from generation_failures
),

generations as (
    select * from generations
),

prompts as (
    select * from prompts
),

generated as (
    select
        generations.evaluation_id,
        generations.run_id,
        coalesce(prompts.category, '') as category,
        count(*) filter (where generations.variant = 'base') as base_generations,
        count(*) filter (where generations.variant = 'tuned') as tuned_generations
    from generations
    left join prompts
        on generations.evaluation_id = prompts.evaluation_id
        and generations.prompt_id = prompts.prompt_id
    group by generations.evaluation_id, generations.run_id, coalesce(prompts.category, '')
),

counts as (
    select
        generation_failures.evaluation_id,
        generation_failures.run_id,
        generation_failures.mode,
        generation_failures.instruction_id,
        coalesce(prompts.category, '') as category,
        count(*) filter (where generation_failures.variant = 'base') as base_count,
        count(*) filter (where generation_failures.variant = 'tuned') as tuned_count
    from generation_failures
    left join prompts
        on generation_failures.evaluation_id = prompts.evaluation_id
        and generation_failures.prompt_id = prompts.prompt_id
    group by all
)

select
    counts.evaluation_id,
    counts.run_id,
    counts.mode,
    counts.instruction_id,
    counts.category,
    counts.base_count,
    counts.tuned_count,
    counts.tuned_count - counts.base_count as delta,
    counts.base_count / nullif(generated.base_generations, 0) as base_rate,
    counts.tuned_count / nullif(generated.tuned_generations, 0) as tuned_rate
from counts
left join generated
    on counts.evaluation_id = generated.evaluation_id
    and counts.category = generated.category
