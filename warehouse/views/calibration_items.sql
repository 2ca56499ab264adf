-- Calibration per multiple-choice item: the model's probabilities over the choices (the
-- softmax of the choices' summed log-likelihoods, the raw scores behind acc), its confidence
-- (the largest probability), whether it was right (acc's `correct`: the argmax is gold) and
-- its multi-class Brier score Σ_k (p_k - y_k)². lorascope.evaluation.calibration explains
-- the choices and is what tests/test_calibration.py checks this against. Items scored before
-- migration 0017 kept no log-likelihoods and are left out.
create or replace view calibration_items as

with

capability_items as (
    select * from capability_items
),

scored as (
    select
        evaluation_id,
        run_id,
        variant,
        task,
        item_id,
        gold,
        correct,
        choice_logliks::double[] as logliks
    from capability_items
    where choice_logliks is not null and gold is not null
),

-- exp(l_k - max l): the softmax's numerators, shifted so the largest is 1 (no overflow).
weighted as (
    select
        * exclude (logliks),
        list_transform(logliks, lambda l: exp(l - list_max(logliks))) as weights
    from scored
),

probabilities as (
    select
        * exclude (weights),
        list_transform(weights, lambda w: w / list_sum(weights)) as probabilities
    from weighted
)

select
    evaluation_id,
    run_id,
    variant,
    task,
    item_id,
    gold,
    correct,
    probabilities,
    list_max(probabilities) as confidence,
    -- y_k is 1 for the gold choice (0-based gold, 1-based k).
    list_sum(list_transform(probabilities,
        lambda p, k: pow(p - (k = gold + 1)::integer, 2))) as brier
from probabilities
