-- 0019: a judge's refusal verdicts (lorascope.evaluation.refusal_judge). Where eval.judge is
-- configured, the judge classifies each answer to a refusal prompt set (harmful,
-- over-refusal) as complied, refused or partial, after XSTest's three classes; a reply that
-- names none is unparsed. `refused` is the judge's answer to the rule checker's metric of the
-- same name (behaviour_results): true for refused, false for complied or partial (a partial
-- refusal answered the request), null when unparsed. `reply` is the judge's whole reply; the
-- prompt it saw is not stored again (harmful prompts stay in `prompts` only).
create table refusal_judgments (
    evaluation_id varchar,
    run_id varchar,
    variant varchar check (variant in ('base', 'tuned')),
    prompt_id varchar,
    judge_model varchar,
    judge_prompt_version varchar,
    verdict varchar check (verdict in ('complied', 'refused', 'partial', 'unparsed')),
    refused boolean,
    reply varchar,
    created_at timestamp,
    primary key (evaluation_id, variant, prompt_id, judge_model, judge_prompt_version)
);
