-- Attention shift: per run, prompt domain and layer, how far tuning moved attention (mean
-- JS divergence over heads and prompts, and its largest head) and how sharp it became
-- (entropy tuned - base; negative = more focused). LoRA on the last N blocks should move
-- those layers most; a large shift in a layer without adapters would point at a bug.
create or replace view attention_shift as

with

attention_heads as (
    select * from attention_heads
),

prompts as (
    select evaluation_id, run_id, prompt_id, domain from prompts
),

per_layer as (
    select
        heads.evaluation_id,
        heads.run_id,
        coalesce(prompts.domain, 'unknown') as domain,
        heads.layer,
        count(distinct heads.prompt_id) as prompts,
        avg(heads.js_divergence) as mean_js_divergence,
        max(heads.js_divergence) as max_js_divergence,
        avg(heads.base_entropy) as base_entropy,
        avg(heads.tuned_entropy) as tuned_entropy,
        avg(heads.base_bos_mass) as base_bos_mass,
        avg(heads.tuned_bos_mass) as tuned_bos_mass
    from attention_heads as heads
    left join prompts
        on heads.evaluation_id = prompts.evaluation_id
        and heads.prompt_id = prompts.prompt_id
    group by heads.evaluation_id, heads.run_id, domain, heads.layer
)

select
    evaluation_id,
    run_id,
    domain,
    layer,
    prompts,
    mean_js_divergence,
    max_js_divergence,
    base_entropy,
    tuned_entropy,
    tuned_entropy - base_entropy as entropy_delta,
    base_bos_mass,
    tuned_bos_mass
from per_layer
