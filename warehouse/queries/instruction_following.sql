-- Did instruction following improve? IFEval (lm-eval's checkers) and IFBench accuracies of
-- base and tuned per level, instruction type and strictness, with the change's interval, p,
-- adjusted p and minimum detectable effect, latest evaluation first; '(all)' rows pool a
-- family's instructions.
select
    instruction_following.evaluation_id,
    instruction_following.run_id,
    family,
    level,
    instruction_type,
    strictness,
    n,
    round(base_acc, 3) as base_acc,
    round(tuned_acc, 3) as tuned_acc,
    round(delta, 3) as delta,
    round(ci_low, 3) as ci_low,
    round(ci_high, 3) as ci_high,
    round(p_value, 4) as p,
    round(p_adjusted, 4) as p_adjusted,
    round(mde, 3) as mde
from instruction_following
left join evaluations on instruction_following.evaluation_id = evaluations.evaluation_id
order by
    evaluations.started_at desc nulls last,
    instruction_following.evaluation_id,
    family desc,
    level desc,
    instruction_type = '(all)' desc,
    instruction_type,
    strictness desc
