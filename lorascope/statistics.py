"""Every base-vs-tuned statistic in one place: the test, the interval, the minimum detectable
effect and the multiple-comparison correction, built on scipy.stats and statsmodels.

Three kinds of paired data, one function each, and one for any other statistic, all
returning a `Comparison`:

- `paired_binary`: pass/fail per item (an instruction check, a capability question). Exact
  McNemar test (optionally mid-p) and Newcombe's score interval for the paired difference.
- `paired_continuous`: a score per item. Mean of d = tuned - base, a seeded paired bootstrap
  interval (BCa) and a seeded paired permutation test (sign flips of d).
- `paired_ratio`: pooled quantities such as loss per token. Items are resampled (bootstrap)
  and swapped between base and tuned (permutation) as whole (numerator, denominator) pairs.
- `paired_bootstrap_statistic`: any statistic of several values per item (the expected
  calibration error), with the bootstrap and the item swaps of `paired_ratio`.

Edge cases give defined results rather than exceptions or NaN: no items gives test "none"
with every number None; one item gives the deltas, p = 1 and no interval or MDE. Inputs of
unequal length or with non-finite values are a caller's mistake and raise ValueError.
See docs/statistics.md for which test fits which data and how to read a row.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
from scipy import optimize, stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestPower
from statsmodels.stats.proportion import proportion_confint

# Bootstrap and permutation resamples are drawn this many at a time (memory, not results).
BATCH = 1000


@dataclass(frozen=True)
class Comparison:
    test: str                 # "mcnemar_exact", "mcnemar_midp", "paired_permutation", "none"
    n: int                    # paired items
    base: float | None        # base mean / proportion / pooled ratio
    tuned: float | None
    delta: float | None       # tuned - base
    ci_low: float | None      # interval of delta at 1 - alpha
    ci_high: float | None
    p_value: float | None     # two-sided
    mde: float | None         # minimum |delta| detectable at this n with the given power, alpha
    interval: str             # "newcombe", "bootstrap_bca", "bootstrap_percentile", "none"
    discordant: tuple[int, int] | None = None   # paired binary: (lost, gained)


def _none(n: int = 0) -> Comparison:
    return Comparison("none", n, None, None, None, None, None, None, None, "none")


def _paired_arrays(*columns: Sequence[float]) -> list[np.ndarray]:
    arrays = [np.asarray(column, dtype=float) for column in columns]
    if len({len(array) for array in arrays}) > 1:
        raise ValueError(f"paired inputs differ in length: {[len(a) for a in arrays]}")
    if any(not np.all(np.isfinite(array)) for array in arrays):
        raise ValueError("paired inputs contain NaN or infinite values")
    return arrays


# -- paired binary -------------------------------------------------------------------------

def paired_binary(base: Sequence[bool | int], tuned: Sequence[bool | int], alpha: float = 0.05,
                  power: float = 0.8, mid_p: bool = False) -> Comparison:
    """Pass/fail per item under base and tuned: exact McNemar, Newcombe interval, MDE.

    p: the exact McNemar test, a two-sided binomial test of the gained pairs among the
    discordant ones at 1/2 (scipy.stats.binomtest); mid_p subtracts the probability of the
    observed count (Fagerland, Lydersen & Laake 2013). No discordant pairs gives p = 1.
    Interval: Newcombe (1998) method 10, the square-and-add of the two marginal Wilson
    intervals with the phi correlation correction (`newcombe_interval`).
    MDE: the smallest |delta| the McNemar test detects with `power` at this n by the normal
    approximation of Connor (1987), n·δ² = (z_{1-α/2}·√ψ + z_power·√(ψ - δ²))², where ψ is the
    discordant rate, taken as max(observed ψ, δ) because a difference δ needs at least a
    share δ of discordant pairs. With no discordant pairs it is therefore the difference
    detected were every discordant pair in one direction. None when n < 4 (no δ ≤ 1 is
    detectable).
    """
    base_values, tuned_values = _paired_arrays(base, tuned)
    if not np.all(np.isin(base_values, (0, 1))) or not np.all(np.isin(tuned_values, (0, 1))):
        raise ValueError("paired_binary takes 0/1 or bool values")
    n = len(base_values)
    if n == 0:
        return _none()
    lost = int(np.sum((base_values == 1) & (tuned_values == 0)))
    gained = int(np.sum((base_values == 0) & (tuned_values == 1)))
    both = int(np.sum((base_values == 1) & (tuned_values == 1)))
    low, high = newcombe_interval(both, gained, lost, n - both - gained - lost, alpha)
    return Comparison(
        test="mcnemar_midp" if mid_p else "mcnemar_exact",
        n=n,
        base=float(base_values.mean()),
        tuned=float(tuned_values.mean()),
        delta=(gained - lost) / n,
        ci_low=low,
        ci_high=high,
        p_value=mcnemar_p(lost, gained, mid_p),
        mde=paired_binary_mde(n, (lost + gained) / n, alpha, power),
        interval="newcombe",
        discordant=(lost, gained),
    )


def mcnemar_p(lost: int, gained: int, mid_p: bool = False) -> float:
    """Two-sided exact McNemar p (or mid-p) from the discordant counts; 1 when there are none."""
    discordant = lost + gained
    if discordant == 0:
        return 1.0
    exact = stats.binomtest(gained, discordant, 0.5).pvalue
    if not mid_p:
        return float(exact)
    smaller = min(lost, gained)
    return float(min(1.0, 2 * stats.binom.cdf(smaller, discordant, 0.5)
                     - stats.binom.pmf(smaller, discordant, 0.5)))


def newcombe_interval(both: int, gained: int, lost: int, neither: int,
                      alpha: float = 0.05) -> tuple[float, float]:
    """Newcombe (1998) method 10 interval for tuned - base from the paired 2x2 counts.

    p1 = tuned proportion, p2 = base proportion, (l, u) their Wilson intervals; phi is the
    table's correlation with Newcombe's adjustment (a positive a·d - b·c reduced by n/2, not
    below 0; zero when a margin is empty), as in Fagerland, Lydersen & Laake (2017) §8.5:
    low = δ - √((p1 - l1)² - 2φ(p1 - l1)(u2 - p2) + (u2 - p2)²), high likewise.
    No statsmodels release up to 0.15 has it, so it is written here and checked in the tests
    against the book's worked example.
    """
    n = both + gained + lost + neither
    tuned_hits, base_hits = both + gained, both + lost
    p1, p2 = tuned_hits / n, base_hits / n
    l1, u1 = proportion_interval(tuned_hits, n, alpha)
    l2, u2 = proportion_interval(base_hits, n, alpha)
    margins = (tuned_hits, n - tuned_hits, base_hits, n - base_hits)
    phi = 0.0
    if min(margins) > 0:
        cross = both * neither - gained * lost
        cross = max(cross - n / 2, 0.0) if cross > 0 else cross
        phi = cross / math.sqrt(math.prod(margins))
    delta = p1 - p2
    below = (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2
    above = (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2
    return delta - math.sqrt(max(below, 0.0)), delta + math.sqrt(max(above, 0.0))


def paired_binary_mde(n: int, discordant_rate: float, alpha: float = 0.05,
                      power: float = 0.8) -> float | None:
    """Connor (1987) normal-approximation MDE for McNemar's test; see `paired_binary`."""
    z_alpha, z_power = stats.norm.ppf(1 - alpha / 2), stats.norm.ppf(power)

    def shortfall(delta: float) -> float:
        psi = max(discordant_rate, delta)
        spread = z_alpha * math.sqrt(psi) + z_power * math.sqrt(max(psi - delta**2, 0.0))
        return math.sqrt(n) * delta - spread

    if n == 0 or shortfall(1.0) <= 0:
        return None
    return float(optimize.brentq(shortfall, 1e-12, 1.0, xtol=1e-12))


