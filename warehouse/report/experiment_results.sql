-- An experiment's member runs lined up by the swept value.
select
    value,
    lora_rank,
    lora_scale,
    kind,
    subject,
    metric,
    n,
    base,
    tuned,
    delta,
    ci_low,
    ci_high,
    p_value,
    p_adjusted,
    mde
from experiment_results
where experiment_id = $experiment_id
order by kind, subject, metric, position
