-- Checks base passed and tuned failed, with both outputs, latest evaluation first.
select
    regressions.evaluation_id,
    regressions.run_id,
    domain,
    prompt_id,
    metric,
    base_output,
    tuned_output
from regressions
left join evaluations on regressions.evaluation_id = evaluations.evaluation_id
order by evaluations.started_at desc nulls last, regressions.evaluation_id, domain, prompt_id, metric
