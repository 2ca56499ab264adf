-- 0007: generation throughput split as mlx-lm's batch_generate reports it. Per batch:
-- prompt tokens/s (prefill), generation tokens/s (generated tokens over the batch's time outside
-- prefill) and the process's peak memory; batch_tokens_per_second stays end to end.
alter table generations add column batch_prompt_tokens_per_second double;
alter table generations add column batch_generation_tokens_per_second double;
alter table generations add column batch_peak_memory_gb double;
