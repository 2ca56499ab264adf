-- Behaviour prompts whose verdict the tuning changed (the first 20, changes for the worse
-- first), with the evidence each checker matched. Prompt texts are left out: harmful ones
-- are never shown, and the ids find the others in `prompts`.
select
    family,
    prompt_set,
    prompt_id,
    metric,
    base_verdict,
    tuned_verdict,
    base_evidence,
    tuned_evidence
from behaviour_items
where evaluation_id = $evaluation_id and changed
order by
    case
        when higher_is_better is null then 1
        when (tuned_value < base_value) = higher_is_better then 0
        else 2
    end,
    family, prompt_set, prompt_id, metric
limit 20
