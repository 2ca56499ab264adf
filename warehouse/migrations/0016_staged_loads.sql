-- 0016: batches of rows that waited in the staging folder while another process held the
-- warehouse file. A batch's rows and its row here are written in one transaction, so loading
-- a batch again (after a crash before its file was deleted) finds it here and skips it.
create table staged_loads (
    batch_id varchar primary key,
    table_name varchar not null,
    row_count bigint not null,
    staged_at timestamp,
    loaded_at timestamp not null
);
