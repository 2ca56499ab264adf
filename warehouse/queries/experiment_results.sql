-- The newest experiment: each swept value's base-vs-tuned comparisons side by side, with
-- their intervals, p-values (adjusted within each member's evaluation) and MDE.
select value, lora_rank, lora_scale, kind, subject, metric, n, base, tuned, delta, ci_low,
    ci_high, p_value, p_adjusted, mde
from experiment_results
where experiment_id = (select experiment_id from experiments order by created_at desc limit 1)
order by kind, subject, metric, position
