-- The newest experiment: each swept value's goal and capability deltas side by side.
select value, lora_rank, lora_scale, kind, subject, metric, base, tuned, delta, ci_low, ci_high
from experiment_results
where experiment_id = (select experiment_id from experiments order by created_at desc limit 1)
order by kind, subject, metric, position
