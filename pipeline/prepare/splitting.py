"""Leakage-free, topic-stratified train/validation/test assignment of record groups.

A group is every record that must stay together: both versions of one item, and every item one of
whose scenarios duplicates (exactly or nearly) another item's. Groups, not records, are split, so
no scenario and no minimal edit of it can sit in train and test at once.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict

import numpy as np

SPLITS = ("train", "validation", "test")


class UnionFind:
    """Disjoint sets over 0..n-1 with path halving."""

    def __init__(self, n: int):
        self.parent = np.arange(n)

    def find(self, x: int) -> int:
        parent = self.parent
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return int(x)

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def split_counts(n: int, validation: float, test: float) -> tuple[int, int, int]:
    """How many of `n` groups of one stratum go to (train, validation, test).

    Small strata never crash: 1 group -> train; 2 -> train + test (when test > 0); from 3 on,
    validation and test get at least one each when their fraction is positive.
    """
    n_val = round(n * validation)
    n_test = round(n * test)
    if n == 2 and test > 0:
        n_val, n_test = 0, 1
    elif n >= 3:
        n_val = max(n_val, 1) if validation > 0 else 0
        n_test = max(n_test, 1) if test > 0 else 0
    elif n < 2:
        n_val = n_test = 0
    while n_val + n_test >= n and n > 0 and (n_val or n_test):  # leave train at least one
        if n_val >= n_test and n_val:
            n_val -= 1
        else:
            n_test -= 1
    return n - n_val - n_test, n_val, n_test


def assign_splits(group_keys: list[str], group_strata: list[str], validation: float, test: float,
                  seed: int) -> dict[str, str]:
    """Map each group key to a split, stratified by `group_strata`, deterministic for `seed`.

    Order inside a stratum comes from a seeded hash of the group key (a stable content key), so
    the result does not depend on input file order or on how Ray scheduled the work.
    """
    by_stratum: dict[str, list[str]] = defaultdict(list)
    for key, stratum in zip(group_keys, group_strata):
        by_stratum[stratum].append(key)
    result: dict[str, str] = {}
    for stratum in sorted(by_stratum):
        keys = sorted(by_stratum[stratum], key=lambda k: hashlib.blake2b(f"{seed}:{k}".encode(), digest_size=8).digest())
        n_train, n_val, _ = split_counts(len(keys), validation, test)
        for i, key in enumerate(keys):
            result[key] = "train" if i < n_train else "validation" if i < n_train + n_val else "test"
    return result
