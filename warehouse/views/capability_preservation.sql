-- Capability preservation: per run and task, base and tuned accuracy on the same
-- multiple-choice items (acc and acc_norm), the difference tuned - base, and its 95 % CI as a
-- paired difference: d_i = tuned_i - base_i per item, mean(d) ± 1.96 · sd(d) / √n, with the
-- sample sd. Items answered by one variant only are left out.
create or replace view capability_preservation as

with

capability_items as (
    select * from capability_items
),

base as (
    select
        evaluation_id,
        run_id,
        task,
        item_id,
        correct::integer as correct,
        correct_norm::integer as correct_norm
    from capability_items
    where variant = 'base'
),

tuned as (
    select
        evaluation_id,
        run_id,
        task,
        item_id,
        correct::integer as correct,
        correct_norm::integer as correct_norm
    from capability_items
    where variant = 'tuned'
),

paired as (
    select
        base.evaluation_id,
        base.run_id,
        base.task,
        base.correct as base_correct,
        tuned.correct as tuned_correct,
        tuned.correct - base.correct as diff,
        base.correct_norm as base_correct_norm,
        tuned.correct_norm as tuned_correct_norm,
        tuned.correct_norm - base.correct_norm as diff_norm
    from base
    inner join tuned
        on base.evaluation_id = tuned.evaluation_id
        and base.task = tuned.task
        and base.item_id = tuned.item_id
),

per_task as (
    select
        evaluation_id,
        run_id,
        task,
        count(*) as n,
        avg(base_correct) as base_acc,
        avg(tuned_correct) as tuned_acc,
        avg(diff) as delta_acc,
        paired_ci95_margin(diff) as margin_acc,
        avg(base_correct_norm) as base_acc_norm,
        avg(tuned_correct_norm) as tuned_acc_norm,
        avg(diff_norm) as delta_acc_norm,
        paired_ci95_margin(diff_norm) as margin_acc_norm
    from paired
    group by evaluation_id, run_id, task
)

select
    evaluation_id,
    run_id,
    task,
    n,
    base_acc,
    tuned_acc,
    delta_acc,
    delta_acc - margin_acc as delta_acc_ci_low,
    delta_acc + margin_acc as delta_acc_ci_high,
    base_acc_norm,
    tuned_acc_norm,
    delta_acc_norm,
    delta_acc_norm - margin_acc_norm as delta_acc_norm_ci_low,
    delta_acc_norm + margin_acc_norm as delta_acc_norm_ci_high
from per_task
