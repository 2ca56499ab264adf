-- Generations flagged per failure mode and prompt category, largest increase first.
select * exclude (run_id)
from failure_modes
where run_id = $run_id
order by delta desc, mode, instruction_id, category
