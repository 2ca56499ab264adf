-- Paired items: every item an evaluation compares between base and tuned, one row per
-- comparison (family, metric, slice) and item, with both variants' values. This view says
-- what is compared; lorascope.evaluation.comparisons reads it and decides the statistics
-- (a test, an interval, the adjusted p and the MDE) into `comparisons`.
-- kind: 'ratio' items carry a numerator (value) and a denominator (weight), pooled over
-- items (loss per token); 'ece' items a confidence (value) and whether the answer was right
-- (weight, 0 or 1), the expected calibration error over items; otherwise the mean of the
-- values, pass/fail when all are 0 or 1.
-- eval_set and item_id name the item for the contamination check; higher_is_better the
-- metric's good direction where it has one (the gate and the report read it): passing goal
-- checks, reference scores, instructions followed, capability and judge wins are better
-- higher; failure modes, calibration error, perplexity and losses lower; answer length (goal
-- `words`) has none; the behaviour checkers declare their own.
create or replace view paired_items as

with

paired_scores as (
    select * from paired_scores
),

prompts as (
    select * from prompts
),

instruction_results as (
    select * from instruction_results
),

capability_items as (
    select * from capability_items
),

calibration_items as (
    select * from calibration_items
),

generations as (
    select * from generations
),

generation_failures as (
    select * from generation_failures
),

perplexity_items as (
    select * from perplexity_items
),

judge_outcomes as (
    select * from judge_outcomes
),

test_losses as (
    select * from test_losses
),

behaviour_results as (
    select * from behaviour_results
),

goal as (
    select
        paired_scores.evaluation_id,
        paired_scores.run_id,
        'goal' as family,
        paired_scores.metric,
        coalesce(paired_scores.domain, '') as slice,
        'mean' as kind,
        prompts.source as eval_set,
        paired_scores.prompt_id as item_id,
        paired_scores.base_value,
        paired_scores.tuned_value,
        1.0 as base_weight,
        1.0 as tuned_weight,
        paired_scores.metric <> 'words' or null as higher_is_better
    from paired_scores
    left join prompts
        on paired_scores.evaluation_id = prompts.evaluation_id
        and paired_scores.prompt_id = prompts.prompt_id
),

