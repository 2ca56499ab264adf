-- Checks base passed and tuned failed, with both outputs, latest run first.
select
    regressions.run_id,
    domain,
    prompt_id,
    metric,
    base_output,
    tuned_output
from regressions
left join runs on regressions.run_id = runs.run_id
order by runs.started_at desc nulls last, regressions.run_id, domain, prompt_id, metric
