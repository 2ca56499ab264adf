-- Evaluation items found in the training data (a shared 13-gram), per eval set.
select
    kind,
    eval_set,
    items,
    unchecked,
    contaminated,
    round(contaminated_share, 3) as contaminated_share,
    example_item_id,
    example_ngram
from contamination_summary
where evaluation_id = $evaluation_id
order by kind desc, eval_set
