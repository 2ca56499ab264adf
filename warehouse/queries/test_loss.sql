-- Did tuning fit the held-out test split? `mlx_lm lora --test`'s test loss and perplexity under
-- base and tuned, the reference answers' own loss per token, and the pooled changes, latest
-- evaluation first.
select
    test_loss.evaluation_id,
    test_loss.run_id,
    n,
    tokens,
    round(base_test_loss, 3) as base_test_loss,
    round(tuned_test_loss, 3) as tuned_test_loss,
    round(delta_test_loss, 4) as delta_test_loss,
    round(delta_test_loss_ci_low, 4) as ci_low,
    round(delta_test_loss_ci_high, 4) as ci_high,
    round(test_loss_p_value, 4) as p,
    round(test_loss_p_adjusted, 4) as p_adjusted,
    round(base_test_ppl, 3) as base_test_ppl,
    round(tuned_test_ppl, 3) as tuned_test_ppl,
    round(base_answer_loss, 4) as base_answer_loss,
    round(tuned_answer_loss, 4) as tuned_answer_loss,
    round(delta_answer_loss, 4) as delta_answer_loss
from test_loss
left join evaluations on test_loss.evaluation_id = evaluations.evaluation_id
order by evaluations.started_at desc nulls last, test_loss.evaluation_id
