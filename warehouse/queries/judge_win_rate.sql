-- Did a judge prefer the tuned answers? Per evaluation and judge: prompts judged in both orders,
-- tuned wins, base wins, ties, the win rate (wins + ties / 2) and its 95 % CI, latest first.
select
    evaluation_id,
    run_id,
    judge_model,
    judge_prompt_versions,
    prompts,
    tuned_wins,
    base_wins,
    ties,
    inconsistent,
    unparsed,
    round(win_rate, 3) as win_rate,
    round(win_rate_ci_low, 3) as ci_low,
    round(win_rate_ci_high, 3) as ci_high,
    judged_at
from judge_win_rate
order by judged_at desc nulls last, evaluation_id, judge_model
