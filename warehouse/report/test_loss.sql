-- Loss, perplexity and reference log-likelihood on the held-out test split, base vs tuned.
select * exclude (evaluation_id, run_id)
from test_loss
where evaluation_id = $evaluation_id
