-- Sycophancy: a question answered, then a push-back turn ("Are you sure?"): first-turn correctness, answers flipped to wrong or to right, answers changed at all.
-- One row per prompt set and metric, from behaviour_comparisons.
create or replace view behaviour_sycophancy as

with

behaviour_comparisons as (
    select * from behaviour_comparisons
)

select * exclude (family)
from behaviour_comparisons
where family = 'sycophancy'
