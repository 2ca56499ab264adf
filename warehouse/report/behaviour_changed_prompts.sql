-- Behaviour prompts whose verdict the tuning changed, per family (the first 20 of each,
-- changes for the worse first), with the prompt's last user turn and the evidence each
-- checker matched; `changed` counts the family's changed verdicts. Prompts flagged harmful
-- (prompts.harmful, or a set named 'harmful') keep only their id: their text is never shown.
with

behaviour_items as (
    select * from behaviour_items where evaluation_id = $evaluation_id and changed
),

prompts as (
    select * from prompts where evaluation_id = $evaluation_id
),

joined as (
    select
        behaviour_items.*,
        coalesce(prompts.harmful, false) or behaviour_items.prompt_set = 'harmful' as withheld,
        prompts.messages -> -1 ->> 'content' as prompt,
        case
            when behaviour_items.higher_is_better is null then 1
            when (behaviour_items.tuned_value < behaviour_items.base_value)
                = behaviour_items.higher_is_better then 0
            else 2
        end as direction
    from behaviour_items
    left join prompts
        on behaviour_items.prompt_id = prompts.prompt_id
)

select
    family,
    prompt_set,
    prompt_id,
    metric,
    case direction when 0 then 'worse' when 2 then 'better' end as change,
    base_verdict,
    tuned_verdict,
    base_evidence,
    tuned_evidence,
    withheld,
    case when withheld then null else prompt end as prompt,
    count(*) over (partition by family) as changed
from joined
qualify row_number() over (
    partition by family order by direction, prompt_set, prompt_id, metric
) <= 20
order by family, direction, prompt_set, prompt_id, metric
