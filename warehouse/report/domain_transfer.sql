-- A domain experiment's matrix, for its report (lorascope.experiments lays it out).
select trained_domain, evaluated_domain, family, slice, metric, n, base, tuned, delta, ci_low,
    ci_high, p_adjusted, mde
from domain_transfer
where experiment_id = $experiment_id
order by family, evaluated_position, slice, metric, trained_position
