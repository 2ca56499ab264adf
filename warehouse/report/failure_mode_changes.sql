-- Failure modes per mode, base vs tuned on the same prompts, largest increase first.
select * exclude (evaluation_id, run_id)
from failure_mode_changes
where evaluation_id = $evaluation_id
order by delta desc, mode
