-- How fast did generation run? Per batch of each run, base and tuned: prompt (prefill),
-- generation and end-to-end tokens/s, slowest latency and peak memory, latest evaluation first.
select
    generation_throughput.evaluation_id,
    generation_throughput.run_id,
    variant,
    batch_index,
    prompts,
    prompt_tokens,
    output_tokens,
    round(prompt_tokens_per_second, 1) as prompt_tokens_per_second,
    round(generation_tokens_per_second, 1) as generation_tokens_per_second,
    round(end_to_end_tokens_per_second, 1) as end_to_end_tokens_per_second,
    round(max_latency_seconds, 2) as max_latency_seconds,
    round(peak_memory_gb, 3) as peak_memory_gb
from generation_throughput
left join evaluations on generation_throughput.evaluation_id = evaluations.evaluation_id
order by evaluations.started_at desc nulls last, generation_throughput.evaluation_id, variant, batch_index
