-- How often each failure mode shows up in base and tuned outputs, per prompt category (and,
-- for format violations, per broken instruction): latest evaluation first, then the modes tuning
-- added most.
with

failure_modes as (
    select * from failure_modes
),

evaluations as (
    select evaluation_id, started_at from evaluations
)

select
    failure_modes.evaluation_id,
    failure_modes.run_id,
    failure_modes.mode,
    failure_modes.instruction_id,
    failure_modes.category,
    failure_modes.base_count,
    failure_modes.tuned_count,
    failure_modes.delta,
    round(failure_modes.base_rate, 3) as base_rate,
    round(failure_modes.tuned_rate, 3) as tuned_rate
from failure_modes
left join evaluations on failure_modes.evaluation_id = evaluations.evaluation_id
order by
    evaluations.started_at desc nulls last,
    failure_modes.evaluation_id,
    failure_modes.delta desc,
    failure_modes.mode,
    failure_modes.instruction_id,
    failure_modes.category
