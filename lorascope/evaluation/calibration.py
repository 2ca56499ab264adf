"""Calibration of the multiple-choice answers (issue 17's first behaviour family): does the
model's confidence match how often it is right, and did tuning change that?

An item's probabilities over its choices are the softmax of the choices' summed
log-likelihoods, the raw scores behind `acc` (not the length-normalized ones of `acc_norm`),
as lm-eval-style calibration of multiple choice does; confidence is the largest probability,
and the answer is correct when that choice is the gold one. Per evaluation, task and variant:

- expected calibration error (ECE): confidences in 10 equal-width bins, (b-1)/10 < conf <=
  b/10, and Σ_b |B_b|/n · |acc(B_b) - conf(B_b)| (Naeini, Cooper & Hauskrecht 2015; Guo et al.
  2017, "On Calibration of Modern Neural Networks", eq. 3); 0 is perfectly calibrated;
- Brier score, multi-class (Brier 1950): the mean over items of Σ_k (p_k - y_k)², y the gold
  choice's one-hot; 0 best, 2 worst;
- the reliability diagram's bins: count, mean confidence and accuracy per non-empty bin.

The warehouse computes the per-item values and the bins in SQL (views `calibration_items`,
`calibration`, `reliability_bins`); tests/test_calibration.py checks them against these
functions. Base vs tuned, Brier is a paired mean per item (`paired_items`, family
`calibration`); ECE is no mean of per-item values, so `ece_comparison` bootstraps it over items.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.special import softmax

from lorascope import statistics

BINS = 10


def choice_probabilities(logliks: Sequence[float]) -> np.ndarray:
    """The model's probability of each choice: the softmax of their summed log-likelihoods."""
    return softmax(np.asarray(logliks, dtype=float))


def bin_index(confidence: np.ndarray, bins: int = BINS) -> np.ndarray:
    """The equal-width bin (0-based) of each confidence: bin b holds b/bins < conf <= (b+1)/bins,
    a confidence of 0 goes to the first bin."""
    return np.clip(np.ceil(np.asarray(confidence) * bins).astype(int) - 1, 0, bins - 1)


def expected_calibration_error(confidence: Sequence[float] | np.ndarray,
                               correct: Sequence[float] | np.ndarray, bins: int = BINS,
                               axis: int = -1) -> np.ndarray:
    """ECE over the items along `axis` (vectorized over the others, for the bootstrap):
    |B|/n · |acc(B) - conf(B)| = |Σ_{i in B} (correct_i - conf_i)| / n, summed over the bins."""
    confidence = np.moveaxis(np.asarray(confidence, dtype=float), axis, -1)
    correct = np.moveaxis(np.asarray(correct, dtype=float), axis, -1)
    in_bin = bin_index(confidence, bins)[..., None] == np.arange(bins)
    gaps = np.sum((correct - confidence)[..., None] * in_bin, axis=-2)
    return np.sum(np.abs(gaps), axis=-1) / confidence.shape[-1]


def reliability_bins(confidence: Sequence[float], correct: Sequence[float],
                     bins: int = BINS) -> list[dict[str, Any]]:
    """The reliability diagram: per non-empty bin (0-based), its count, mean confidence and
    accuracy."""
    confidence, correct = np.asarray(confidence, dtype=float), np.asarray(correct, dtype=float)
    index = bin_index(confidence, bins)
    return [{"bin": b, "count": int(np.sum(index == b)),
             "mean_confidence": float(confidence[index == b].mean()),
             "accuracy": float(correct[index == b].mean())}
            for b in range(bins) if np.any(index == b)]


def ece_comparison(base_confidence: Sequence[float], base_correct: Sequence[float],
                   tuned_confidence: Sequence[float], tuned_correct: Sequence[float], seed: int,
                   alpha: float = 0.05, power: float = 0.8,
                   resamples: int = 10_000) -> statistics.Comparison:
    """ECE base vs tuned over the same items (in the same order), with
    `statistics.paired_bootstrap_statistic`'s bootstrap interval, item-swap p and MDE."""
    return statistics.paired_bootstrap_statistic(
        (base_confidence, base_correct), (tuned_confidence, tuned_correct),
        expected_calibration_error, seed=seed, alpha=alpha, power=power, resamples=resamples)
