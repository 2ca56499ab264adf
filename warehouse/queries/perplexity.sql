-- Did tuning make general text less likely? Perplexity of base and tuned on held-out
-- passages and the change in NLL per token of the pooled numbers, latest evaluation first.
select
    perplexity_preservation.evaluation_id,
    perplexity_preservation.run_id,
    corpus,
    n,
    tokens,
    round(base_perplexity, 3) as base_perplexity,
    round(tuned_perplexity, 3) as tuned_perplexity,
    round(delta_nll_per_token, 4) as delta_nll_per_token
from perplexity_preservation
left join evaluations on perplexity_preservation.evaluation_id = evaluations.evaluation_id
order by evaluations.started_at desc nulls last, perplexity_preservation.evaluation_id, corpus
