-- Which layers did tuning move most? Attention JS divergence base vs tuned per layer, newest run.
select domain, layer, prompts, mean_js_divergence, max_js_divergence, entropy_delta
from attention_shift
where run_id = (select run_id from runs order by started_at desc limit 1)
order by domain, layer
