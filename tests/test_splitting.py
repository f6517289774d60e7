"""Group-level stratified split: small strata, determinism, proportions."""

import pytest

from pipeline.prepare.splitting import UnionFind, assign_splits, split_counts


@pytest.mark.parametrize("n, expected", [(0, (0, 0, 0)), (1, (1, 0, 0)), (2, (1, 0, 1)), (3, (1, 1, 1)),
                                         (10, (8, 1, 1)), (100, (80, 10, 10))])
def test_split_counts(n, expected):
    assert split_counts(n, 0.1, 0.1) == expected


def test_split_counts_without_validation():
    assert split_counts(10, 0.0, 0.2) == (8, 0, 2)


def test_assign_is_deterministic_stratified_and_seeded():
    keys = [f"g{i}" for i in range(300)]
    strata = [f"topic{i % 3}" for i in range(300)] 
    a = assign_splits(keys, strata, 0.1, 0.1, seed=1)
    assert a == assign_splits(list(reversed(keys)), list(reversed(strata)), 0.1, 0.1, seed=1)
    assert a != assign_splits(keys, strata, 0.1, 0.1, seed=2)
    for t in range(3):
        mine = [a[k] for k, s in zip(keys, strata) if s == f"topic{t}"]
        assert (mine.count("train"), mine.count("validation"), mine.count("test")) == (80, 10, 10)


def test_union_find():
    uf = UnionFind(5)
    uf.union(0, 3)
    uf.union(3, 4)
    assert uf.find(4) == uf.find(0) != uf.find(1)
