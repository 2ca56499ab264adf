-- What the evaluation measured: rows per kind of result, so the report can say what was not
-- measured (no judge, no lm-eval tasks, no attention analysis, ...).
select 'generations' as measurement, count(*) as n_rows
from generations where evaluation_id = $evaluation_id
union all
select 'judge', count(*) from judgments where evaluation_id = $evaluation_id
union all
select 'test_loss', count(*) from test_losses where evaluation_id = $evaluation_id
union all
select 'capability', count(*) from capability_items where evaluation_id = $evaluation_id
union all
select 'perplexity', count(*) from perplexity_items where evaluation_id = $evaluation_id
union all
select 'harness', count(*) from harness_results where evaluation_id = $evaluation_id
union all
select 'attention', count(*) from attention_heads where evaluation_id = $evaluation_id
union all
select 'instruction_following', count(*) from instruction_results
where evaluation_id = $evaluation_id
union all
select 'behaviour', count(*) from behaviour_results where evaluation_id = $evaluation_id