# -- paired continuous and ratio -----------------------------------------------------------

def paired_continuous(base: Sequence[float], tuned: Sequence[float], seed: int, alpha: float = 0.05,
                      power: float = 0.8, resamples: int = 10_000) -> Comparison:
    """A score per item under base and tuned: mean of d = tuned - base.

    Interval: paired bootstrap of d (scipy.stats.bootstrap, BCa, `resamples` draws from
    `seed`); where BCa is undefined it falls back to the percentile interval and says so in
    `interval`. All d equal gives the degenerate interval [d, d].
    p: paired permutation test, random sign flips of d (scipy.stats.permutation_test,
    permutation_type="samples", same seed); exact enumeration when 2^n <= resamples.
    All d = 0 gives p = 1; all d equal but not 0 gives the smallest p the test can give.
    MDE: the paired t-test's detectable standardized effect at n (statsmodels TTestPower)
    times sd(d); 0 when sd(d) = 0.
    """
    base_values, tuned_values = _paired_arrays(base, tuned)
    n = len(base_values)
    if n == 0:
        return _none()
    d = tuned_values - base_values
    row = Comparison("paired_permutation", n, float(base_values.mean()), float(tuned_values.mean()),
                     float(d.mean()), None, None, 1.0, None, "none")
    if n == 1:
        return row  # the one swap gives -d, as extreme as d: p = 1
    p = _permutation_p((base_values, tuned_values), _mean_difference, seed, resamples)
    if np.ptp(d) <= 1e-12 * max(1.0, float(np.abs(d).max())):  # equal up to rounding
        low = high = float(d.mean())
        interval, mde = "bootstrap_percentile", 0.0
    else:
        low, high, interval = _bootstrap_interval((d,), _mean, seed, alpha, resamples)
        mde = _t_mde(n, float(np.std(d, ddof=1)), alpha, power)
    return replace(row, ci_low=low, ci_high=high, p_value=p, mde=mde, interval=interval)


