-- Test loss: per evaluation, the reference answers of the run's held-out test split scored
-- under base and tuned, on the same examples. test_loss and test_ppl are `mlx_lm lora --test`'s
-- "Test loss, Test ppl" (table test_losses' tokens and nll: the run's mask_prompt, rows cut at
-- max_seq_length, the target past each row's end), pooled over all tokens. answer_loss pools
-- the reference answers' own tokens (answer_tokens, answer_nll); reference_loglik is the mean
-- per example of an answer's log-likelihood. Each delta is tuned minus base of the pooled
-- numbers beside it; negative: the tuned model finds the held-out answers more likely. Its
-- interval (bootstrap over examples), p (examples' base and tuned swapped at random) and MDE
-- come from comparisons (family 'test_loss').
create or replace view test_loss as

with

paired_items as (
    select * from paired_items
),

comparisons as (
    select * from comparisons
),

per_evaluation as (
    select
        evaluation_id,
        run_id,
        count(*) filter (where metric = 'test_loss') as n,
        sum(base_weight) filter (where metric = 'test_loss')::bigint as tokens,
        sum(base_value) filter (where metric = 'test_loss')
            / nullif(sum(base_weight) filter (where metric = 'test_loss'), 0) as base_test_loss,
        sum(tuned_value) filter (where metric = 'test_loss')
            / nullif(sum(tuned_weight) filter (where metric = 'test_loss'), 0)
            as tuned_test_loss,
        sum(base_weight) filter (where metric = 'answer_loss')::bigint as answer_tokens,
        sum(base_value) filter (where metric = 'answer_loss')
            / nullif(sum(base_weight) filter (where metric = 'answer_loss'), 0)
            as base_answer_loss,
        sum(tuned_value) filter (where metric = 'answer_loss')
            / nullif(sum(tuned_weight) filter (where metric = 'answer_loss'), 0)
            as tuned_answer_loss,
        -avg(base_value) filter (where metric = 'answer_loss') as base_reference_loglik,
        -avg(tuned_value) filter (where metric = 'answer_loss') as tuned_reference_loglik
    from paired_items
    where family = 'test_loss'
    group by evaluation_id, run_id
)

select
    per_evaluation.evaluation_id,
    per_evaluation.run_id,
    per_evaluation.n,
    tokens,
    base_test_loss,
    tuned_test_loss,
    tuned_test_loss - base_test_loss as delta_test_loss,
    test_loss.ci_low as delta_test_loss_ci_low,
    test_loss.ci_high as delta_test_loss_ci_high,
    test_loss.p_value as test_loss_p_value,
    test_loss.p_adjusted as test_loss_p_adjusted,
    test_loss.mde as test_loss_mde,
    exp(base_test_loss) as base_test_ppl,
    exp(tuned_test_loss) as tuned_test_ppl,
    answer_tokens,
    base_answer_loss,
    tuned_answer_loss,
    tuned_answer_loss - base_answer_loss as delta_answer_loss,
    answer_loss.ci_low as delta_answer_loss_ci_low,
    answer_loss.ci_high as delta_answer_loss_ci_high,
    answer_loss.p_value as answer_loss_p_value,
    answer_loss.p_adjusted as answer_loss_p_adjusted,
    base_reference_loglik,
    tuned_reference_loglik
from per_evaluation
left join comparisons as test_loss
    on per_evaluation.evaluation_id = test_loss.evaluation_id
    and test_loss.family = 'test_loss' and test_loss.metric = 'test_loss'
left join comparisons as answer_loss
    on per_evaluation.evaluation_id = answer_loss.evaluation_id
    and answer_loss.family = 'test_loss' and answer_loss.metric = 'answer_loss'
