-- The first three prompts of each domain, base and tuned answers side by side. Behaviour
-- prompts have their own sections (and answers to harmful requests are not shown).
with

run_prompts as (
    select * from prompts where evaluation_id = $evaluation_id and behaviour_family is null
),

run_generations as (
    select * from generations where evaluation_id = $evaluation_id
),

side_by_side as (
    select
        prompts.domain,
        prompts.prompt_id,
        base.output_text as base_output,
        tuned.output_text as tuned_output
    from run_prompts as prompts
    join run_generations as base on base.prompt_id = prompts.prompt_id and base.variant = 'base'
    join run_generations as tuned on tuned.prompt_id = prompts.prompt_id and tuned.variant = 'tuned'
)

select *
from side_by_side
qualify row_number() over (partition by domain order by prompt_id) <= 3
order by domain, prompt_id
