-- Generation throughput: one row per run, variant and generated batch, with the rates mlx-lm's
-- batch_generate reports for the batch (prompt = prefill, generation = generated tokens over
-- the time outside prefill), end-to-end tokens/s, the slowest prompt's latency and the
-- process's peak memory. The batch_* columns repeat on every row of a batch.
create or replace view generation_throughput as

with

generations as (
    select * from generations
)

select
    evaluation_id,
    run_id,
    variant,
    batch_index,
    count(*) as prompts,
    sum(prompt_tokens) as prompt_tokens,
    sum(output_tokens) as output_tokens,
    any_value(batch_prompt_tokens_per_second) as prompt_tokens_per_second,
    any_value(batch_generation_tokens_per_second) as generation_tokens_per_second,
    any_value(batch_tokens_per_second) as end_to_end_tokens_per_second,
    max(latency_seconds) as max_latency_seconds,
    any_value(batch_peak_memory_gb) as peak_memory_gb
from generations
group by evaluation_id, run_id, variant, batch_index
