-- Knowing what it does not know: closed-book questions (knowledge: correct, abstained, confident_wrong, hedged) and false premises (false-premise: premise corrected or accepted).
-- One row per prompt set and metric, from behaviour_comparisons.
create or replace view behaviour_epistemic as

with

behaviour_comparisons as (
    select * from behaviour_comparisons
)

select * exclude (family)
from behaviour_comparisons
where family = 'epistemic'
