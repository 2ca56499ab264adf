-- Loss per reported step, train and valid.
select step, split, loss, learning_rate, tokens_per_second, peak_memory_gb
from train_metrics
where run_id = $run_id
order by step, split
