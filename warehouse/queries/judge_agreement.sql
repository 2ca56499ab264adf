-- Do two judges agree? Per evaluation and pair of judges: prompts both judged (both_judged) and
-- both gave a verdict (prompts), the share where their outcomes agree (with and without ties)
-- and Cohen's kappa, latest first.
select
    evaluation_id,
    run_id,
    judge_a,
    judge_b,
    both_judged,
    prompts,
    agreements,
    round(agreement, 3) as agreement,
    prompts_without_ties,
    round(agreement_without_ties, 3) as agreement_without_ties,
    round(cohen_kappa, 3) as cohen_kappa,
    judged_at
from judge_agreement
order by judged_at desc nulls last, evaluation_id, judge_a, judge_b
