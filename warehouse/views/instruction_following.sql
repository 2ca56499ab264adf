-- Instruction following, lm-eval's IFEval metrics for base and tuned side by side: per run,
-- family ('ifeval', or 'ifbench' for the 'ifbench:' instruction ids), level ('prompt': every
-- instruction of the family in the prompt followed; 'instruction': each one) and instruction id
-- ('(all)' pools the family's), the strict and loose accuracy of both variants on the same
-- prompts and the difference tuned - base.
create or replace view instruction_following as

with

instruction_results as (
    select * from instruction_results
),

paired as (
    select
        base.evaluation_id,
        base.run_id,
        case when base.instruction_id like 'ifbench:%' then 'ifbench' else 'ifeval' end
            as family,
        base.prompt_id,
        base.instruction_id,
        base.strict::integer as base_strict,
        tuned.strict::integer as tuned_strict,
        base.loose::integer as base_loose,
        tuned.loose::integer as tuned_loose
    from instruction_results as base
    inner join instruction_results as tuned
        on base.evaluation_id = tuned.evaluation_id
        and base.prompt_id = tuned.prompt_id
        and base.instruction_index = tuned.instruction_index
    where base.variant = 'base' and tuned.variant = 'tuned'
),

per_prompt as (
    select
        evaluation_id,
        run_id,
        family,
        prompt_id,
        min(base_strict) as base_strict,
        min(tuned_strict) as tuned_strict,
        min(base_loose) as base_loose,
        min(tuned_loose) as tuned_loose
    from paired
    group by evaluation_id, run_id, family, prompt_id
),

levels as (
    select evaluation_id, run_id, family, 'prompt' as level, '(all)' as instruction_id,
        base_strict, tuned_strict, base_loose, tuned_loose
    from per_prompt
    union all
    select evaluation_id, run_id, family, 'instruction', '(all)',
        base_strict, tuned_strict, base_loose, tuned_loose
    from paired
    union all
    select evaluation_id, run_id, family, 'instruction', instruction_id,
        base_strict, tuned_strict, base_loose, tuned_loose
    from paired
)

select
    evaluation_id,
    run_id,
    family,
    level,
    instruction_id,
    count(*) as n,
    avg(base_strict) as base_strict_acc,
    avg(tuned_strict) as tuned_strict_acc,
    avg(tuned_strict) - avg(base_strict) as delta_strict,
    avg(base_loose) as base_loose_acc,
    avg(tuned_loose) as tuned_loose_acc,
    avg(tuned_loose) - avg(base_loose) as delta_loose
from levels
group by evaluation_id, run_id, family, level, instruction_id
