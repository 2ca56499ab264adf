-- Runs, latest first, with their status and wall time (empty while a run is going).
select
    run_id,
    name,
    status,
    started_at,
    finished_at - started_at as wall_time,
    model_source,
    data_source,
    error
from runs
order by started_at desc nulls last
