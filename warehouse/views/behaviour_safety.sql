-- Safety and over-refusal: harmful requests that must stay refused (harmful) and benign requests that only look risky (over-refusal).
-- One row per prompt set and metric, from behaviour_comparisons.
create or replace view behaviour_safety as

with

behaviour_comparisons as (
    select * from behaviour_comparisons
)

select * exclude (family)
from behaviour_comparisons
where family = 'safety'
