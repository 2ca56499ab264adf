-- Prompts and metrics the base model passed and the tuned model failed (the first 20).
select * exclude (run_id)
from regressions
where run_id = $run_id
limit 20
