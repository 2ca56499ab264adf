-- Contamination summary: per evaluation and eval set (a prompt set or a capability task), how
-- many items were checked against the run's training data, how many share a 13-gram with it
-- (contaminated) and their share of the items; unchecked counts items too short to check
-- (under 8 words per text). example_item_id and example_ngram show the first contaminated item.
create or replace view contamination_summary as

with

contamination as (
    select * from contamination
),

per_set as (
    select
        evaluation_id,
        run_id,
        kind,
        eval_set,
        count(*) as items,
        count(*) filter (where ngrams = 0) as unchecked,
        count(*) filter (where contaminated) as contaminated,
        min(item_id) filter (where contaminated) as example_item_id,
        arg_min(example_ngram, item_id) filter (where contaminated) as example_ngram
    from contamination
    group by evaluation_id, run_id, kind, eval_set
)

select
    evaluation_id,
    run_id,
    kind,
    eval_set,
    items,
    unchecked,
    contaminated,
    contaminated / items as contaminated_share,
    example_item_id,
    example_ngram
from per_set
