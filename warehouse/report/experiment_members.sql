-- An experiment's member runs in sweep order: the swept value, the effective LoRA rank and
-- scale, and the run's status.
select
    experiments.position,
    experiments.parameter,
    experiments.value,
    experiments.lora_rank,
    experiments.lora_scale,
    experiments.run_id,
    runs.status
from experiments
left join runs
    on experiments.run_id = runs.run_id
where experiments.experiment_id = $experiment_id
order by experiments.position
