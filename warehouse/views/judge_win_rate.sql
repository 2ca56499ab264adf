-- Pairwise judge, tuned vs base: per evaluation (and judge), the prompts judged in both orders,
-- their outcomes and the tuned model's win rate (wins + ties / 2) / prompts with its 95 %
-- Wilson score interval. A prompt's outcome is the winner both orders named; orders that
-- disagree count as a tie (inconsistent counts those), as MT-Bench scores them. Prompts where
-- the judge named no winner in either order are left out of the rate and counted as unparsed,
-- as MT-Bench drops its "error" games. The interval is lorascope.evaluation.judge.win_rate's:
-- Wilson's with the tie-adjusted rate in place of a proportion (ties vary less than a win or a
-- loss, so it is a little wide, never too narrow).
create or replace view judge_win_rate as

with

judgments as (
    select * from judgments
),

prompt_orders as (
    select
        evaluation_id,
        run_id,
        judge_model,
        judge_prompt_version,
        prompt_id,
        any_value(verdict) filter (where judge_order = 'base_first') as base_first,
        any_value(verdict) filter (where judge_order = 'tuned_first') as tuned_first,
        max(created_at) as judged_at
    from judgments
    group by evaluation_id, run_id, judge_model, judge_prompt_version, prompt_id
),

outcomes as (
    select
        *,
        case
            when base_first = 'unparsed' or tuned_first = 'unparsed' then 'unparsed'
            when base_first = tuned_first then base_first
            else 'tie'
        end as outcome
    from prompt_orders
    where base_first is not null and tuned_first is not null
),

counts as (
    select
        evaluation_id,
        run_id,
        judge_model,
        judge_prompt_version,
        count(*) filter (where outcome != 'unparsed') as prompts,
        count(*) filter (where outcome = 'tuned') as tuned_wins,
        count(*) filter (where outcome = 'base') as base_wins,
        count(*) filter (where outcome = 'tie') as ties,
        count(*) filter (where outcome = 'tie' and base_first != tuned_first) as inconsistent,
        count(*) filter (where outcome = 'unparsed') as unparsed,
        max(judged_at) as judged_at
    from outcomes
    group by evaluation_id, run_id, judge_model, judge_prompt_version
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
    evaluation_id,
    run_id,
    judge_model,
    judge_prompt_version,
    prompts,
    tuned_wins,
    base_wins,
    ties,
    inconsistent,
    unparsed,
    win_rate,
    center - margin as win_rate_ci_low,
    center + margin as win_rate_ci_high,
    judged_at
from wilson
