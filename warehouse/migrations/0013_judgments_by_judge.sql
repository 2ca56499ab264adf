-- 0013: judgments keyed by judge. Several judges (eval.judge as a list) judge the same answers
-- of an evaluation side by side, and a judge's verdicts under one prompt version never
-- overwrite those under another: the key gains judge_model and judge_prompt_version (now
-- mtbench-pair-v2:<hash> or, for reference-guided judging, mtbench-pair-math-v1:<hash>).
-- user_prompt is the user message the judge saw (question, answers, reference), as FastChat
-- keeps it; rows written before this migration have none. DuckDB cannot change a primary
-- key in place: the table is rebuilt and its rows copied (a key column left empty becomes '').
create temp table judgments_0009 as select * from judgments;

drop table judgments;

create table judgments (
    evaluation_id varchar,
    run_id varchar,
    prompt_id varchar,
    judge_order varchar check (judge_order in ('base_first', 'tuned_first')),
    verdict varchar check (verdict in ('base', 'tuned', 'tie', 'unparsed')),
    judge_model varchar,
    judge_url varchar,
    judge_prompt_version varchar,
    user_prompt varchar,
    raw_reply varchar,
    created_at timestamp,
    primary key (evaluation_id, prompt_id, judge_model, judge_prompt_version, judge_order)
);

insert into judgments (
    evaluation_id, run_id, prompt_id, judge_order, verdict, judge_model, judge_url,
    judge_prompt_version, raw_reply, created_at
)
select
    evaluation_id,
    run_id,
    prompt_id,
    judge_order,
    verdict,
    coalesce(judge_model, ''),
    judge_url,
    coalesce(judge_prompt_version, ''),
    raw_reply,
    created_at
from judgments_0009;

drop table judgments_0009;
