"""lorascope.statistics against scipy, statsmodels, a published worked example and brute-force
enumeration, on fixed inputs; plus the documented edge cases."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.power import TTestPower
from statsmodels.stats.proportion import proportion_confint

from lorascope.statistics import (
    adjust_p_values,
    paired_binary,
    paired_bootstrap_statistic,
    paired_continuous,
    paired_ratio,
    proportion_interval,
)

RESAMPLES = 2000


def binary_pairs(both: int, lost: int, gained: int, neither: int) -> tuple[list[int], list[int]]:
    """Paired 0/1 outcomes (base, tuned) with the given 2x2 counts."""
    base = [1] * both + [1] * lost + [0] * gained + [0] * neither
    tuned = [1] * both + [0] * lost + [1] * gained + [0] * neither
    return base, tuned


def scores(n: int = 60, shift: float = 0.1, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    base = rng.uniform(0, 1, n)
    return base, np.clip(base + shift + rng.normal(0, 0.2, n), 0, 1)


def losses(n: int = 40, seed: int = 2) -> tuple[np.ndarray, ...]:
    """Summed loss and token count per item, base and tuned (same tokens)."""
    rng = np.random.default_rng(seed)
    tokens = rng.integers(5, 60, n).astype(float)
    base_loss = tokens * rng.uniform(1.5, 3.0, n)
    return base_loss, tokens, base_loss * rng.uniform(0.8, 1.05, n), tokens


# -- paired binary -------------------------------------------------------------------------

def test_seven_lost_one_gained_gives_the_known_delta_and_exact_p():
    row = paired_binary(*binary_pairs(50, 7, 1, 42))
    assert (row.test, row.n, row.discordant) == ("mcnemar_exact", 100, (7, 1))
    assert row.delta == pytest.approx(-0.06)
    assert row.p_value == pytest.approx(0.0703, abs=1e-4)


def test_twenty_lost_two_gained_is_significant_beyond_one_in_a_thousand():
    assert paired_binary(*binary_pairs(30, 20, 2, 48)).p_value < 0.001


@pytest.mark.parametrize("lost,gained", [(7, 1), (20, 2), (3, 3), (0, 5), (12, 30)])
def test_exact_mcnemar_matches_statsmodels(lost, gained):
    row = paired_binary(*binary_pairs(40, lost, gained, 30))
    expected = mcnemar([[40, lost], [gained, 30]], exact=True).pvalue
    assert row.p_value == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("lost,gained", [(7, 1), (20, 2), (3, 3), (0, 5), (12, 30)])
def test_mid_p_is_the_statsmodels_exact_p_less_the_observed_probability(lost, gained):
    row = paired_binary(*binary_pairs(40, lost, gained, 30), mid_p=True)
    exact = mcnemar([[40, lost], [gained, 30]], exact=True).pvalue
    # statsmodels caps the exact p at 1, so a balanced table's mid-p (1 by symmetry) is not
    # derived from it
    observed = stats.binom.pmf(min(lost, gained), lost + gained, 0.5)
    expected = 1.0 if lost == gained else exact - observed
    assert row.test == "mcnemar_midp"
    assert row.p_value == pytest.approx(expected, rel=1e-12)


def test_newcombe_interval_matches_the_published_cavo_example():
    # Fagerland, Lydersen & Laake (2017), Statistical Analysis of Contingency Tables, §8.5
    # (Cavo et al. 2012, table [[59, 6], [16, 80]]): p1 - p2 = -0.0621, 95 % CI -0.1186 to
    # -0.0046 (the book's first classification is our base, so our delta has the other sign).
    row = paired_binary(*binary_pairs(59, 6, 16, 80))
    assert row.interval == "newcombe"
    assert row.delta == pytest.approx(0.0621, abs=5e-5)
    assert row.ci_low == pytest.approx(0.0046, abs=5e-5)
    assert row.ci_high == pytest.approx(0.1186, abs=5e-5)


def test_newcombe_interval_with_no_correlation_is_the_independent_square_and_add():
    # A table whose a·d - b·c is within n/2 of 0 has phi = 0: the limits are then Newcombe's
    # square-and-add of the two Wilson intervals, computed here from statsmodels directly.
    both, lost, gained, neither = 10, 10, 10, 11  # a·d - b·c = 10 <= n/2
    n = both + lost + gained + neither
    l1, u1 = proportion_confint(both + gained, n, method="wilson")
    l2, u2 = proportion_confint(both + lost, n, method="wilson")
    p1, p2 = (both + gained) / n, (both + lost) / n
    row = paired_binary(*binary_pairs(both, lost, gained, neither))
    assert row.ci_low == pytest.approx(p1 - p2 - np.hypot(p1 - l1, u2 - p2), rel=1e-12)
    assert row.ci_high == pytest.approx(p1 - p2 + np.hypot(u1 - p1, p2 - l2), rel=1e-12)


def test_swapping_base_and_tuned_mirrors_the_interval_and_keeps_p():
    forward = paired_binary(*binary_pairs(59, 6, 16, 80))
    backward = paired_binary(*reversed(binary_pairs(59, 6, 16, 80)))
    assert (backward.ci_low, backward.ci_high) == pytest.approx((-forward.ci_high, -forward.ci_low))
    assert (backward.p_value, backward.discordant) == (forward.p_value, (16, 6))


def exact_mcnemar_power(n: int, discordant_rate: float, delta: float, alpha: float = 0.05) -> float:
    """Power of the exact McNemar test by enumerating the discordant counts (no approximation)."""
    power = 0.0
    for m in range(1, n + 1):
        gained = np.arange(m + 1)
        rejects = 2 * stats.binom.cdf(np.minimum(gained, m - gained), m, 0.5) <= alpha
        share = (discordant_rate + delta) / (2 * discordant_rate)
        chance = stats.binom.pmf(gained, m, share)[rejects].sum()
        power += stats.binom.pmf(m, n, discordant_rate) * chance
    return power


@pytest.mark.parametrize("lost,gained,n", [(7, 1, 100), (10, 10, 200), (0, 0, 300)])
def test_binary_mde_is_detected_with_about_the_requested_power_by_the_exact_test(lost, gained, n):
    row = paired_binary(*binary_pairs(n // 2, lost, gained, n - n // 2 - lost - gained))
    discordant_rate = max((lost + gained) / n, row.mde)
    # Connor's normal approximation; the exact test is a little conservative (power ~0.77-0.79)
    assert exact_mcnemar_power(n, discordant_rate, row.mde) == pytest.approx(0.8, abs=0.05)


def test_no_discordant_pairs_gives_p_one_and_a_defined_interval():
    row = paired_binary(*binary_pairs(30, 0, 0, 20))
    assert (row.delta, row.p_value, row.discordant) == (0.0, 1.0, (0, 0))
    assert row.ci_low < 0 < row.ci_high
    assert row.mde > 0


@pytest.mark.parametrize("value", [0, 1])
def test_all_equal_outcomes_give_a_symmetric_interval_around_zero(value):
    row = paired_binary([value] * 25, [value] * 25)
    assert (row.base, row.tuned, row.delta, row.p_value) == (value, value, 0.0, 1.0)
    assert row.ci_low == pytest.approx(-row.ci_high)


def test_binary_with_no_items_is_test_none_with_every_number_none():
    row = paired_binary([], [])
    assert row.test == "none" and row.n == 0 and row.interval == "none"
    assert {row.base, row.tuned, row.delta, row.ci_low, row.ci_high, row.p_value, row.mde} == {None}


def test_binary_with_one_item_has_p_one_and_no_mde():
    row = paired_binary([0], [1])
    assert (row.delta, row.p_value, row.mde) == (1.0, 1.0, None)
    assert row.ci_low < 1.0 == row.ci_high


def test_binary_refuses_values_other_than_zero_and_one():
    with pytest.raises(ValueError, match="0/1"):
        paired_binary([0, 2], [1, 1])


# -- paired continuous ---------------------------------------------------------------------

def test_continuous_interval_is_scipys_bca_bootstrap_of_the_differences_with_the_same_seed():
    base, tuned = scores()
    row = paired_continuous(base, tuned, seed=7, resamples=RESAMPLES)
    expected = stats.bootstrap((tuned - base,), np.mean, n_resamples=RESAMPLES, method="BCa",
                               rng=np.random.default_rng(7)).confidence_interval
    assert row.interval == "bootstrap_bca"
    assert (row.ci_low, row.ci_high) == pytest.approx((expected.low, expected.high), rel=1e-12)


def test_continuous_bootstrap_is_reproducible_from_its_seed():
    base, tuned = scores()
    first = paired_continuous(base, tuned, seed=11, resamples=RESAMPLES)
    again = paired_continuous(base, tuned, seed=11, resamples=RESAMPLES)
    other = paired_continuous(base, tuned, seed=12, resamples=RESAMPLES)
    assert (first.ci_low, first.ci_high) == (again.ci_low, again.ci_high)
    assert first.p_value == again.p_value
    assert (first.ci_low, first.ci_high) != (other.ci_low, other.ci_high)


def test_continuous_p_matches_scipys_sign_flip_permutation_test():
    base, tuned = scores(shift=0.03)
    row = paired_continuous(base, tuned, seed=5, resamples=RESAMPLES)
    expected = stats.permutation_test((base, tuned), lambda x, y, axis: np.mean(y - x, axis=axis),
                                      permutation_type="samples", n_resamples=RESAMPLES,
                                      rng=np.random.default_rng(5)).pvalue
    assert row.p_value == pytest.approx(expected, rel=1e-12)


def test_continuous_p_on_few_items_is_the_exact_enumeration_of_sign_flips():
    base, tuned = scores(n=9, shift=0.2)
    d = tuned - base
    flipped = [abs(np.mean(d * signs)) for signs in itertools.product((1, -1), repeat=len(d))]
    expected = np.mean(np.array(flipped) >= abs(d.mean()) * (1 - 1e-12))
    assert paired_continuous(base, tuned, seed=0).p_value == pytest.approx(expected, rel=1e-12)


def test_continuous_p_agrees_with_the_paired_t_test_on_a_large_sample():
    base, tuned = scores(n=200, shift=0.02, seed=3)
    row = paired_continuous(base, tuned, seed=1, resamples=RESAMPLES)
    assert row.p_value == pytest.approx(stats.ttest_rel(tuned, base).pvalue, abs=0.02)


def test_continuous_mde_has_the_requested_power_under_statsmodels():
    base, tuned = scores()
    row = paired_continuous(base, tuned, seed=0, resamples=RESAMPLES)
    effect = row.mde / np.std(tuned - base, ddof=1)
    assert TTestPower().power(effect, nobs=len(base), alpha=0.05) == pytest.approx(0.8, abs=1e-6)


def test_all_equal_differences_give_a_degenerate_interval():
    row = paired_continuous([0.1, 0.5, 0.9, 0.3], [0.35, 0.75, 1.15, 0.55], seed=0)
    assert (row.ci_low, row.ci_high) == pytest.approx((0.25, 0.25))
    assert row.interval == "bootstrap_percentile"
    assert row.p_value == pytest.approx(2 / 2**4)  # the smallest p the sign-flip test has
    assert row.mde == 0.0


def test_no_differences_give_p_one():
    row = paired_continuous([0.2, 0.4, 0.6], [0.2, 0.4, 0.6], seed=0)
    assert (row.delta, row.ci_low, row.ci_high, row.p_value) == (0.0, 0.0, 0.0, 1.0)


def test_continuous_with_one_item_has_p_one_and_no_interval():
    row = paired_continuous([0.2], [0.7], seed=0)
    assert row.delta == pytest.approx(0.5)
    assert (row.ci_low, row.ci_high, row.p_value, row.mde) == (None, None, 1.0, None)
    assert row.interval == "none"


def test_continuous_with_no_items_is_test_none():
    assert paired_continuous([], [], seed=0).test == "none"


def test_continuous_refuses_unequal_lengths():
    with pytest.raises(ValueError, match="length"):
        paired_continuous([0.1, 0.2], [0.3], seed=0)


# -- paired ratio --------------------------------------------------------------------------

def test_ratio_delta_is_the_difference_of_pooled_ratios():
    base_loss, tokens, tuned_loss, _ = losses()
    row = paired_ratio(base_loss, tokens, tuned_loss, tokens, seed=0, resamples=RESAMPLES)
    assert row.base == pytest.approx(base_loss.sum() / tokens.sum())
    assert row.delta == pytest.approx((tuned_loss.sum() - base_loss.sum()) / tokens.sum())


def test_ratio_interval_is_scipys_paired_bootstrap_over_items_with_the_same_seed():
    data = losses()

    def pooled(bn, bd, tn, td, axis=-1):
        return tn.sum(axis) / td.sum(axis) - bn.sum(axis) / bd.sum(axis)

    row = paired_ratio(*data, seed=3, resamples=RESAMPLES)
    expected = stats.bootstrap(data, pooled, paired=True, n_resamples=RESAMPLES, method="BCa",
                               rng=np.random.default_rng(3)).confidence_interval
    assert (row.ci_low, row.ci_high) == pytest.approx((expected.low, expected.high), rel=1e-12)


def test_ratio_p_on_few_items_is_the_exact_enumeration_of_item_swaps():
    base_loss, tokens, tuned_loss, _ = losses(n=8, seed=4)
    tuned_tokens = tokens + 1
    observed = abs(tuned_loss.sum() / tuned_tokens.sum() - base_loss.sum() / tokens.sum())
    extreme = []
    for swap in itertools.product((False, True), repeat=8):
        swap = np.array(swap)
        bn, tn = np.where(swap, tuned_loss, base_loss), np.where(swap, base_loss, tuned_loss)
        bd, td = np.where(swap, tuned_tokens, tokens), np.where(swap, tokens, tuned_tokens)
        extreme.append(abs(tn.sum() / td.sum() - bn.sum() / bd.sum()) >= observed * (1 - 1e-12))
    row = paired_ratio(base_loss, tokens, tuned_loss, tuned_tokens, seed=0)
    assert row.p_value == pytest.approx(np.mean(extreme), rel=1e-12)


def test_ratio_mde_matches_the_bootstrap_standard_error():
    data = losses(n=200)
    row = paired_ratio(*data, seed=0, resamples=RESAMPLES)

    def pooled(bn, bd, tn, td, axis=-1):
        return tn.sum(axis) / td.sum(axis) - bn.sum(axis) / bd.sum(axis)

    se = stats.bootstrap(data, pooled, paired=True, n_resamples=RESAMPLES,
                         rng=np.random.default_rng(0)).standard_error
    z = stats.norm.ppf(0.975) + stats.norm.ppf(0.8)
    assert row.mde == pytest.approx(z * se, rel=0.1)


def test_ratio_with_a_zero_total_denominator_is_test_none():
    row = paired_ratio([1.0, 2.0], [0, 0], [1.0, 2.0], [3, 3], seed=0)
    assert (row.test, row.n, row.delta) == ("none", 2, None)


def test_ratio_of_identical_items_falls_back_to_a_degenerate_percentile_interval():
    row = paired_ratio([1.0] * 4, [2.0] * 4, [3.0] * 4, [2.0] * 4, seed=0)
    assert row.interval == "bootstrap_percentile"
    assert (row.ci_low, row.ci_high) == pytest.approx((1.0, 1.0))


def test_ratio_with_one_item_has_p_one_and_no_interval():
    row = paired_ratio([1.0], [2.0], [3.0], [2.0], seed=0)
    assert (row.delta, row.p_value, row.ci_low, row.mde) == (1.0, 1.0, None, None)


# -- any statistic ------------------------------------------------------------------------

def median_product(a, b, axis=-1):
    """A statistic of two columns that is no mean of per-item values."""
    return np.median(a * b, axis=axis)


def test_bootstrap_statistic_of_the_pooled_ratio_is_paired_ratio():
    bn, bd, tn, td = losses()

    def pooled(num, den, axis=-1):
        return num.sum(axis) / den.sum(axis)

    row = paired_bootstrap_statistic((bn, bd), (tn, td), pooled, seed=2, resamples=RESAMPLES)
    ratio = paired_ratio(bn, bd, tn, td, seed=2, resamples=RESAMPLES)
    assert row.interval == ratio.interval
    assert (row.delta, row.ci_low, row.ci_high, row.p_value) == pytest.approx(
        (ratio.delta, ratio.ci_low, ratio.ci_high, ratio.p_value), rel=1e-12)


def test_bootstrap_statistic_interval_is_scipys_paired_bootstrap_with_the_same_seed():
    base, tuned = scores(n=40)
    weights = np.linspace(0.5, 1.5, 40)

    def delta(bw, b, tw, t, axis=-1):
        return median_product(tw, t, axis) - median_product(bw, b, axis)

    row = paired_bootstrap_statistic((weights, base), (weights, tuned), median_product, seed=5,
                                     resamples=RESAMPLES)
    expected = stats.bootstrap((weights, base, weights, tuned), delta, paired=True,
                               n_resamples=RESAMPLES, method="BCa",
                               rng=np.random.default_rng(5)).confidence_interval
    assert row.delta == pytest.approx(np.median(weights * tuned) - np.median(weights * base))
    assert (row.ci_low, row.ci_high) == pytest.approx((expected.low, expected.high), rel=1e-12)


def test_bootstrap_statistic_p_on_few_items_is_the_exact_enumeration_of_item_swaps():
    base, tuned = scores(n=8, seed=6)
    weights = np.arange(1.0, 9.0)
    observed = abs(np.median(weights * tuned) - np.median(weights * base))
    extreme = []
    for swap in itertools.product((False, True), repeat=8):
        swap = np.array(swap)
        b, t = np.where(swap, tuned, base), np.where(swap, base, tuned)
        extreme.append(abs(np.median(weights * t) - np.median(weights * b))
                       >= observed * (1 - 1e-12))
    row = paired_bootstrap_statistic((weights, base), (weights, tuned), median_product, seed=0)
    assert row.p_value == pytest.approx(np.mean(extreme), rel=1e-12)


def test_bootstrap_statistic_mde_matches_the_bootstrap_standard_error():
    base, tuned = scores(n=200)
    weights = np.ones(200)
    row = paired_bootstrap_statistic((weights, base), (weights, tuned), median_product, seed=0,
                                     resamples=RESAMPLES)

    def delta(b, t, axis=-1):
        return np.median(t, axis=axis) - np.median(b, axis=axis)

    se = stats.bootstrap((base, tuned), delta, paired=True, n_resamples=RESAMPLES,
                         rng=np.random.default_rng(0)).standard_error
    z = stats.norm.ppf(0.975) + stats.norm.ppf(0.8)
    assert row.mde == pytest.approx(z * se, rel=0.15)


def test_bootstrap_statistic_edge_cases_give_test_none_and_p_one():
    assert paired_bootstrap_statistic(([],), ([],), median_product, seed=0).test == "none"
    row = paired_bootstrap_statistic(([1.0], [2.0]), ([3.0], [2.0]), median_product, seed=0)
    assert (row.delta, row.p_value, row.ci_low, row.mde) == (4.0, 1.0, None, None)


# -- single intervals and the correction ---------------------------------------------------

@pytest.mark.parametrize("successes,n", [(0, 10), (3, 10), (10, 10), (47, 120)])
def test_proportion_interval_is_statsmodels_wilson(successes, n):
    expected = proportion_confint(successes, n, alpha=0.1, method="wilson")
    assert proportion_interval(successes, n, alpha=0.1) == pytest.approx(expected, rel=1e-12)


def test_proportion_interval_of_nothing_is_zero_to_one():
    assert proportion_interval(0, 0) == (0.0, 1.0)


def test_adjusting_nothing_gives_nothing():
    assert adjust_p_values([]) == []
    assert adjust_p_values([None, None]) == [None, None]
