-- Perplexity preservation: per run and held-out corpus, base and tuned perplexity over the
-- same passages (exp of total NLL / total tokens), and the paired change in NLL per token,
-- d_i = tuned_i - base_i per passage, mean(d) ± 1.96 · sd(d) / √n. Positive means the tuned
-- model finds general text less likely.
create or replace view perplexity_preservation as

with

perplexity_items as (
    select * from perplexity_items
),

paired as (
    select
        base.evaluation_id,
        base.run_id,
        base.corpus,
        base.tokens,
        base.nll as base_nll,
        tuned.nll as tuned_nll,
        (tuned.nll - base.nll) / base.tokens as diff
    from perplexity_items as base
    inner join perplexity_items as tuned
        on base.evaluation_id = tuned.evaluation_id
        and base.corpus = tuned.corpus
        and base.item_id = tuned.item_id
    where base.variant = 'base' and tuned.variant = 'tuned'
),

per_corpus as (
    select
        evaluation_id,
        run_id,
        corpus,
        count(*) as n,
        sum(tokens) as tokens,
        exp(sum(base_nll) / sum(tokens)) as base_perplexity,
        exp(sum(tuned_nll) / sum(tokens)) as tuned_perplexity,
        avg(diff) as delta_nll_per_token,
        paired_ci95_margin(diff) as margin
    from paired
    group by evaluation_id, run_id, corpus
)

select
    evaluation_id,
    run_id,
    corpus,
    n,
    tokens,
    base_perplexity,
    tuned_perplexity,
    delta_nll_per_token,
    delta_nll_per_token - margin as delta_ci_low,
    delta_nll_per_token + margin as delta_ci_high
from per_corpus
