-- Attention divergence per layer and head: Jensen-Shannon divergence between base and tuned
-- attention, averaged over the attention prompts.
select
    layer,
    head,
    count(distinct prompt_id) as prompts,
    avg(js_divergence) as mean_js_divergence
from attention_heads
where evaluation_id = $evaluation_id
group by layer, head
order by layer, head
