-- Pairwise judge, per prompt: each judge's two verdicts on a prompt of an evaluation and the
-- outcome they make, as MT-Bench scores a game: the winner both orders named, a tie when they
-- disagree (or both said tie), unparsed when either reply named no winner. A prompt counts
-- once it is judged in both orders; one judged under several prompt versions (the prompt text
-- changed and the judging resumed) counts with its latest. The win rate and the agreement of
-- judges are built on these outcomes.
create or replace view judge_outcomes as

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

latest as (
    select *
    from prompt_orders
    where base_first is not null and tuned_first is not null
    qualify row_number() over (
        partition by evaluation_id, judge_model, prompt_id
        order by judged_at desc nulls last, judge_prompt_version desc
    ) = 1
)

select
    evaluation_id,
    run_id,
    judge_model,
    prompt_id,
    judge_prompt_version,
    base_first,
    tuned_first,
    case
        when base_first = 'unparsed' or tuned_first = 'unparsed' then 'unparsed'
        when base_first = tuned_first then base_first
        else 'tie'
    end as outcome,
    judged_at
from latest
