-- 0003: evaluation detail. IFEval instructions per prompt and their per-instruction results,
-- per-prompt latency and batch throughput of generations, failure modes keyed by the broken
-- instruction (the table is renamed so the `failure_modes` view can count them), perplexity
-- per passage, and the verdicts of the capability regression gate.

alter table prompts add column instructions json;

alter table generations add column batch_index integer;
alter table generations add column batch_size integer;
alter table generations add column batch_tokens_per_second double;

-- One row per failure mode found in a generation, with the output span that shows it;
-- instruction_id names the broken instruction of a format_violation ('' for other modes).
create table generation_failures (
    run_id varchar,
    variant varchar check (variant in ('base', 'tuned')),
    prompt_id varchar,
    mode varchar,
    instruction_id varchar default '',
    evidence varchar,
    primary key (run_id, variant, prompt_id, mode, instruction_id)
);

insert into generation_failures (run_id, variant, prompt_id, mode, evidence)
select run_id, variant, prompt_id, mode, evidence from failure_modes;

drop view if exists failure_mode_counts;
drop table failure_modes;

-- lm-eval's IFEval verdicts per instruction of a prompt: strict on the response as is,
-- loose on any of its variants with the first/last line or markdown asterisks removed.
create table instruction_results (
    run_id varchar,
    variant varchar check (variant in ('base', 'tuned')),
    prompt_id varchar,
    instruction_index integer,
    instruction_id varchar,
    strict boolean,
    loose boolean,
    primary key (run_id, variant, prompt_id, instruction_index)
);

-- Held-out text scored token by token: nll is the summed negative log-likelihood (nats) of
-- the passage's tokens after the first.
create table perplexity_items (
    run_id varchar,
    variant varchar check (variant in ('base', 'tuned')),
    corpus varchar,
    item_id varchar,
    tokens integer,
    nll double,
    primary key (run_id, variant, corpus, item_id)
);

-- The capability regression gate: a task fails when its accuracy fell by more than
-- max_drop and, if require_ci, the 95 % CI of the paired difference lies below 0.
create table capability_gate (
    run_id varchar,
    task varchar,
    metric varchar,
    delta double,
    ci_low double,
    ci_high double,
    max_drop double,
    require_ci boolean,
    failed boolean,
    primary key (run_id, task, metric)
);
