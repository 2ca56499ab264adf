-- On the held-out test split, base vs tuned: `mlx_lm lora --test`'s test loss and perplexity,
-- the reference answers' own loss and mean log-likelihood, pooled changes.
select * exclude (evaluation_id, run_id)
from test_loss
where evaluation_id = $evaluation_id
