-- Failure mode counts: per run and mode, how many generations of base and of tuned show it.
create or replace view failure_mode_counts as

with

failure_modes as (
    select * from failure_modes
),

counts as (
    select
        run_id,
        mode,
        count(*) filter (where variant = 'base') as base_count,
        count(*) filter (where variant = 'tuned') as tuned_count
    from failure_modes
    group by run_id, mode
)

select
    run_id,
    mode,
    base_count,
    tuned_count,
    tuned_count - base_count as delta
from counts
