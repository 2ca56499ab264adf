-- What the method section states: the run's model, data, config, seed and code version, and
-- the evaluation's settings.
select
    runs.run_id,
    runs.model_source,
    runs.base_model_path,
    runs.data_source,
    runs.data_hash,
    runs.seed,
    runs.code_version,
    runs.config_hash,
    runs.config_json,
    evaluations.evaluation_id,
    evaluations.eval_config,
    evaluations.eval_hash,
    evaluations.adapter_path,
    evaluations.adapter_hash,
    evaluations.started_at,
    evaluations.finished_at
from evaluations
inner join runs
    on evaluations.run_id = runs.run_id
where evaluations.evaluation_id = $evaluation_id
