-- Calibration per task and metric (ece, brier), base vs tuned: the `calibration` view's
-- values and, where the evaluation compared them, the comparison's n, interval, p, adjusted p
-- and MDE (comparisons, family 'calibration'); accuracy and mean confidence alongside.
with

calibration as (
    select * from calibration
    where evaluation_id = $evaluation_id
),

comparisons as (
    select * from comparisons
    where evaluation_id = $evaluation_id and family = 'calibration'
),

variants as (
    select
        base.task,
        metric.name as metric,
        base.n,
        case when metric.name = 'ece' then base.ece else base.brier end as base,
        case when metric.name = 'ece' then tuned.ece else tuned.brier end as tuned,
        base.accuracy as base_acc,
        tuned.accuracy as tuned_acc,
        base.mean_confidence as base_confidence,
        tuned.mean_confidence as tuned_confidence
    from calibration as base
    inner join calibration as tuned
        on base.task = tuned.task
    cross join (values ('ece'), ('brier')) as metric(name)
    where base.variant = 'base' and tuned.variant = 'tuned'
)

select
    variants.task,
    variants.metric,
    coalesce(comparisons.n, variants.n) as n,
    comparisons.excluded,
    coalesce(comparisons.base, variants.base) as base,
    coalesce(comparisons.tuned, variants.tuned) as tuned,
    coalesce(comparisons.delta, variants.tuned - variants.base) as delta,
    comparisons.ci_low,
    comparisons.ci_high,
    comparisons.p_value,
    comparisons.p_adjusted,
    comparisons.mde,
    variants.base_acc,
    variants.tuned_acc,
    variants.base_confidence,
    variants.tuned_confidence
from variants
left join comparisons
    on variants.task = comparisons.slice
    and variants.metric = comparisons.metric
order by variants.task, variants.metric desc
