-- Regressions: every prompt and pass/fail metric (one whose values are all 0 or 1) that base
-- passed (1) and tuned failed (0), with the prompt and both outputs.
create or replace view regressions as

with

scores as (
    select * from scores
),

paired_scores as (
    select * from paired_scores
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

regressed as (
    select evaluation_id, run_id, domain, category, prompt_id, metric
    from paired_scores
    where base_value = 1 and tuned_value = 0
        and metric in (select metric from pass_fail_metrics)
),

base_outputs as (
    select evaluation_id, run_id, prompt_id, prompt_text, output_text
    from generations
    where variant = 'base'
),

tuned_outputs as (
    select evaluation_id, run_id, prompt_id, prompt_text, output_text
    from generations
    where variant = 'tuned'
)

select
    regressed.evaluation_id,
    regressed.run_id,
    regressed.domain,
    regressed.category,
    regressed.prompt_id,
    regressed.metric,
    coalesce(base_outputs.prompt_text, tuned_outputs.prompt_text) as prompt_text,
    base_outputs.output_text as base_output,
    tuned_outputs.output_text as tuned_output
from regressed
left join base_outputs
    on regressed.evaluation_id = base_outputs.evaluation_id
    and regressed.prompt_id = base_outputs.prompt_id
left join tuned_outputs
    on regressed.evaluation_id = tuned_outputs.evaluation_id
    and regressed.prompt_id = tuned_outputs.prompt_id
