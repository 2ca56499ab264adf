-- Perplexity preservation: per evaluation and held-out corpus, base and tuned perplexity over
-- the same passages (exp of total NLL / total tokens), and the change in NLL per token of those
-- pooled numbers, (Σ tuned_i - Σ base_i) / Σ tokens_i = ln(tuned_perplexity / base_perplexity).
-- Positive means the tuned model finds general text less likely. Interval, p and MDE of that
-- change: comparisons (family 'perplexity', passages resampled).
create or replace view perplexity_preservation as

with

paired_items as (
    select * from paired_items
),

comparisons as (
    select * from comparisons
),

per_corpus as (
    select
        evaluation_id,
        run_id,
        slice as corpus,
        count(*) as n,
        sum(base_weight)::bigint as tokens,
        sum(base_value) / nullif(sum(base_weight), 0) as base_nll_per_token,
        sum(tuned_value) / nullif(sum(tuned_weight), 0) as tuned_nll_per_token
    from paired_items
    where family = 'perplexity'
    group by evaluation_id, run_id, slice
)

select
    per_corpus.evaluation_id,
    per_corpus.run_id,
    corpus,
    per_corpus.n,
    tokens,
    exp(base_nll_per_token) as base_perplexity,
    exp(tuned_nll_per_token) as tuned_perplexity,
    tuned_nll_per_token - base_nll_per_token as delta_nll_per_token,
    comparisons.ci_low as delta_ci_low,
    comparisons.ci_high as delta_ci_high,
    comparisons.p_value,
    comparisons.p_adjusted,
    comparisons.mde
from per_corpus
left join comparisons
    on per_corpus.evaluation_id = comparisons.evaluation_id
    and comparisons.family = 'perplexity'
    and per_corpus.corpus = comparisons.slice
