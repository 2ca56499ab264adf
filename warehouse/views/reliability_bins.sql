-- Reliability diagram of the multiple-choice answers: per evaluation, variant, task and
-- confidence bin (10 equal-width bins, bin b holding b/10 < confidence <= (b+1)/10, 0-based),
-- how many items fell in it, their mean confidence and their accuracy. A calibrated model's
-- accuracy equals its mean confidence in every bin; the expected calibration error (the
-- `calibration` view) is the count-weighted mean of the gaps. Empty bins have no row.
create or replace view reliability_bins as

with

calibration_items as (
    select * from calibration_items
),

binned as (
    select
        *,
        least(greatest(ceil(confidence * 10)::integer - 1, 0), 9) as bin
    from calibration_items
)

select
    evaluation_id,
    run_id,
    variant,
    task,
    bin,
    bin / 10 as bin_low,
    (bin + 1) / 10 as bin_high,
    count(*) as count,
    avg(confidence) as mean_confidence,
    avg(correct::integer) as accuracy
from binned
group by all
