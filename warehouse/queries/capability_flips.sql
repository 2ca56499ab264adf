-- Which capability items did the tuning flip? Every item one model answered right and the
-- other wrong (lost: base right, tuned wrong), latest evaluation first.
select
    capability_flips.evaluation_id,
    capability_flips.run_id,
    task,
    metric,
    flip,
    item_id
from capability_flips
left join evaluations on capability_flips.evaluation_id = evaluations.evaluation_id
order by evaluations.started_at desc nulls last, capability_flips.evaluation_id, task, metric,
    flip, item_id
