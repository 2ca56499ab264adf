-- Generations flagged per failure mode and prompt category, largest increase first.
select * exclude (evaluation_id, run_id)
from failure_modes
where evaluation_id = $evaluation_id
order by delta desc, mode, instruction_id, category
