-- 0010: rows kept but truncated to data.max_seq_length tokens for training
-- (data.over_length: truncate, mlx-lm's behaviour). Not a drop reason: rows_out still
-- counts them, and rows_out = rows_in - exact_duplicate - near_duplicate - too_long holds.

alter table data_preparation add column truncated bigint default 0;
