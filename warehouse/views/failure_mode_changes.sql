-- Failure mode changes: per evaluation and failure mode, the share of prompts whose base and
-- whose tuned answer shows the mode (the same prompts), the change tuned - base (positive:
-- the tuned model fails this way more often), its exact McNemar test and interval, p adjusted
-- over the evaluation's comparisons (comparisons). failure_modes breaks the counts down by
-- prompt category and broken instruction.
create or replace view failure_mode_changes as

with

comparisons as (
    select * from comparisons
)

select
    evaluation_id,
    run_id,
    metric as mode,
    n,
    excluded,
    base as base_rate,
    tuned as tuned_rate,
    delta,
    ci_low,
    ci_high,
    lost as fixed,
    gained as introduced,
    p_value,
    p_adjusted,
    mde,
    test
from comparisons
where family = 'failure_mode'
