-- Calibration of the multiple-choice answers per evaluation, task and variant: n items,
-- accuracy (acc), mean confidence (the model's largest probability over the choices), the
-- expected calibration error over 10 equal-width confidence bins, Σ_b |B_b|/n · |acc(B_b) -
-- conf(B_b)| (Guo et al. 2017, eq. 3), and the multi-class Brier score (mean over items of
-- Σ_k (p_k - y_k)²). Lower ECE and Brier are better. lorascope.evaluation.calibration has the
-- same definitions in Python; base vs tuned, `comparisons` (family 'calibration') tests them.
create or replace view calibration as

with

calibration_items as (
    select * from calibration_items
),

reliability_bins as (
    select * from reliability_bins
),

items as (
    select
        evaluation_id,
        run_id,
        task,
        variant,
        count(*) as n,
        avg(correct::integer) as accuracy,
        avg(confidence) as mean_confidence,
        avg(brier) as brier
    from calibration_items
    group by all
),

errors as (
    select
        evaluation_id,
        task,
        variant,
        sum(count * abs(accuracy - mean_confidence)) / sum(count) as ece
    from reliability_bins
    group by all
)

select
    items.evaluation_id,
    items.run_id,
    items.task,
    items.variant,
    items.n,
    items.accuracy,
    items.mean_confidence,
    errors.ece,
    items.brier
from items
inner join errors
    on items.evaluation_id = errors.evaluation_id
    and items.task = errors.task
    and items.variant = errors.variant
