-- How often each failure mode shows up in base and tuned outputs: latest run first, then the
-- modes tuning added most.
select
    failure_mode_counts.run_id,
    mode,
    base_count,
    tuned_count,
    delta
from failure_mode_counts
left join runs on failure_mode_counts.run_id = runs.run_id
order by runs.started_at desc nulls last, failure_mode_counts.run_id, delta desc, mode
