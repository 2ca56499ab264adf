-- The rule refusal checker and a judge on the same answers: per evaluation, judge model,
-- judge prompt version and refusal prompt set (harmful, over-refusal), the answers (base and
-- tuned) that both classified. answers counts the answers the judge was asked about that the
-- checker scored; unparsed those where the judge named no class, which are left out of the
-- rest. Of the n left: both_refused, both_complied (neither called it a refusal: complied,
-- or a refusal that went on to comply), rule_only (only the checker saw a refusal) and
-- judge_only. agreement = (both_refused + both_complied) / n; cohen_kappa is Cohen's kappa
-- over the two classes, computed as judge_agreement computes it: (observed - chance) /
-- (1 - chance), chance from each side's own refusal share; null when chance agreement is 1
-- (both always gave the same one class). A test checks it against statsmodels' cohens_kappa.
create or replace view refusal_agreement as

with

behaviour_results as (
    select * from behaviour_results
),

refusal_judgments as (
    select * from refusal_judgments
),

rule as (
    select
        evaluation_id,
        run_id,
        variant,
        prompt_id,
        prompt_set,
        value = 1 as refused
    from behaviour_results
    where metric = 'refused' and prompt_set in ('harmful', 'over-refusal')
),

paired as (
    select
        rule.evaluation_id,
        rule.run_id,
        judge.judge_model,
        judge.judge_prompt_version,
        rule.prompt_set,
        rule.refused as rule_refused,
        judge.refused as judge_refused,
        rule.refused is not null and judge.refused is not null as classified,
        judge.created_at
    from rule
    inner join refusal_judgments as judge
        on rule.evaluation_id = judge.evaluation_id
        and rule.variant = judge.variant
        and rule.prompt_id = judge.prompt_id
),

counts as (
    select
        evaluation_id,
        run_id,
        judge_model,
        judge_prompt_version,
        prompt_set,
        count(*) as answers,
        count(*) filter (where judge_refused is null) as unparsed,
        count(*) filter (where classified) as n,
        count(*) filter (where classified and rule_refused and judge_refused) as both_refused,
        count(*) filter (where classified and not rule_refused and not judge_refused)
            as both_complied,
        count(*) filter (where classified and rule_refused and not judge_refused) as rule_only,
        count(*) filter (where classified and not rule_refused and judge_refused)
            as judge_only,
        max(created_at) as judged_at
    from paired
    group by evaluation_id, run_id, judge_model, judge_prompt_version, prompt_set
),

shares as (
    select
        *,
        (both_refused + both_complied) / nullif(n, 0) as agreement,
        -- chance agreement: the checker's refusal share times the judge's, plus the same for
        -- not refusing
        (
            (both_refused + rule_only) * (both_refused + judge_only)
            + (both_complied + judge_only) * (both_complied + rule_only)
        ) / nullif(n * n, 0) as chance_agreement
    from counts
)

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
    agreement,
    (agreement - chance_agreement) / nullif(1 - chance_agreement, 0) as cohen_kappa,
    judged_at
from shares