def paired_ratio(base_num: Sequence[float], base_den: Sequence[float], tuned_num: Sequence[float],
                 tuned_den: Sequence[float], seed: int, alpha: float = 0.05, power: float = 0.8,
                 resamples: int = 10_000) -> Comparison:
    """Pooled ratios per variant (e.g. summed loss / summed tokens) over the same items.

    base = Σbase_num / Σbase_den, tuned likewise, delta = tuned - base.
    Interval: bootstrap over items (scipy.stats.bootstrap, paired=True: an item's four values
    move together), both pooled ratios recomputed per resample; BCa, percentile where BCa is
    undefined. p: permutation test swapping whole items between base and tuned.
    MDE: TTestPower's detectable effect at n times the sd of the ratio difference's per-item
    linearization z_i = (tuned_num_i - tuned·tuned_den_i)/mean(tuned_den) - (same for base),
    the usual Taylor variance of a ratio estimator (Cochran 1977, §6.4).
    Denominators are counts (tokens) and should be positive per item; a zero total on either
    side gives test "none", and resamples whose pooled ratio is undefined give no interval.
    """
    arrays = _paired_arrays(base_num, base_den, tuned_num, tuned_den)
    bn, bd, tn, td = arrays
    n = len(bn)
    if n == 0 or bd.sum() == 0 or td.sum() == 0:
        return _none(n)
    base, tuned = bn.sum() / bd.sum(), tn.sum() / td.sum()
    numerators, denominators = np.concatenate([bn, tn]), np.concatenate([bd, td])

    def swapped_delta(base_rows: np.ndarray, tuned_rows: np.ndarray, axis: int = -1) -> np.ndarray:
        # rows index the stacked base and tuned items, so a swap moves (num, den) together
        def ratio(rows: np.ndarray) -> np.ndarray:
            return numerators[rows].sum(axis=axis) / denominators[rows].sum(axis=axis)
        return ratio(tuned_rows) - ratio(base_rows)

    row = Comparison("paired_permutation", n, float(base), float(tuned), float(tuned - base),
                     None, None, 1.0, None, "none")
    if n == 1:
        return row  # the one swap gives -delta, as extreme as delta: p = 1
    p = _permutation_p((np.arange(n), np.arange(n) + n), swapped_delta, seed, resamples)
    low, high, interval = _bootstrap_interval(tuple(arrays), _pooled_delta, seed, alpha,
                                              resamples, paired=True)
    z = (tn - tuned * td) / td.mean() - (bn - base * bd) / bd.mean()
    mde = _t_mde(n, float(np.std(z, ddof=1)), alpha, power)
    return replace(row, ci_low=low, ci_high=high, p_value=p, mde=mde, interval=interval)


