"""The one longest-common-subsequence routine and the one code-onset detector."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from mmmelab.sync.codes import code_onsets, common_subsequence, common_subsequence_pairs

pytestmark = pytest.mark.timeout(30)


def _brute_lcs(a: list[int], b: list[int]) -> int:
    """Longest common subsequence by trying every subsequence of ``a`` (small inputs)."""
    for k in range(min(len(a), len(b)), 0, -1):
        for sub in itertools.combinations(a, k):
            it = iter(b)
            if all(any(x == y for y in it) for x in sub):
                return k
    return 0


def test_common_subsequence_matches_brute_force_and_pairs_are_a_valid_matching():
    rng = np.random.default_rng(7)
    for _ in range(200):
        a = rng.integers(1, 4, rng.integers(0, 8)).tolist()
        b = rng.integers(1, 4, rng.integers(0, 8)).tolist()
        steps = [(c,) for c in a]
        pairs = common_subsequence_pairs(steps, b)
        assert len(pairs) == common_subsequence(steps, b) == _brute_lcs(a, b)
        assert all(a[i] == b[j] for i, j in pairs)
        assert all(i1 < i2 and j1 < j2 for (i1, j1), (i2, j2) in itertools.pairwise(pairs))


def test_steps_are_sets_of_accepted_codes():
    steps = [frozenset({1, 2}), frozenset({3})]
    assert common_subsequence_pairs(steps, [9, 2, 9, 3]) == [(0, 1), (1, 3)]
    assert common_subsequence(steps, []) == 0
    assert common_subsequence_pairs([], [1, 2]) == []


def test_code_onsets_are_changes_to_a_non_zero_code():
    levels = np.array([5, 5, 0, 11, 11, 12, 0, 0, 7])
    assert code_onsets(levels).tolist() == [0, 3, 5, 8]
    assert code_onsets(levels, prev_level=5).tolist() == [3, 5, 8]  # continues a high level
    assert code_onsets(np.zeros(0, dtype=np.int64)).tolist() == []
