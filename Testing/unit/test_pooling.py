"""Pooling synthetic sets: equal shares, provenance kept, ids apart, mismatched sets refused."""

from __future__ import annotations

import numpy as np
import pytest

from SyntheticImagingLib.cases import LabelTable, Modality
from SyntheticImagingLib.errors import InputError
from SyntheticImagingLib.pooling import pool_shares, pool_synthetic_sets


def _set(small_case, n, prefix, **meta):
    return [small_case.replace(case_id=f"synth_0_{i:04d}",
                               channels={k: v + i for k, v in small_case.channels.items()},
                               metadata={"generator": prefix, "index": i, **meta}) for i in range(n)]


def test_equal_shares_with_the_remainder_first():
    assert pool_shares(20, 2) == [10, 10]
    assert pool_shares(7, 3) == [3, 2, 2]
    assert sum(pool_shares(101, 4)) == 101


def test_pool_takes_the_first_cases_of_each_set_and_keeps_their_provenance(small_case):
    gan = _set(small_case, 6, "gan3d")
    insertion = _set(small_case, 5, "lesion-insertion", background="case_3")
    pooled = pool_synthetic_sets({"gan": gan, "li": insertion})
    # default size: the smallest set's, so the pool is compared with its parts at the same size
    assert [c.case_id for c in pooled] == ["gan_synth_0_0000", "gan_synth_0_0001", "gan_synth_0_0002",
                                           "li_synth_0_0000", "li_synth_0_0001"]
    assert [c.metadata["pooled_from"] for c in pooled] == ["gan"] * 3 + ["li"] * 2
    # the provenance the k-fold protocol reads (a lesion-insertion case's background patient) survives
    assert all(c.metadata["background"] == "case_3" for c in pooled[3:])
    np.testing.assert_array_equal(pooled[4].channels["FLAIR"], insertion[1].channels["FLAIR"])
    np.testing.assert_array_equal(pooled[4].label, insertion[1].label)
    assert pooled[4].geometry == insertion[1].geometry
    assert len(pool_synthetic_sets({"gan": gan, "li": insertion}, n=8)) == 8
    assert "pooled_from" not in gan[0].metadata  # the inputs are not changed


@pytest.mark.parametrize(("change", "message"), [
    (lambda c: c.replace(channels={"FLAIR": c.channels["FLAIR"]}), "differs from 'a' in its channels"),
    (lambda c: c.replace(modality=Modality.CT), "in its modality"),
    (lambda c: c.replace(label_table=LabelTable({1: "edema"})), "in its label table"),
])
def test_sets_for_another_task_are_refused(small_case, change, message):
    other = [change(c) for c in _set(small_case, 3, "x")]
    with pytest.raises(InputError, match=message) as err:
        pool_synthetic_sets({"a": _set(small_case, 3, "a"), "b": other})
    assert err.value.fix


def test_bad_pools_name_the_problem(small_case):
    two = _set(small_case, 2, "a")
    with pytest.raises(InputError, match="two synthetic sets or more"):
        pool_synthetic_sets({"a": two})
    with pytest.raises(InputError, match="'b' has no cases"):
        pool_synthetic_sets({"a": two, "b": []})
    with pytest.raises(InputError, match="'b' has 2 cases; the pool takes 3"):
        pool_synthetic_sets({"a": _set(small_case, 5, "a"), "b": two}, n=6)
    with pytest.raises(InputError, match="cannot take a case from each of 2 sets"):
        pool_synthetic_sets({"a": two, "b": two}, n=1)


def test_only_the_cases_taken_are_read(small_case):
    """A lazy Dataset reads a volume per index: pooling 2 + 2 cases from sets of 50 reads 4 cases, not 100."""
    from collections.abc import Sequence

    class Counting(Sequence):
        def __init__(self, cases):
            self.cases, self.reads = cases, 0

        def __len__(self):
            return len(self.cases)

        def __getitem__(self, index):
            self.reads += 1
            return self.cases[index]

    a, b = Counting(_set(small_case, 50, "a")), Counting(_set(small_case, 50, "b"))
    assert len(pool_synthetic_sets({"a": a, "b": b}, n=4)) == 4
    assert (a.reads, b.reads) == (2, 2)
