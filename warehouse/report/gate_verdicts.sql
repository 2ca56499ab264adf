-- The regression gate's verdicts over the gated families, failures first.
select * exclude (evaluation_id, run_id)
from gate_verdicts
where evaluation_id = $evaluation_id
order by failed desc, family, slice, metric
