-- Pairwise judges compared: how often each pair of judges reached the same outcome.
select * exclude (evaluation_id, run_id)
from judge_agreement
where evaluation_id = $evaluation_id
order by judge_a, judge_b
