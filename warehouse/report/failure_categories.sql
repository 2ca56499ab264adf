-- Failure modes per prompt category: the share of the category's answers showing each mode,
-- base and tuned (an answer counts once per mode, however many instructions it broke).
with

generation_failures as (
    select * from generation_failures where evaluation_id = $evaluation_id
),

generations as (
    select * from generations where evaluation_id = $evaluation_id
),

prompts as (
    select * from prompts where evaluation_id = $evaluation_id
),

answers as (
    select coalesce(prompts.category, '') as category, generations.variant, count(*) as n
    from generations
    left join prompts
        on generations.prompt_id = prompts.prompt_id
    group by all
),

flagged as (
    select
        generation_failures.mode,
        coalesce(prompts.category, '') as category,
        generation_failures.variant,
        count(distinct generation_failures.prompt_id) as answers
    from generation_failures
    left join prompts
        on generation_failures.prompt_id = prompts.prompt_id
    group by all
)

select
    flagged.mode,
    flagged.category,
    max(answers.n) as n,
    coalesce(sum(flagged.answers / answers.n) filter (where flagged.variant = 'base'), 0)
        as base_rate,
    coalesce(sum(flagged.answers / answers.n) filter (where flagged.variant = 'tuned'), 0)
        as tuned_rate
from flagged
inner join answers
    on flagged.category = answers.category
    and flagged.variant = answers.variant
group by flagged.mode, flagged.category
order by flagged.mode, flagged.category
