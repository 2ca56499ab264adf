-- Does the judge agree with the rule refusal checker? Per evaluation, judge and refusal prompt
-- set (harmful, over-refusal): answers both classified (n; the judge's unparsed replies left
-- out), the four cells of their table, raw agreement and Cohen's kappa, latest first.
select
    evaluation_id,
    run_id,
    judge_model,
    judge_prompt_version,
    prompt_set,
    answers,
    unparsed,
    n,
    both_refused,
    both_complied,
    rule_only,
    judge_only,
    round(agreement, 3) as agreement,
    round(cohen_kappa, 3) as cohen_kappa,
    judged_at
from refusal_agreement
order by judged_at desc nulls last, evaluation_id, judge_model, prompt_set
