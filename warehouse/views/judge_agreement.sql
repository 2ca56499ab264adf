-- Pairwise judges compared: per evaluation and pair of judges (judge_a < judge_b by model
-- name), over the prompts both judged in both orders (judge_outcomes), how often their
-- outcomes (tuned, base, tie) agree. both_judged counts those prompts; prompts those where
-- both judges named a verdict (an unparsed outcome is left out, as MT-Bench leaves out its
-- "error" votes). agreement is over every such prompt, agreement_without_ties over those
-- neither judge called a tie (FastChat's compute_agreement reports both). cohen_kappa is
-- Cohen's kappa over the three outcomes: (observed - chance agreement) / (1 - chance), chance
-- from each judge's own outcome shares; null when chance agreement is 1 (both judges always
-- gave the same one outcome). A test checks it against statsmodels' cohens_kappa.
create or replace view judge_agreement as

with

outcomes as (
    select * from judge_outcomes
),

paired as (
    select
        a.evaluation_id,
        a.run_id,
        a.judge_model as judge_a,
        b.judge_model as judge_b,
        a.prompt_id,
        a.outcome as outcome_a,
        b.outcome as outcome_b,
        a.outcome != 'unparsed' and b.outcome != 'unparsed' as parsed,
        greatest(a.judged_at, b.judged_at) as judged_at
    from outcomes as a
    inner join outcomes as b
        on a.evaluation_id = b.evaluation_id
        and a.prompt_id = b.prompt_id
        and a.judge_model < b.judge_model
),

counts as (
    select
        evaluation_id,
        run_id,
        judge_a,
        judge_b,
        count(*) as both_judged,
        count(*) filter (where parsed) as prompts,
        count(*) filter (where parsed and outcome_a = outcome_b) as agreements,
        count(*) filter (where parsed and outcome_a != 'tie' and outcome_b != 'tie')
            as prompts_without_ties,
        count(*) filter (where parsed and outcome_a = outcome_b and outcome_a != 'tie')
            as agreements_without_ties,
        -- chance agreement: over the outcomes, judge a's share times judge b's share
        (
            count(*) filter (where parsed and outcome_a = 'tuned')
            * count(*) filter (where parsed and outcome_b = 'tuned')
            + count(*) filter (where parsed and outcome_a = 'base')
            * count(*) filter (where parsed and outcome_b = 'base')
            + count(*) filter (where parsed and outcome_a = 'tie')
            * count(*) filter (where parsed and outcome_b = 'tie')
        ) / nullif(count(*) filter (where parsed) * count(*) filter (where parsed), 0)
            as chance_agreement,
        max(judged_at) as judged_at
    from paired
    group by evaluation_id, run_id, judge_a, judge_b
)

select
    evaluation_id,
    run_id,
    judge_a,
    judge_b,
    both_judged,
    prompts,
    agreements,
    agreements / nullif(prompts, 0) as agreement,
    prompts_without_ties,
    agreements_without_ties / nullif(prompts_without_ties, 0) as agreement_without_ties,
    (agreements / nullif(prompts, 0) - chance_agreement) / nullif(1 - chance_agreement, 0)
        as cohen_kappa,
    judged_at
from counts
