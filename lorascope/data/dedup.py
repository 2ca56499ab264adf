"""Exact and near-duplicate instruction rows.

Near duplicates: MinHash over word 3-grams with LSH banding, then the exact Jaccard
similarity of each candidate pair. Written here (not `datasketch`) because vectorized over
all rows at once it takes about a second for 100 000 rows, and it is ~60 lines.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

SHINGLE_WORDS = 3
BANDS, ROWS_PER_BAND = 8, 4  # 32 hashes; pairs with Jaccard ≥ ~0.6 become candidates
MAX_CANDIDATES = 8  # earlier rows compared per band bucket; kept rows only, so buckets stay small


@dataclass(frozen=True)
class Duplicate:
    index: int
    of: int
    reason: str  # "exact_duplicate" or "near_duplicate"
    similarity: float


def _shingle_hashes(texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hashes of every text's word 3-grams, concatenated; each text's offset and count."""
    split = [text.split() for text in texts]
    lengths = np.fromiter(map(len, split), dtype=np.int64, count=len(texts))
    codes, _ = pd.factorize(pd.Series([w for words in split for w in words], dtype=object))
    # Each text's word ids (from 1) followed by zeros, so a 1-word text still has a shingle.
    pad = SHINGLE_WORDS - 1
    word_ids = np.zeros(len(codes) + pad * len(texts), dtype=np.uint64)
    word_ids[np.arange(len(codes)) + np.repeat(np.arange(len(texts)) * pad, lengths)] = codes + 1
    offsets = np.cumsum(lengths) - lengths
    positions = np.arange(len(codes)) + np.repeat(np.arange(len(texts)) * pad, lengths)
    hashes = word_ids[positions]
    for k in range(1, SHINGLE_WORDS):
        hashes = hashes * np.uint64(1_000_003) + word_ids[positions + k]  # wraps mod 2**64
    return hashes, offsets, lengths


def _band_keys(hashes: np.ndarray, offsets: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Per text and band, one number standing for that band of its MinHash signature."""
    rng = np.random.default_rng(0)
    n_hashes = BANDS * ROWS_PER_BAND
    multipliers = rng.integers(1, 2**63, size=n_hashes, dtype=np.uint64) | np.uint64(1)
    increments = rng.integers(0, 2**63, size=n_hashes, dtype=np.uint64)
    signature = np.zeros((len(lengths), n_hashes), dtype=np.uint64)
    present = lengths > 0
    if present.any():
        for j in range(n_hashes):  # multiply-shift hashing; the high bits are the good ones
            permuted = (hashes * multipliers[j] + increments[j]) >> np.uint64(32)
            signature[present, j] = np.minimum.reduceat(permuted, offsets[present])
    mix = rng.integers(1, 2**63, size=ROWS_PER_BAND, dtype=np.uint64) | np.uint64(1)
    bands = signature.reshape(len(lengths), BANDS, ROWS_PER_BAND)
    return (bands * mix).sum(axis=2, dtype=np.uint64)


def find_duplicates(texts: list[str], near_threshold: float | None) -> list[Duplicate]:
    """Texts equal to, or (if `near_threshold`) at least that Jaccard-similar to, an earlier
    kept text; earlier texts win, so put the rows you want to keep first."""
    duplicates, first_index = [], {}
    for index, text in enumerate(texts):
        first = first_index.setdefault(text, index)
        if first != index:
            duplicates.append(Duplicate(index, first, "exact_duplicate", 1.0))
    if near_threshold is None or not texts:
        return duplicates
    exact = {d.index for d in duplicates}
    hashes, offsets, lengths = _shingle_hashes(texts)
    shingle_sets: dict[int, set[int]] = {}

    def shingles(i: int) -> set[int]:
        if i not in shingle_sets:
            shingle_sets[i] = set(hashes[offsets[i] : offsets[i] + lengths[i]].tolist())
        return shingle_sets[i]

    # Only texts sharing a band with another text can be, or have, a near duplicate.
    band_keys = _band_keys(hashes, offsets, lengths)
    shared = np.zeros(len(texts), dtype=bool)
    for band in range(BANDS):
        shared |= pd.Series(band_keys[:, band]).duplicated(keep=False).to_numpy()
    shared[list(exact)] = False
    keys = band_keys.tolist()
    buckets: list[dict[int, list[int]]] = [{} for _ in range(BANDS)]
    for index in np.flatnonzero(shared & (lengths > 0)).tolist():
        candidates = dict.fromkeys(
            j for band, key in enumerate(keys[index])
            for j in buckets[band].get(key, [])[:MAX_CANDIDATES]
        )
        best, of = 0.0, -1
        for j in candidates:
            similarity = len(shingles(index) & shingles(j)) / len(shingles(index) | shingles(j))
            if similarity > best:
                best, of = similarity, j
        if best >= near_threshold:
            duplicates.append(Duplicate(index, of, "near_duplicate", best))
            continue
        for band, key in enumerate(keys[index]):
            buckets[band].setdefault(key, []).append(index)
    return sorted(duplicates, key=lambda d: d.index)
