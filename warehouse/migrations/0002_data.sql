-- 0002: what data preparation kept and dropped, one row per split and run.
-- split 'all' is an unsplit source before it was split into train/valid/test.
-- The reason columns count the rows dropped for that reason:
-- rows_out = rows_in - exact_duplicate - near_duplicate - too_long.

create table data_preparation (
    run_id varchar,
    split varchar check (split in ('all', 'train', 'valid', 'test')),
    rows_in bigint,
    exact_duplicate bigint,
    near_duplicate bigint,
    too_long bigint,
    rows_out bigint,
    examples json,  -- first dropped rows: file, line, reason, detail
    primary key (run_id, split)
);
