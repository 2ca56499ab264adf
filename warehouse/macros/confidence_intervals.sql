-- 95 % confidence margins, one definition for every view that reports a base-vs-tuned delta:
-- the normal approximation, 1.96 standard errors.
-- paired_ci95_margin(d): of the mean of paired differences d_i = tuned_i - base_i over the
--   same items, 1.96 · sd(d) / √n with the sample sd (an aggregate: use it with group by).
-- independent_ci95_margin(se_a, se_b): of the difference of two independent estimates given
--   their standard errors, 1.96 · √(se_a² + se_b²).
create or replace macro paired_ci95_margin(d) as
    1.96 * stddev_samp(d) / sqrt(count(d));

create or replace macro independent_ci95_margin(se_a, se_b) as
    1.96 * sqrt(se_a * se_a + se_b * se_b);
