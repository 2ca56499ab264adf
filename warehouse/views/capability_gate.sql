-- The capability regression gate's verdicts (gate_verdicts of family 'capability'), one per
-- capability task and metric, as the gate recorded them before it covered other families.
create or replace view capability_gate as

with

gate_verdicts as (
    select * from gate_verdicts
)

select
    evaluation_id,
    run_id,
    slice as task,
    metric,
    delta,
    ci_low,
    ci_high,
    max_drop,
    require_ci,
    failed,
    p_value,
    alpha,
    lost,
    gained
from gate_verdicts
where family = 'capability'
