-- lm-eval tasks, base vs tuned: per run, task and metric, both values, the difference
-- tuned - base, and its 95 % CI, delta ± 1.96 · √(stderr_base² + stderr_tuned²). lm-eval
-- reports aggregates only, so the two runs are treated as independent samples: wider than the
-- paired CI of capability_preservation on the same documents. Null where a stderr is missing.
create or replace view harness_deltas as

with

harness_results as (
    select * from harness_results
),

base as (
    select evaluation_id, run_id, task, metric, value, stderr, n, lm_eval_version
    from harness_results
    where variant = 'base'
),

tuned as (
    select evaluation_id, run_id, task, metric, value, stderr, n
    from harness_results
    where variant = 'tuned'
),

paired as (
    select
        base.evaluation_id,
        base.run_id,
        base.task,
        base.metric,
        base.n as base_n,
        tuned.n as tuned_n,
        base.value as base_value,
        tuned.value as tuned_value,
        tuned.value - base.value as delta,
        independent_ci95_margin(base.stderr, tuned.stderr) as margin,
        base.lm_eval_version
    from base
    inner join tuned
        on base.evaluation_id = tuned.evaluation_id
        and base.task = tuned.task
        and base.metric = tuned.metric
)

select
    evaluation_id,
    run_id,
    task,
    metric,
    base_n,
    tuned_n,
    base_value,
    tuned_value,
    delta,
    delta - margin as delta_ci_low,
    delta + margin as delta_ci_high,
    lm_eval_version
from paired
