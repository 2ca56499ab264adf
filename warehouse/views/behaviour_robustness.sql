-- Robustness: instructions hidden in a user's document (injection), system rules the user pushes against (system-conflict), a fact deep in a long input (long-input), questions in other languages (multilingual).
-- One row per prompt set and metric, from behaviour_comparisons.
create or replace view behaviour_robustness as

with

behaviour_comparisons as (
    select * from behaviour_comparisons
)

select * exclude (family)
from behaviour_comparisons
where family = 'robustness'
