-- Did tuning introduce or fix failure modes? Per mode, the share of prompts whose answers show
-- it, base vs tuned, with the exact test, adjusted p and minimum detectable effect, latest
-- evaluation first, largest increase first.
select
    failure_mode_changes.evaluation_id,
    mode,
    n,
    round(base_rate, 3) as base_rate,
    round(tuned_rate, 3) as tuned_rate,
    round(delta, 3) as delta,
    round(ci_low, 3) as ci_low,
    round(ci_high, 3) as ci_high,
    fixed,
    introduced,
    round(p_value, 4) as p,
    round(p_adjusted, 4) as p_adjusted,
    round(mde, 3) as mde
from failure_mode_changes
left join evaluations on failure_mode_changes.evaluation_id = evaluations.evaluation_id
order by evaluations.started_at desc nulls last, failure_mode_changes.evaluation_id, delta desc,
    mode
