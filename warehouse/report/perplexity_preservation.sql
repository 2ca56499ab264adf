-- Perplexity on held-out text per corpus, base vs tuned, with the pooled change in NLL per token.
select * exclude (evaluation_id, run_id)
from perplexity_preservation
where evaluation_id = $evaluation_id
order by corpus