def paired_bootstrap_statistic(
    base: Sequence[Sequence[float]], tuned: Sequence[Sequence[float]],
    statistic: Callable[..., np.ndarray], seed: int, alpha: float = 0.05, power: float = 0.8,
    resamples: int = 10_000,
) -> Comparison:
    """A statistic of several values per item that is no mean of per-item values (the expected
    calibration error of (confidence, correct) pairs), base vs tuned over the same items.

    `base` and `tuned` are the statistic's input columns, each with one value per item;
    `statistic(*columns, axis=-1)` reduces the item axis and is vectorized over the others.
    base = statistic(*base), tuned likewise, delta = tuned - base.
    Interval: bootstrap over items (scipy.stats.bootstrap, paired=True: an item's base and
    tuned values move together), delta recomputed per resample; BCa, percentile where BCa is
    undefined. p: permutation test swapping whole items between base and tuned (as
    `paired_ratio`). MDE: the normal approximation (z_{1-α/2} + z_power)·SE, with SE the
    interval's half-width over z_{1-α/2}.
    """
    if len(base) != len(tuned):
        raise ValueError(f"base has {len(base)} columns, tuned {len(tuned)}")
    arrays = _paired_arrays(*base, *tuned)
    columns = len(base)
    n = len(arrays[0]) if arrays else 0
    if n == 0:
        return _none()
    base_value = float(statistic(*arrays[:columns]))
    tuned_value = float(statistic(*arrays[columns:]))
    stacked = [np.concatenate([b, t]) for b, t in zip(arrays[:columns], arrays[columns:],
                                                       strict=True)]

    def swapped_delta(base_rows: np.ndarray, tuned_rows: np.ndarray, axis: int = -1) -> np.ndarray:
        # rows index the stacked base and tuned items, so a swap moves an item's columns together
        return (statistic(*(c[tuned_rows] for c in stacked), axis=axis)
                - statistic(*(c[base_rows] for c in stacked), axis=axis))

    def delta(*resampled: np.ndarray, axis: int = -1) -> np.ndarray:
        return (statistic(*resampled[columns:], axis=axis)
                - statistic(*resampled[:columns], axis=axis))

    row = Comparison("paired_permutation", n, base_value, tuned_value, tuned_value - base_value,
                     None, None, 1.0, None, "none")
    if n == 1:
        return row  # the one swap gives -delta, as extreme as delta: p = 1
    p = _permutation_p((np.arange(n), np.arange(n) + n), swapped_delta, seed, resamples)
    low, high, interval = _bootstrap_interval(tuple(arrays), delta, seed, alpha, resamples,
                                              paired=True)
    mde = None
    if low is not None and high is not None:
        z_alpha = stats.norm.ppf(1 - alpha / 2)
        mde = float((z_alpha + stats.norm.ppf(power)) * (high - low) / (2 * z_alpha))
    return replace(row, ci_low=low, ci_high=high, p_value=p, mde=mde, interval=interval)


def _mean(d: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(d, axis=axis)


def _mean_difference(base: np.ndarray, tuned: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(tuned - base, axis=axis)


def _pooled_delta(bn: np.ndarray, bd: np.ndarray, tn: np.ndarray, td: np.ndarray,
                  axis: int = -1) -> np.ndarray:
    return tn.sum(axis=axis) / td.sum(axis=axis) - bn.sum(axis=axis) / bd.sum(axis=axis)


def _bootstrap_interval(
    data: tuple[np.ndarray, ...], statistic: Callable, seed: int, alpha: float, resamples: int,
    paired: bool = False,
) -> tuple[float | None, float | None, str]:
    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():
            # BCa is undefined on some small or lopsided samples: scipy warns and gives NaN,
            # and the percentile interval is used instead.
            warnings.simplefilter("ignore", stats.DegenerateDataWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            result = stats.bootstrap(data, statistic, n_resamples=resamples, batch=BATCH,
                                     vectorized=True, paired=paired, confidence_level=1 - alpha,
                                     method=method, rng=np.random.default_rng(seed))
        low, high = result.confidence_interval
        if np.isfinite(low) and np.isfinite(high):
            return float(low), float(high), f"bootstrap_{method.lower()}"
    return None, None, "none"  # the statistic itself is undefined on some resamples


def _permutation_p(data: tuple[np.ndarray, np.ndarray], statistic: Callable, seed: int,
                   resamples: int) -> float:
    result = stats.permutation_test(data, statistic, permutation_type="samples", vectorized=True,
                                    n_resamples=resamples, batch=BATCH, alternative="two-sided",
                                    rng=np.random.default_rng(seed))
    return float(result.pvalue)


def _t_mde(n: int, sd: float, alpha: float, power: float) -> float:
    if sd == 0:
        return 0.0
    effect = TTestPower().solve_power(effect_size=None, nobs=n, alpha=alpha, power=power,
                                      alternative="two-sided")
    return float(effect) * sd


# -- single intervals and the correction ---------------------------------------------------

def proportion_interval(successes: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Wilson score interval (statsmodels); (0, 1) when n = 0."""
    if n == 0:
        return 0.0, 1.0
    low, high = proportion_confint(successes, n, alpha=alpha, method="wilson")
    return float(low), float(high)


def adjust_p_values(p_values: Sequence[float | None],
                    method: Literal["holm", "bh"] = "holm") -> list[float | None]:
    """Holm (family-wise error) or Benjamini-Hochberg (false discovery rate) adjusted p-values
    (statsmodels multipletests). None entries pass through and are not in the family."""
    present = [i for i, p in enumerate(p_values) if p is not None]
    adjusted: list[float | None] = [None] * len(p_values)
    if not present:
        return adjusted
    corrected = multipletests([p_values[i] for i in present],
                              method={"holm": "holm", "bh": "fdr_bh"}[method])[1]
    for i, p in zip(present, corrected, strict=True):
        adjusted[i] = float(p)
    return adjusted
