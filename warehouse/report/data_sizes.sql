-- Rows per prepared split of the run: read, dropped as duplicates or too long, kept.
select split, rows_in, exact_duplicate, near_duplicate, too_long, rows_out
from data_preparation
where run_id = $run_id
order by split = 'train' desc, split = 'valid' desc, split
