-- Pairwise judge: how often each judge preferred the tuned answer over the base one.
select * exclude (evaluation_id, run_id)
from judge_win_rate
where evaluation_id = $evaluation_id
order by judge_model
