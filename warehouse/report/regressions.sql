-- Prompts and metrics the base model passed and the tuned model failed (the first 20).
select * exclude (evaluation_id, run_id)
from regressions
where evaluation_id = $evaluation_id
limit 20
