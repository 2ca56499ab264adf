-- 0001: the tables of a lorascope warehouse.
-- Every table but runs and schema_version is keyed by run_id plus what makes a row unique
-- within a run, so loading a step again replaces its rows (INSERT OR REPLACE).

create table schema_version (
    version integer primary key,
    applied_at timestamp not null
);

create table runs (
    run_id varchar primary key,
    name varchar,
    status varchar check (status in ('running', 'completed', 'failed')),
    started_at timestamp,
    finished_at timestamp,
    config_json json,
    config_hash varchar,
    seed integer,
    model_source varchar,
    base_model_path varchar,
    adapter_path varchar,
    data_source varchar,
    data_hash varchar,
    code_version varchar,
    run_dir varchar,
    error varchar
);

create table train_metrics (
    run_id varchar,
    step integer,
    split varchar check (split in ('train', 'valid')),
    loss double,
    learning_rate double,
    tokens_per_second double,
    trained_tokens bigint,
    peak_memory_gb double,
    primary key (run_id, step, split)
);

-- One row per expectation result of the training-data suite; column_name is '' for
-- table-level expectations; rule (the expectation's description) tells apart two
-- expectations of one type on one column, such as the per-split row counts.
create table validations (
    run_id varchar,
    expectation varchar,
    column_name varchar default '',
    rule varchar default '',
    success boolean,
    element_count bigint,
    unexpected_count bigint,
    unexpected_percent double,
    mostly double,
    examples json,
    primary key (run_id, expectation, column_name, rule)
);

create table prompts (
    run_id varchar,
    prompt_id varchar,
    domain varchar check (domain in ('in_domain', 'out_of_domain')),
    category varchar,
    messages json,
    reference varchar,
    primary key (run_id, prompt_id)
);

create table generations (
    run_id varchar,
    variant varchar check (variant in ('base', 'tuned')),
    prompt_id varchar,
    prompt_text varchar,
    output_text varchar,
    prompt_tokens integer,
    output_tokens integer,
    finish_reason varchar check (finish_reason in ('stop', 'length')),
    latency_seconds double,
    created_at timestamp,
    primary key (run_id, variant, prompt_id)
);

-- value is 0 or 1 for pass/fail checks, a number for graded metrics.
create table scores (
    run_id varchar,
    variant varchar check (variant in ('base', 'tuned')),
    prompt_id varchar,
    metric varchar,
    value double,
    primary key (run_id, variant, prompt_id, metric)
);

-- Per-question results of log-likelihood multiple choice, as lm-evaluation-harness scores them:
-- correct is acc (highest summed log-likelihood), correct_norm is acc_norm (highest
-- log-likelihood per character of the choice).
create table capability_items (
    run_id varchar,
    variant varchar check (variant in ('base', 'tuned')),
    task varchar,
    item_id varchar,
    correct boolean,
    correct_norm boolean,
    primary key (run_id, variant, task, item_id)
);

create table failure_modes (
    run_id varchar,
    variant varchar check (variant in ('base', 'tuned')),
    prompt_id varchar,
    mode varchar,
    evidence varchar,
    primary key (run_id, variant, prompt_id, mode)
);
