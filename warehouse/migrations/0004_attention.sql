-- 0004: attention patterns, base vs tuned, on the same prompt tokens. One row per prompt,
-- layer and head: Jensen-Shannon divergence of the two models' attention rows (nats, 0..ln 2,
-- averaged over query positions) and, per model, the mean row entropy (nats), the mass on
-- token 0 (the attention sink) and the mass on the previous token.
create table attention_heads (
    run_id varchar,
    prompt_id varchar,
    layer integer,
    head integer,
    tokens integer,
    js_divergence double,
    base_entropy double,
    tuned_entropy double,
    base_bos_mass double,
    tuned_bos_mass double,
    base_previous_token_mass double,
    tuned_previous_token_mass double,
    primary key (run_id, prompt_id, layer, head)
);
