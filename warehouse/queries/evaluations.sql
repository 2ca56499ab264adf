-- Every evaluation of every run: its settings hash, the adapters it evaluated and its status,
-- latest first. Evaluations of one run that share an adapter_hash evaluated the same
-- adapters (changing only eval settings re-evaluates without retraining).
select
    evaluation_id,
    run_id,
    status,
    started_at,
    finished_at,
    eval_hash,
    adapter_hash,
    error
from evaluations
order by started_at desc nulls last, evaluation_id
