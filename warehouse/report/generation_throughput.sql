-- Generation throughput per batch, as mlx-lm reports it.
select * exclude (run_id)
from generation_throughput
where run_id = $run_id
order by variant, batch_index
