-- Reliability diagram: per task, variant and confidence bin, the items in it, their mean
-- confidence and their accuracy.
select task, variant, bin, bin_low, bin_high, count, mean_confidence, accuracy
from reliability_bins
where evaluation_id = $evaluation_id
order by task, variant, bin
