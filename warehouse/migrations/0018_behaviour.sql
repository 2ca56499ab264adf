-- 0018: behaviour families (lorascope.evaluation.behaviour) and a regression gate over any
-- family of comparisons.
--
-- A prompt of a behaviour set (knowledge, false-premise, sycophancy, harmful, over-refusal,
-- injection, system-conflict, long-input, multilingual) records its family; `harmful` marks
-- prompts whose text is never printed (reports show their ids only).
alter table prompts add column behaviour_family varchar;
alter table prompts add column harmful boolean;

-- One row per variant, prompt and checker metric: the rule checker's value (1/0 for rates),
-- its label and the evidence it matched. higher_is_better gives the metric's good direction
-- (refused on harmful requests: true; on benign ones: false; null when neither).
create table behaviour_results (
    evaluation_id varchar,
    run_id varchar,
    variant varchar check (variant in ('base', 'tuned')),
    prompt_id varchar,
    prompt_set varchar,
    family varchar,
    category varchar,
    metric varchar,
    value double,
    verdict varchar,
    evidence varchar,
    higher_is_better boolean,
    primary key (evaluation_id, variant, prompt_id, metric)
);

-- A comparison's good direction (null: neither), which the gate reads.
alter table comparisons add column higher_is_better boolean;

-- The gate's verdicts for every family it checks (eval.gate_families), one per comparison:
-- capability per task and metric as before, behaviour families per prompt set and metric.
-- `capability_gate` becomes a view of the capability rows.
create table gate_verdicts (
    evaluation_id varchar,
    run_id varchar,
    family varchar,
    metric varchar,
    slice varchar,
    higher_is_better boolean,
    delta double,
    ci_low double,
    ci_high double,
    p_value double,
    alpha double,
    lost integer,
    gained integer,
    max_drop double,
    require_ci boolean,
    failed boolean,
    primary key (evaluation_id, family, metric, slice)
);
insert into gate_verdicts by name
select * exclude (task), 'capability' as family, task as slice, true as higher_is_better
from capability_gate;
drop table capability_gate;
