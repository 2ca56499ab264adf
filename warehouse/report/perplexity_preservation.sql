-- Perplexity on held-out text per corpus, base vs tuned, with the paired CI.
select * exclude (run_id)
from perplexity_preservation
where run_id = $run_id
order by corpus
