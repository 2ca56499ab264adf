-- Goal improvement: per run, prompt domain and metric, the mean score of base and of tuned on
-- the same prompts (paired_scores), and the difference tuned - base.
create or replace view goal_improvement as

with

paired_scores as (
    select * from paired_scores
),

per_metric as (
    select
        evaluation_id,
        run_id,
        domain,
        metric,
        count(*) as n,
        avg(base_value) as base_mean,
        avg(tuned_value) as tuned_mean
    from paired_scores
    group by evaluation_id, run_id, domain, metric
)

select
    evaluation_id,
    run_id,
    domain,
    metric,
    n,
    base_mean,
    tuned_mean,
    tuned_mean - base_mean as delta
from per_metric
