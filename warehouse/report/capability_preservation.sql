-- Log-likelihood multiple-choice accuracy per task, base vs tuned, with the paired CI.
select * exclude (run_id)
from capability_preservation
where run_id = $run_id
order by task
