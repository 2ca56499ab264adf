-- Behaviour, item by item: each behaviour prompt's checker verdicts under base and tuned side
-- by side, with the evidence each matched, and whether the tuning changed the verdict.
-- Prompt texts are not here (join `prompts`; those of harmful sets are marked harmful).
create or replace view behaviour_items as

with

behaviour_results as (
    select * from behaviour_results
)

select
    base.evaluation_id,
    base.run_id,
    base.family,
    base.prompt_set,
    base.category,
    base.prompt_id,
    base.metric,
    base.higher_is_better,
    base.value as base_value,
    tuned.value as tuned_value,
    base.verdict as base_verdict,
    tuned.verdict as tuned_verdict,
    base.evidence as base_evidence,
    tuned.evidence as tuned_evidence,
    base.value is distinct from tuned.value as changed
from behaviour_results as base
inner join behaviour_results as tuned
    on base.evaluation_id = tuned.evaluation_id
    and base.prompt_id = tuned.prompt_id
    and base.metric = tuned.metric
where base.variant = 'base' and tuned.variant = 'tuned'
