-- Log-likelihood multiple-choice accuracy per task, base vs tuned, with the paired CI.
select * exclude (evaluation_id, run_id)
from capability_preservation
where evaluation_id = $evaluation_id
order by task
