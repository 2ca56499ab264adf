-- Did tuning make general text less likely? Perplexity of base and tuned on held-out
-- passages and the paired change in NLL per token with its 95 % CI, latest evaluation first.
select
    perplexity_preservation.evaluation_id,
    perplexity_preservation.run_id,
    corpus,
    n,
    tokens,
    round(base_perplexity, 3) as base_perplexity,
    round(tuned_perplexity, 3) as tuned_perplexity,
    round(delta_nll_per_token, 4) as delta_nll_per_token,
    round(delta_ci_low, 4) as ci_low,
    round(delta_ci_high, 4) as ci_high
from perplexity_preservation
left join evaluations on perplexity_preservation.evaluation_id = evaluations.evaluation_id
order by evaluations.started_at desc nulls last, perplexity_preservation.evaluation_id, corpus
