-- The rule refusal checker vs the judge on the same answers, per judge and refusal prompt set.
select * exclude (evaluation_id, run_id)
from refusal_agreement
where evaluation_id = $evaluation_id
order by judge_model, judge_prompt_version, prompt_set
