-- Comparisons: every base-vs-tuned comparison an evaluation makes, with the statistics that
-- say whether it is noise (lorascope.statistics decides each; lorascope.evaluation.comparisons
-- writes them). One row per family (goal, instruction_following, capability, failure_mode,
-- perplexity, test_loss, judge), metric and slice (a domain, task, corpus, instruction type).
-- p_adjusted corrects p_value over all comparisons of the evaluation (the report's family)
-- with `correction`; mde is the smallest |delta| this n detects with 80 % power. Items flagged
-- by the contamination check are left out when eval.statistics.exclude_contaminated (counted
-- in excluded).
create table comparisons (
    evaluation_id varchar,
    run_id varchar,
    family varchar,
    metric varchar,
    slice varchar,
    n integer,
    excluded integer,
    base double,
    tuned double,
    delta double,
    ci_low double,
    ci_high double,
    confidence double,
    interval varchar,
    test varchar,
    p_value double,
    p_adjusted double,
    correction varchar,
    mde double,
    lost integer,
    gained integer,
    primary key (evaluation_id, family, metric, slice)
);

-- The gate decides on the exact test: it records the test's p-value and how many items the
-- tuning lost and gained (capability_flips lists them).
alter table capability_gate add column p_value double;
alter table capability_gate add column alpha double;
alter table capability_gate add column lost integer;
alter table capability_gate add column gained integer;
