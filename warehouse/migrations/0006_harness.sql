-- 0006: capability tasks run by lm-evaluation-harness itself (lorascope.harness): one row per
-- run, variant, task (or group) and metric, as lm-eval reports it. stderr is lm-eval's
-- standard error of the value (null where lm-eval gives none); n is the documents scored.
create table harness_results (
    run_id varchar,
    variant varchar check (variant in ('base', 'tuned')),
    task varchar,
    metric varchar,
    value double,
    stderr double,
    n integer,
    lm_eval_version varchar,
    primary key (run_id, variant, task, metric)
);
