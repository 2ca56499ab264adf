-- Capability flips: every multiple-choice item one variant answered right and the other
-- wrong (acc and acc_norm): the items behind the lost and gained counts of capability
-- comparisons and the gate's exact test.
create or replace view capability_flips as

with

paired_items as (
    select * from paired_items
)

select
    evaluation_id,
    run_id,
    slice as task,
    metric,
    item_id,
    case when base_value = 1 then 'lost' else 'gained' end as flip
from paired_items
where family = 'capability' and base_value <> tuned_value
