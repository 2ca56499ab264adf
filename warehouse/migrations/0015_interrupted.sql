-- 0015: runs and evaluations may be `interrupted`: their writer died without finishing (a
-- SIGKILL, a killed Prefect worker), as `lorascope status` finds from the run's free lock.
-- DuckDB cannot alter a CHECK constraint, so both tables are rebuilt with the same columns.

create table runs_new (
    run_id varchar primary key,
    name varchar,
    status varchar check (status in ('running', 'completed', 'failed', 'interrupted')),
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
insert into runs_new by name select * from runs;
drop table runs;
alter table runs_new rename to runs;

create table evaluations_new (
    evaluation_id varchar primary key,
    run_id varchar,
    status varchar check (status in ('running', 'completed', 'failed', 'interrupted')),
    started_at timestamp,
    finished_at timestamp,
    eval_config json,
    eval_hash varchar,
    adapter_path varchar,
    adapter_hash varchar,
    code_version varchar,
    error varchar
);
insert into evaluations_new by name select * from evaluations;
drop table evaluations;
alter table evaluations_new rename to evaluations;
