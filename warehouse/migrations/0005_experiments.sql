-- 0005: experiments. A sweep runs the pipeline once per value of one config parameter
-- (lora.rank for rank sensitivity, data.source for domain specialization, ...); each member
-- run is an ordinary run, tied to its experiment here.
create table experiments (
    experiment_id varchar,
    run_id varchar,
    parameter varchar,
    position integer,  -- the value's place in the sweep, for ordering
    value varchar,
    lora_rank integer,
    lora_scale double,
    created_at timestamp,
    primary key (experiment_id, run_id)
);
