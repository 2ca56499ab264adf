-- 95 % confidence margin of the difference of two independent estimates given their standard
-- errors, 1.96 · √(se_a² + se_b²): for lm-eval's own results (harness_deltas), which come as
-- an aggregate and its stderr without per-document pairing. Every paired comparison's
-- statistics are lorascope.statistics', in the comparisons table.
create or replace macro independent_ci95_margin(se_a, se_b) as
    1.96 * sqrt(se_a * se_a + se_b * se_b);
