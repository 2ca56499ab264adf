-- Generation throughput per batch, as mlx-lm reports it.
select * exclude (evaluation_id, run_id)
from generation_throughput
where evaluation_id = $evaluation_id
order by variant, batch_index