instructions as (
    select
        base.evaluation_id,
        base.run_id,
        case when base.instruction_id like 'ifbench:%' then 'ifbench' else 'ifeval' end
            as instruction_family,
        -- The instruction's type: IFEval's group ('detectable_format'), IFBench's ('count').
        case when base.instruction_id like 'ifbench:%'
            then split_part(base.instruction_id, ':', 2)
            else split_part(base.instruction_id, ':', 1) end as instruction_type,
        base.prompt_id,
        base.instruction_index,
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

instruction_prompts as (
    select
        evaluation_id,
        run_id,
        instruction_family,
        prompt_id,
        min(base_strict) as base_strict,
        min(tuned_strict) as tuned_strict,
        min(base_loose) as base_loose,
        min(tuned_loose) as tuned_loose
    from instructions
    group by all
),

-- IFEval's four numbers per family (prompt and instruction level, strict and loose), and the
-- instruction level per instruction type.
instruction_levels as (
    select evaluation_id, run_id, 'prompt' as level, instruction_family as slice, prompt_id,
        prompt_id as item_id, base_strict, tuned_strict, base_loose, tuned_loose
    from instruction_prompts
    union all
    select evaluation_id, run_id, 'instruction', instruction_family, prompt_id,
        prompt_id || '#' || instruction_index, base_strict, tuned_strict, base_loose,
        tuned_loose
    from instructions
    union all
    select evaluation_id, run_id, 'instruction', instruction_family || ':' || instruction_type,
        prompt_id, prompt_id || '#' || instruction_index, base_strict, tuned_strict,
        base_loose, tuned_loose
    from instructions
),

instruction_following as (
    select evaluation_id, run_id, 'instruction_following' as family,
        level || '_strict' as metric, slice, 'mean' as kind, prompt_id, item_id,
        base_strict as base_value, tuned_strict as tuned_value
    from instruction_levels
    union all
    select evaluation_id, run_id, 'instruction_following', level || '_loose', slice, 'mean',
        prompt_id, item_id, base_loose, tuned_loose
    from instruction_levels
),

capability as (
    select
        base.evaluation_id,
        base.run_id,
        'capability' as family,
        metric.name as metric,
        base.task as slice,
        'mean' as kind,
        base.task as eval_set,
        base.item_id,
        case when metric.name = 'acc' then base.correct else base.correct_norm end::integer
            as base_value,
        case when metric.name = 'acc' then tuned.correct else tuned.correct_norm end::integer
            as tuned_value,
        true as higher_is_better
    from capability_items as base
    inner join capability_items as tuned
        on base.evaluation_id = tuned.evaluation_id
        and base.task = tuned.task
        and base.item_id = tuned.item_id
    cross join (values ('acc'), ('acc_norm')) as metric(name)
    where base.variant = 'base' and tuned.variant = 'tuned'
),

-- Calibration (calibration_items): `brier`, each item's multi-class Brier score of the
-- softmax over its choices, a score per item; `ece`, the expected calibration error, is no
-- per-item mean: its items carry the confidence (value) and whether the answer was right
-- (weight), and lorascope.evaluation.calibration.ece_comparison bootstraps it.
calibration as (
    select
        base.evaluation_id,
        base.run_id,
        'calibration' as family,
        metric.name as metric,
        base.task as slice,
        metric.kind,
        base.task as eval_set,
        base.item_id,
        case when metric.name = 'brier' then base.brier else base.confidence end
            as base_value,
        case when metric.name = 'brier' then tuned.brier else tuned.confidence end
            as tuned_value,
        case when metric.name = 'brier' then 1.0 else base.correct::double end
            as base_weight,
        case when metric.name = 'brier' then 1.0 else tuned.correct::double end
            as tuned_weight,
        false as higher_is_better
    from calibration_items as base
    inner join calibration_items as tuned
        on base.evaluation_id = tuned.evaluation_id
        and base.task = tuned.task
        and base.item_id = tuned.item_id
    cross join (values ('brier', 'mean'), ('ece', 'ece')) as metric(name, kind)
    where base.variant = 'base' and tuned.variant = 'tuned'
),

-- Failure modes: per prompt answered by both, whether each variant's answer shows the mode
-- (0 when it does not), for every mode seen in the evaluation. Behaviour prompts are judged
-- by their own checkers (a refusal is right on a harmful request), not here.
answered as (
    select base.evaluation_id, base.run_id, base.prompt_id
    from generations as base
    inner join generations as tuned
        on base.evaluation_id = tuned.evaluation_id
        and base.prompt_id = tuned.prompt_id
    inner join prompts
        on base.evaluation_id = prompts.evaluation_id
        and base.prompt_id = prompts.prompt_id
    where base.variant = 'base' and tuned.variant = 'tuned'
        and prompts.behaviour_family is null
),

modes as (
    select distinct evaluation_id, mode
    from generation_failures
),

failure_mode as (
    select
        answered.evaluation_id,
        answered.run_id,
        'failure_mode' as family,
        modes.mode as metric,
        '(all)' as slice,
        'mean' as kind,
        answered.prompt_id as item_id,
        (count(*) filter (where failures.variant = 'base') > 0)::integer as base_value,
        (count(*) filter (where failures.variant = 'tuned') > 0)::integer as tuned_value,
        false as higher_is_better
    from answered
    inner join modes
        on answered.evaluation_id = modes.evaluation_id
    left join generation_failures as failures
        on answered.evaluation_id = failures.evaluation_id
        and answered.prompt_id = failures.prompt_id
        and modes.mode = failures.mode
    group by all
),

perplexity as (
    select
        base.evaluation_id,
        base.run_id,
        'perplexity' as family,
        'loss_per_token' as metric,
        base.corpus as slice,
        'ratio' as kind,
        base.corpus as eval_set,
        base.item_id,
        base.nll as base_value,
        tuned.nll as tuned_value,
        base.tokens::double as base_weight,
        tuned.tokens::double as tuned_weight,
        false as higher_is_better
    from perplexity_items as base
    inner join perplexity_items as tuned
        on base.evaluation_id = tuned.evaluation_id
        and base.corpus = tuned.corpus
        and base.item_id = tuned.item_id
    where base.variant = 'base' and tuned.variant = 'tuned'
),

-- Test loss: mlx_lm.lora --test's loss (tokens, nll) and the reference answers' own loss
-- (answer_tokens, answer_nll), pooled over the test examples.
heldout_loss as (
    select
        base.evaluation_id,
        base.run_id,
        'test_loss' as family,
        metric.name as metric,
        '' as slice,
        'ratio' as kind,
        'test' as eval_set,
        base.example_id as item_id,
        case when metric.name = 'test_loss' then base.nll else base.answer_nll end
            as base_value,
        case when metric.name = 'test_loss' then tuned.nll else tuned.answer_nll end
            as tuned_value,
        case when metric.name = 'test_loss' then base.tokens else base.answer_tokens end::double
            as base_weight,
        case when metric.name = 'test_loss' then tuned.tokens else tuned.answer_tokens end::double
            as tuned_weight,
        false as higher_is_better
    from test_losses as base
    inner join test_losses as tuned
        on base.evaluation_id = tuned.evaluation_id
        and base.example_id = tuned.example_id
    cross join (values ('test_loss'), ('answer_loss')) as metric(name)
    where base.variant = 'base' and tuned.variant = 'tuned' and base.nll is not null
        and tuned.nll is not null
),

-- The judge: per judged prompt, whether it named base (base_value 1) or tuned (tuned_value 1)
-- the winner in both orders; ties are 0 for both, so the exact test is the sign test on wins.
judge as (
    select
        evaluation_id,
        run_id,
        'judge' as family,
        'wins' as metric,
        judge_model as slice,
        'mean' as kind,
        prompt_id as item_id,
        (outcome = 'base')::integer as base_value,
        (outcome = 'tuned')::integer as tuned_value,
        true as higher_is_better
    from judge_outcomes
    where outcome <> 'unparsed'
),

-- Behaviour families: each checker metric of each behaviour prompt set, per prompt.
behaviour as (
    select
        base.evaluation_id,
        base.run_id,
        base.family,
        base.metric,
        base.prompt_set as slice,
        'mean' as kind,
        base.prompt_set as eval_set,
        base.prompt_id as item_id,
        base.value as base_value,
        tuned.value as tuned_value,
        1.0 as base_weight,
        1.0 as tuned_weight,
        base.higher_is_better
    from behaviour_results as base
    inner join behaviour_results as tuned
        on base.evaluation_id = tuned.evaluation_id
        and base.prompt_id = tuned.prompt_id
        and base.metric = tuned.metric
    where base.variant = 'base' and tuned.variant = 'tuned'
)

select * from goal
union all by name
select
    instruction_following.* exclude (prompt_id),
    prompts.source as eval_set,
    1.0 as base_weight,
    1.0 as tuned_weight,
    true as higher_is_better
from instruction_following
left join prompts
    on instruction_following.evaluation_id = prompts.evaluation_id
    and instruction_following.prompt_id = prompts.prompt_id
union all by name
select *, 1.0 as base_weight, 1.0 as tuned_weight from capability
union all by name
select * from calibration
union all by name
select
    failure_mode.*,
    prompts.source as eval_set,
    1.0 as base_weight,
    1.0 as tuned_weight
from failure_mode
left join prompts
    on failure_mode.evaluation_id = prompts.evaluation_id
    and failure_mode.item_id = prompts.prompt_id
union all by name
select * from perplexity
union all by name
select * from heldout_loss
union all by name
select
    judge.*,
    prompts.source as eval_set,
    1.0 as base_weight,
    1.0 as tuned_weight
from judge
left join prompts
    on judge.evaluation_id = prompts.evaluation_id
    and judge.item_id = prompts.prompt_id
union all by name
select * from behaviour
