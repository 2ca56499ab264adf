"""Exact and near duplicates (data/dedup.py)."""

from __future__ import annotations

from lorascope.data.dedup import find_duplicates


def test_find_duplicates_flags_exact_and_near_copies_of_earlier_texts() -> None:
    base = "the quick brown fox jumps over the lazy dog while the cat sleeps in the warm sun"
    texts = [
        base,
        "a completely different sentence about sailing boats on a calm blue lake today",
        base,
        base.replace("warm", "hot"),
        base.replace("quick brown fox", "slow red hen").replace("lazy dog", "busy ant"),
    ]
    found = find_duplicates(texts, near_threshold=0.7)
    assert [(d.index, d.of, d.reason) for d in found] == [
        (2, 0, "exact_duplicate"), (3, 0, "near_duplicate")
    ]
    assert 0.7 <= found[1].similarity < 1
    assert [d.index for d in find_duplicates(texts, near_threshold=None)] == [2]


def test_find_duplicates_on_distinct_texts_finds_none() -> None:
    texts = [f"question number {i} asks about item {i * 7} and color {i % 5}" for i in range(2000)]
    assert find_duplicates(texts, near_threshold=0.9) == []
