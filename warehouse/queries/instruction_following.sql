-- Did instruction following improve? IFEval (lm-eval's checkers) and IFBench accuracies,
-- strict and loose, prompt and instruction level, of base and tuned, latest evaluation first;
-- '(all)' rows pool a family's instructions.
select
    instruction_following.evaluation_id,
    instruction_following.run_id,
    family,
    level,
    instruction_id,
    n,
    round(base_strict_acc, 3) as base_strict,
    round(tuned_strict_acc, 3) as tuned_strict,
    round(delta_strict, 3) as delta_strict,
    round(base_loose_acc, 3) as base_loose,
    round(tuned_loose_acc, 3) as tuned_loose,
    round(delta_loose, 3) as delta_loose
from instruction_following
left join evaluations on instruction_following.evaluation_id = evaluations.evaluation_id
order by
    evaluations.started_at desc nulls last,
    instruction_following.evaluation_id,
    family desc,
    level desc,
    instruction_id = '(all)' desc,
    instruction_id
