-- Instruction following, lm-eval's IFEval metrics for base and tuned: per evaluation, family
-- ('ifeval', or 'ifbench' for the 'ifbench:' instruction ids), level ('prompt': every
-- instruction of the family in the prompt followed; 'instruction': each one), instruction
-- type ('(all)' pools the family's; IFEval's group such as 'detectable_format', IFBench's
-- such as 'count') and strictness (strict: the response as is; loose: IFEval's relaxed
-- variants), the accuracy of both on the same prompts and its test (comparisons).
create or replace view instruction_following as

with

comparisons as (
    select * from comparisons
)

select
    evaluation_id,
    run_id,
    split_part(slice, ':', 1) as family,
    split_part(metric, '_', 1) as level,
    coalesce(nullif(split_part(slice, ':', 2), ''), '(all)') as instruction_type,
    split_part(metric, '_', 2) as strictness,
    n,
    excluded,
    base as base_acc,
    tuned as tuned_acc,
    delta,
    ci_low,
    ci_high,
    p_value,
    p_adjusted,
    mde,
    test
from comparisons
where family = 'instruction_following'
