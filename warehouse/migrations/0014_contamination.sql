-- 0014: training/evaluation contamination (lorascope.evaluation.contamination). One row per
-- evaluation item checked against the run's train split: eval_set is the prompt set
-- (eval.prompts entry) of a prompt or the task of a capability item (kind 'prompt' or
-- 'capability'); ngrams counts the item's distinct word n-grams of ngram_size words (13, lm-eval's
-- normalization; a text of 8-12 words counts as one), overlapping those found in a training
-- record, example_ngram the first of them. contaminated: any overlap (GPT-3's "dirty").
create table contamination (
    evaluation_id varchar,
    run_id varchar,
    eval_set varchar,
    kind varchar check (kind in ('prompt', 'capability')),
    item_id varchar,
    ngram_size integer,
    ngrams integer,
    overlapping integer,
    contaminated boolean,
    example_ngram varchar,
    primary key (evaluation_id, kind, eval_set, item_id)
);
