-- The newest domain experiment's matrix: each trained domain on each evaluated domain, every
-- base-vs-tuned comparison with its interval, adjusted p and MDE (same_domain: the diagonal).
select trained_domain, evaluated_domain, same_domain, family, slice, metric, n, base, tuned,
    delta, ci_low, ci_high, p_value, p_adjusted, mde
from domain_transfer
where experiment_id = (
    select experiment_id from experiments where parameter = 'domain'
    order by created_at desc limit 1
)
order by family, evaluated_position, slice, metric, trained_position
