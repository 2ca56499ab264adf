-- One example per failure mode: a flagged answer of the tuned model where there is one (the
-- first by prompt id), else of the base model. Prompts flagged harmful (prompts.harmful, or
-- a set named 'harmful') keep only their id: their text and the answer's evidence are never
-- shown.
with

generation_failures as (
    select * from generation_failures where evaluation_id = $evaluation_id
),

prompts as (
    select * from prompts where evaluation_id = $evaluation_id
),

flagged as (
    select
        generation_failures.mode,
        coalesce(prompts.category, '') as category,
        generation_failures.variant,
        generation_failures.prompt_id,
        generation_failures.instruction_id,
        coalesce(prompts.harmful, false) or coalesce(prompts.source, '') = 'harmful' as withheld,
        prompts.messages -> -1 ->> 'content' as prompt,
        generation_failures.evidence
    from generation_failures
    left join prompts
        on generation_failures.prompt_id = prompts.prompt_id
)

select
    mode,
    category,
    variant,
    prompt_id,
    instruction_id,
    withheld,
    case when withheld then null else prompt end as prompt,
    case when withheld then null else evidence end as evidence
from flagged
qualify row_number() over (
    partition by mode order by variant desc, prompt_id, instruction_id
) = 1
order by mode
