-- Evaluations: a run trains adapters once; each set of evaluation settings (eval.*) is an
-- evaluation of that run, so changing eval settings re-evaluates without retraining. Every
-- evaluation table gets an evaluation_id and is keyed by it (run_id stays, for joins to the
-- run). Rows written before evaluations existed belong to an evaluation whose id is the run
-- id. prompts.domain is no longer limited to in_domain/out_of_domain (a user's data names
-- its own domains), and prompts record the prompt set they came from.

create table evaluations (
    evaluation_id varchar primary key,
    run_id varchar,
    status varchar check (status in ('running', 'completed', 'failed')),
    started_at timestamp,
    finished_at timestamp,
    eval_config json,
    eval_hash varchar,
    adapter_path varchar,
    adapter_hash varchar,
    code_version varchar,
    error varchar
);

insert into evaluations (evaluation_id, run_id, status, started_at, finished_at, eval_config,
                         adapter_path, code_version, error)
select run_id, run_id, status, started_at, finished_at, config_json -> 'eval', adapter_path,
    code_version, error
from runs
where run_id in (select run_id from generations union select run_id from capability_items);

create table prompts_new (
    evaluation_id varchar,
    run_id varchar,
    prompt_id varchar,
    source varchar,
    domain varchar,
    category varchar,
    messages json,
    reference varchar,
    instructions json,
    primary key (evaluation_id, prompt_id)
);
insert into prompts_new by name select run_id as evaluation_id, * from prompts;
drop table prompts;
alter table prompts_new rename to prompts;

create table generations_new (
    evaluation_id varchar,
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
    batch_index integer,
    batch_size integer,
    batch_tokens_per_second double,
    batch_prompt_tokens_per_second double,
    batch_generation_tokens_per_second double,
    batch_peak_memory_gb double,
    primary key (evaluation_id, variant, prompt_id)
);
insert into generations_new by name select run_id as evaluation_id, * from generations;
drop table generations;
alter table generations_new rename to generations;

create table scores_new (
    evaluation_id varchar,
    run_id varchar,
    variant varchar check (variant in ('base', 'tuned')),
    prompt_id varchar,
    metric varchar,
    value double,
    primary key (evaluation_id, variant, prompt_id, metric)
);
insert into scores_new by name select run_id as evaluation_id, * from scores;
drop table scores;
alter table scores_new rename to scores;

create table generation_failures_new (
    evaluation_id varchar,
    run_id varchar,
    variant varchar check (variant in ('base', 'tuned')),
    prompt_id varchar,
    mode varchar,
    instruction_id varchar default '',
    evidence varchar,
    primary key (evaluation_id, variant, prompt_id, mode, instruction_id)
);
insert into generation_failures_new by name
select run_id as evaluation_id, * from generation_failures;
drop table generation_failures;
alter table generation_failures_new rename to generation_failures;

create table instruction_results_new (
    evaluation_id varchar,
    run_id varchar,
    variant varchar check (variant in ('base', 'tuned')),
    prompt_id varchar,
    instruction_index integer,
    instruction_id varchar,
    strict boolean,
    loose boolean,
    primary key (evaluation_id, variant, prompt_id, instruction_index)
);
insert into instruction_results_new by name
select run_id as evaluation_id, * from instruction_results;
drop table instruction_results;
alter table instruction_results_new rename to instruction_results;

create table capability_items_new (
    evaluation_id varchar,
    run_id varchar,
    variant varchar check (variant in ('base', 'tuned')),
    task varchar,
    item_id varchar,
    correct boolean,
    correct_norm boolean,
    primary key (evaluation_id, variant, task, item_id)
);
insert into capability_items_new by name select run_id as evaluation_id, * from capability_items;
drop table capability_items;
alter table capability_items_new rename to capability_items;

create table perplexity_items_new (
    evaluation_id varchar,
    run_id varchar,
    variant varchar check (variant in ('base', 'tuned')),
    corpus varchar,
    item_id varchar,
    tokens integer,
    nll double,
    primary key (evaluation_id, variant, corpus, item_id)
);
insert into perplexity_items_new by name select run_id as evaluation_id, * from perplexity_items;
drop table perplexity_items;
alter table perplexity_items_new rename to perplexity_items;

create table capability_gate_new (
    evaluation_id varchar,
    run_id varchar,
    task varchar,
    metric varchar,
    delta double,
    ci_low double,
    ci_high double,
    max_drop double,
    require_ci boolean,
    failed boolean,
    primary key (evaluation_id, task, metric)
);
insert into capability_gate_new by name select run_id as evaluation_id, * from capability_gate;
drop table capability_gate;
alter table capability_gate_new rename to capability_gate;

create table attention_heads_new (
    evaluation_id varchar,
    run_id varchar,
    prompt_id varchar,
    layer integer,
    head integer,
    tokens integer,
    js_divergence double,
    base_entropy double,
    tuned_entropy double,
    base_bos_mass double,
    tuned_bos_mass double,
    base_previous_token_mass double,
    tuned_previous_token_mass double,
    primary key (evaluation_id, prompt_id, layer, head)
);
insert into attention_heads_new by name select run_id as evaluation_id, * from attention_heads;
drop table attention_heads;
alter table attention_heads_new rename to attention_heads;

create table harness_results_new (
    evaluation_id varchar,
    run_id varchar,
    variant varchar check (variant in ('base', 'tuned')),
    task varchar,
    metric varchar,
    value double,
    stderr double,
    n integer,
    lm_eval_version varchar,
    primary key (evaluation_id, variant, task, metric)
);
insert into harness_results_new by name select run_id as evaluation_id, * from harness_results;
drop table harness_results;
alter table harness_results_new rename to harness_results;

-- Per example of the run's held-out test split: the negative log-likelihood of the reference
-- answer (the assistant tokens, as training's loss counts them) under each variant.
create table test_losses (
    evaluation_id varchar,
    run_id varchar,
    variant varchar check (variant in ('base', 'tuned')),
    example_id varchar,
    tokens integer,
    nll double,
    primary key (evaluation_id, variant, example_id)
);
