-- Attention shift per domain and layer, base vs tuned.
select
    domain,
    layer,
    prompts,
    mean_js_divergence,
    max_js_divergence,
    base_entropy,
    entropy_delta,
    base_bos_mass,
    tuned_bos_mass
from attention_shift
where evaluation_id = $evaluation_id
order by domain, layer
