-- Goal improvement: per evaluation, prompt domain and metric, the mean score of base and of
-- tuned on the same prompts and the difference tuned - base, with its test (exact McNemar for
-- pass/fail scores, a paired permutation test for continuous ones), interval, p adjusted over
-- the evaluation's comparisons, and the minimum detectable effect (comparisons).
create or replace view goal_improvement as

with

comparisons as (
    select * from comparisons
)

select
    evaluation_id,
    run_id,
    slice as domain,
    metric,
    n,
    excluded,
    base as base_mean,
    tuned as tuned_mean,
    delta,
    ci_low,
    ci_high,
    p_value,
    p_adjusted,
    mde,
    test
from comparisons
where family = 'goal'
