-- Test loss: per evaluation, the reference answers of the run's held-out test split scored
-- under base and tuned (the tokens training's loss counts). Loss per token and perplexity
-- pool all tokens; the mean reference log-likelihood is per example; the CI is of the paired
-- per-example change in loss per token, d_i = (tuned_i - base_i) / tokens_i. Negative: the
-- tuned model finds the references more likely.
create or replace view test_loss as

with

test_losses as (
    select * from test_losses
),

paired as (
    select
        base.evaluation_id,
        base.run_id,
        base.tokens,
        base.nll as base_nll,
        tuned.nll as tuned_nll,
        (tuned.nll - base.nll) / base.tokens as diff
    from test_losses as base
    inner join test_losses as tuned
        on base.evaluation_id = tuned.evaluation_id
        and base.example_id = tuned.example_id
    where base.variant = 'base' and tuned.variant = 'tuned' and base.tokens > 0
),

per_evaluation as (
    select
        evaluation_id,
        run_id,
        count(*) as n,
        sum(tokens) as tokens,
        sum(base_nll) / sum(tokens) as base_loss,
        sum(tuned_nll) / sum(tokens) as tuned_loss,
        -avg(base_nll) as base_reference_loglik,
        -avg(tuned_nll) as tuned_reference_loglik,
        avg(diff) as delta_loss_per_token,
        paired_ci95_margin(diff) as margin
    from paired
    group by evaluation_id, run_id
)

select
    evaluation_id,
    run_id,
    n,
    tokens,
    base_loss,
    tuned_loss,
    exp(base_loss) as base_perplexity,
    exp(tuned_loss) as tuned_perplexity,
    base_reference_loglik,
    tuned_reference_loglik,
    delta_loss_per_token,
    delta_loss_per_token - margin as delta_ci_low,
    delta_loss_per_token + margin as delta_ci_high
from per_evaluation
