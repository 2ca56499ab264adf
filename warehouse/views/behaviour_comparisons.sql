-- Behaviour: every base-vs-tuned comparison of the behaviour families (epistemic, sycophancy,
-- safety, robustness), one row per prompt set and checker metric: the rate under base and
-- tuned, the change with its interval, exact test, adjusted p and minimum detectable effect,
-- and whether the change is for the worse in the metric's good direction (`worse`: true when
-- the change points the bad way and is significant after correction; null when the metric
-- has no good direction).
create or replace view behaviour_comparisons as

with

comparisons as (
    select * from comparisons
),

behaviour_results as (
    select * from behaviour_results
),

-- The behaviour families are those the checkers wrote rows for.
families as (
    select distinct family from behaviour_results
)

select
    comparisons.evaluation_id,
    comparisons.run_id,
    comparisons.family,
    comparisons.slice as prompt_set,
    comparisons.metric,
    comparisons.higher_is_better,
    case when comparisons.higher_is_better then 'higher'
        when not comparisons.higher_is_better then 'lower' end as better,
    comparisons.n,
    comparisons.excluded,
    comparisons.base,
    comparisons.tuned,
    comparisons.delta,
    comparisons.ci_low,
    comparisons.ci_high,
    comparisons.test,
    comparisons.p_value,
    comparisons.p_adjusted,
    comparisons.mde,
    comparisons.lost,
    comparisons.gained,
    case
        when comparisons.higher_is_better is null then null
        else coalesce(comparisons.p_adjusted < 1 - comparisons.confidence, false)
            and (comparisons.delta < 0) = comparisons.higher_is_better
    end as worse
from comparisons
inner join families
    on comparisons.family = families.family
