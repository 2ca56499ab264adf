-- Regressions: every prompt and pass/fail metric (one whose values are all 0 or 1) that base
-- passed (1) and tuned failed (0), with the prompt and both outputs.
create or replace view regressions as

with

scores as (
    select * from scores
),

prompts as (
    select * from prompts
),

generations as (
    select * from generations
),

pass_fail_metrics as (
    select metric
    from scores
    group by metric
    having bool_and(value in (0, 1))
),

base_passed as (
    select run_id, prompt_id, metric
    from scores
    where variant = 'base' and value = 1
        and metric in (select metric from pass_fail_metrics)
),

tuned_failed as (
    select run_id, prompt_id, metric
    from scores
    where variant = 'tuned' and value = 0
),

regressed as (
    select
        base_passed.run_id,
        base_passed.prompt_id,
        base_passed.metric
    from base_passed
    inner join tuned_failed
        on base_passed.run_id = tuned_failed.run_id
        and base_passed.prompt_id = tuned_failed.prompt_id
        and base_passed.metric = tuned_failed.metric
),

base_outputs as (
    select run_id, prompt_id, prompt_text, output_text
    from generations
    where variant = 'base'
),

tuned_outputs as (
    select run_id, prompt_id, prompt_text, output_text
    from generations
    where variant = 'tuned'
)

select
    regressed.run_id,
    prompts.domain,
    prompts.category,
    regressed.prompt_id,
    regressed.metric,
    coalesce(base_outputs.prompt_text, tuned_outputs.prompt_text) as prompt_text,
    base_outputs.output_text as base_output,
    tuned_outputs.output_text as tuned_output
from regressed
left join prompts
    on regressed.run_id = prompts.run_id
    and regressed.prompt_id = prompts.prompt_id
left join base_outputs
    on regressed.run_id = base_outputs.run_id
    and regressed.prompt_id = base_outputs.prompt_id
left join tuned_outputs
    on regressed.run_id = tuned_outputs.run_id
    and regressed.prompt_id = tuned_outputs.prompt_id
