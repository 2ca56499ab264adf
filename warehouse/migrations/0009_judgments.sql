-- 0009: verdicts of the optional pairwise judge (lorascope.evaluation.judge). One row per
-- evaluation, prompt and order: the judge saw the base answer as assistant A and the tuned one
-- as B (base_first), or the other way round (tuned_first). verdict is the winner it named, in
-- our terms ('tie' for MT-Bench's [[C]], 'unparsed' when its reply named none); raw_reply is
-- its whole reply. judge_prompt_version is the prompt's id and the hash of its text.
create table judgments (
    evaluation_id varchar,
    run_id varchar,
    prompt_id varchar,
    judge_order varchar check (judge_order in ('base_first', 'tuned_first')),
    verdict varchar check (verdict in ('base', 'tuned', 'tie', 'unparsed')),
    judge_model varchar,
    judge_url varchar,
    judge_prompt_version varchar,
    raw_reply varchar,
    created_at timestamp,
    primary key (evaluation_id, prompt_id, judge_order)
);
