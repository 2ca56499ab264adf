-- Pairwise judge, tuned vs base: per evaluation and judge, the prompts judged in both orders,
-- their outcomes (judge_outcomes) and the tuned model's win rate (wins + ties / 2) / prompts
-- with its 95 % Wilson score interval. Orders that disagree count as a tie (inconsistent
-- counts those), as MT-Bench scores them. Prompts where the judge named no winner in either
-- order are left out of the rate and counted as unparsed, as MT-Bench drops its "error" games.
-- judge_prompt_versions lists the prompts the judge was given (pair-v2, and pair-math-v1 for
-- reference-guided prompts). The interval is lorascope.evaluation.judge.win_rate's: Wilson's
-- with the tie-adjusted rate in place of a proportion (ties vary less than a win or a loss, so
-- it is a little wide, never too narrow). p_value is the exact sign test of tuned wins
-- against base wins (comparisons, family 'judge'), p_adjusted over the evaluation's
-- comparisons.
create or replace view judge_win_rate as

with

comparisons as (
    select * from comparisons
),

outcomes as (
    select * from judge_outcomes
),

counts as (
    select
        evaluation_id,
        run_id,
        judge_model,
        string_agg(distinct judge_prompt_version, ', ' order by judge_prompt_version)
            as judge_prompt_versions,
        count(*) filter (where outcome != 'unparsed') as prompts,
        count(*) filter (where outcome = 'tuned') as tuned_wins,
        count(*) filter (where outcome = 'base') as base_wins,
        count(*) filter (where outcome = 'tie') as ties,
        count(*) filter (where outcome = 'tie' and base_first != tuned_first) as inconsistent,
        count(*) filter (where outcome = 'unparsed') as unparsed,
        max(judged_at) as judged_at
    from outcomes
    group by evaluation_id, run_id, judge_model
),

rates as (
    select
        *,
        (tuned_wins + 0.5 * ties) / nullif(prompts, 0) as win_rate,
        1.96 * 1.96 / nullif(prompts, 0) as z2_n
    from counts
),

wilson as (
    select
        *,
        (win_rate + z2_n / 2) / (1 + z2_n) as center,
        sqrt(z2_n * win_rate * (1 - win_rate) + z2_n * z2_n / 4) / (1 + z2_n) as margin
    from rates
)

select
    wilson.evaluation_id,
    wilson.run_id,
    judge_model,
    judge_prompt_versions,
    prompts,
    tuned_wins,
    base_wins,
    ties,
    inconsistent,
    unparsed,
    win_rate,
    center - margin as win_rate_ci_low,
    center + margin as win_rate_ci_high,
    comparisons.p_value,
    comparisons.p_adjusted,
    judged_at
from wilson
left join comparisons
    on wilson.evaluation_id = comparisons.evaluation_id
    and comparisons.family = 'judge'
    and wilson.judge_model = comparisons.slice
