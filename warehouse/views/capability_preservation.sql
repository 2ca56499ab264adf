-- Capability preservation: per evaluation, task and metric (lm-eval's acc and acc_norm), base
-- and tuned accuracy on the same multiple-choice items, the difference tuned - base with
-- Newcombe's interval for paired proportions, the exact McNemar test on the items one variant
-- got right and the other wrong (lost: base right, tuned wrong; gained: the reverse;
-- capability_flips lists them), p adjusted over the evaluation's comparisons and the minimum
-- detectable effect at this n.
create or replace view capability_preservation as

with

comparisons as (
    select * from comparisons
)

select
    evaluation_id,
    run_id,
    slice as task,
    metric,
    n,
    excluded,
    base as base_acc,
    tuned as tuned_acc,
    delta,
    ci_low,
    ci_high,
    lost,
    gained,
    p_value,
    p_adjusted,
    mde,
    test
from comparisons
where family = 'capability'
