-- Paired scores: per run, prompt and metric, the base and the tuned score of the same prompt
-- side by side, with the prompt's domain and category. Prompts scored for one variant only
-- are left out, so every comparison built on this covers the same prompts for both.
create or replace view paired_scores as

with

scores as (
    select * from scores
),

prompts as (
    select * from prompts
),

base as (
    select evaluation_id, run_id, prompt_id, metric, value
    from scores
    where variant = 'base'
),

tuned as (
    select evaluation_id, run_id, prompt_id, metric, value
    from scores
    where variant = 'tuned'
)

select
    base.evaluation_id,
    base.run_id,
    base.prompt_id,
    prompts.domain,
    prompts.category,
    base.metric,
    base.value as base_value,
    tuned.value as tuned_value,
    tuned.value - base.value as diff
from base
inner join tuned
    on base.evaluation_id = tuned.evaluation_id
    and base.prompt_id = tuned.prompt_id
    and base.metric = tuned.metric
left join prompts
    on base.evaluation_id = prompts.evaluation_id
    and base.prompt_id = prompts.prompt_id
