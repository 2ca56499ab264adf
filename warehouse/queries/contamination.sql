-- Was any evaluation item in the training data? Per evaluation and eval set: items, those
-- sharing a 13-gram with the run's train split, their share, and one example, latest
-- evaluation first.
select
    contamination_summary.evaluation_id,
    contamination_summary.run_id,
    kind,
    eval_set,
    items,
    unchecked,
    contaminated,
    round(contaminated_share, 3) as contaminated_share,
    example_item_id,
    example_ngram
from contamination_summary
left join evaluations on contamination_summary.evaluation_id = evaluations.evaluation_id
order by
    evaluations.started_at desc nulls last, contamination_summary.evaluation_id, kind, eval_set
