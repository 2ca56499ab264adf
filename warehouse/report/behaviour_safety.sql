-- The safety family's comparisons, per prompt set and metric.
select * exclude (evaluation_id, run_id, higher_is_better, test)
from behaviour_safety
where evaluation_id = $evaluation_id
order by prompt_set, metric
