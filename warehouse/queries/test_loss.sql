-- Did tuning fit the held-out test split? Loss per token and perplexity of the reference
-- answers under base and tuned, with the paired change and its 95 % CI, latest evaluation
-- first.
select
    test_loss.evaluation_id,
    test_loss.run_id,
    n,
    tokens,
    round(base_loss, 4) as base_loss,
    round(tuned_loss, 4) as tuned_loss,
    round(base_perplexity, 3) as base_perplexity,
    round(tuned_perplexity, 3) as tuned_perplexity,
    round(delta_loss_per_token, 4) as delta_loss_per_token,
    round(delta_ci_low, 4) as ci_low,
    round(delta_ci_high, 4) as ci_high
from test_loss
left join evaluations on test_loss.evaluation_id = evaluations.evaluation_id
order by evaluations.started_at desc nulls last, test_loss.evaluation_id
