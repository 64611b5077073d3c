"""Segmentation metrics and statistics of the utility check, on small arrays with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from SyntheticImagingLib.checks.metrics import (
    dice,
    hd95,
    lesion_detection,
    segmentation_metrics,
    volume_diagonal_mm,
)
from SyntheticImagingLib.checks.stats import (
    ABOVE_LARGEST,
    BELOW_SMALLEST,
    WITHIN,
    compare_paired,
    isotonic_increasing,
    mean_ci,
    paired_bootstrap,
    real_equivalent,
    wilcoxon_signed_rank,
)
from SyntheticImagingLib.errors import InputError


def cube(shape=(12, 12, 12), lo=(3, 3, 3), size=4) -> np.ndarray:
    m = np.zeros(shape, bool)
    m[lo[0]:lo[0] + size, lo[1]:lo[1] + size, lo[2]:lo[2] + size] = True
    return m


def test_dice_known_values():
    a = cube()
    b = np.roll(a, 2, axis=2)  # half of the cube overlaps
    assert dice(a, a) == 1.0
    assert dice(a, b) == pytest.approx(0.5)
    assert dice(a, np.zeros_like(a)) == 0.0
    assert dice(np.zeros_like(a), np.zeros_like(a)) == 1.0  # nothing to find, nothing found
    with pytest.raises(InputError):
        dice(a, a[:-1])


def test_hd95_uses_spacing_in_mm():
    a = cube()
    assert hd95(a, a) == 0.0
    b = np.roll(a, 2, axis=2)  # shift 2 voxels along x
    assert hd95(a, b) == pytest.approx(2.0)
    assert hd95(a, b, spacing_zyx=(1.0, 1.0, 3.0)) == pytest.approx(6.0)
    assert hd95(a, b, spacing_zyx=(5.0, 5.0, 1.0)) == pytest.approx(2.0)  # z/y spacing does not matter
    empty = np.zeros_like(a)
    assert hd95(empty, empty) == 0.0
    assert math.isnan(hd95(a, empty))
    assert hd95(a, empty, empty_penalty=99.0) == 99.0


def test_hd95_matches_monai():
    import torch
    from monai.metrics import compute_hausdorff_distance

    rng = np.random.default_rng(0)
    z, y, x = np.mgrid[:20, :22, :18]
    spacing = (2.0, 1.0, 1.5)
    for _ in range(3):
        c1, c2 = rng.uniform(6, 12, 3), rng.uniform(6, 12, 3)
        a = ((z - c1[0]) ** 2 + (y - c1[1]) ** 2 + (x - c1[2]) ** 2) < rng.uniform(9, 25)
        b = ((z - c2[0]) ** 2 + (y - c2[1]) ** 2 + (x - c2[2]) ** 2) < rng.uniform(9, 25)
        ours = hd95(a, b, spacing_zyx=spacing)

        def onehot(m):
            return torch.from_numpy(np.stack([~m, m])[None].astype(np.float32))

        theirs = float(compute_hausdorff_distance(onehot(a), onehot(b), percentile=95, spacing=spacing)[0, 0])
        assert ours == pytest.approx(theirs, rel=0.05, abs=0.5)


def test_lesion_detection_counts_components():
    ref = np.zeros((10, 10, 30), bool)
    ref[2:5, 2:5, 1:4] = True      # lesion 1: found
    ref[2:5, 2:5, 10:13] = True    # lesion 2: found by one voxel
    ref[2:5, 2:5, 20:23] = True    # lesion 3: missed
    pred = np.zeros_like(ref)
    pred[2:5, 2:5, 1:4] = True
    pred[3, 3, 12] = True
    pred[8, 8, 27] = True          # a false positive
    r = lesion_detection(pred, ref)
    assert (r["lesions"], r["detected"], r["false_positives"]) == (3, 2, 1)
    assert r["sensitivity"] == pytest.approx(2 / 3)
    # a lesion must be covered by more than half: the one-voxel hit no longer counts
    assert lesion_detection(pred, ref, min_overlap=0.5)["detected"] == 1
    # specks smaller than 2 voxels are ignored (the single-voxel false positive goes away)
    assert lesion_detection(pred, ref, min_size_voxels=2)["false_positives"] == 0
    assert math.isnan(lesion_detection(pred, np.zeros_like(ref))["sensitivity"])


def test_segmentation_metrics_penalises_missed_lesion_with_diagonal():
    ref = cube()
    m = segmentation_metrics(np.zeros_like(ref), ref, spacing_zyx=(2.0, 2.0, 2.0))
    assert m["dice"] == 0.0 and m["lesion_sensitivity"] == 0.0
    assert m["hd95_mm"] == pytest.approx(volume_diagonal_mm(ref.shape, (2.0, 2.0, 2.0)))
    assert m["ref_voxels"] == 64


def test_mean_ci_t_matches_scipy_and_handles_small_n():
    values = [0.61, 0.72, 0.68, 0.75]
    r = mean_ci(values)
    lo, hi = sps.t.interval(0.95, 3, loc=np.mean(values), scale=sps.sem(values))
    assert (r["lo"], r["hi"]) == pytest.approx((lo, hi))
    one = mean_ci([0.5, float("nan")])
    assert one["mean"] == 0.5 and one["n"] == 1 and math.isnan(one["lo"])
    assert mean_ci([])["n"] == 0
    with pytest.raises(InputError):
        mean_ci(values, method="jackknife")
    clipped = mean_ci([0.5, 0.99, 0.98], bounds=(0.0, 1.0))
    assert clipped["hi"] == 1.0 and mean_ci([0.5, 0.99, 0.98])["hi"] > 1.0


@pytest.mark.parametrize("method,n,low", [("t", 8, 0.91), ("bootstrap", 20, 0.88)])
def test_mean_ci_coverage(method, n, low):
    rng = np.random.default_rng(1)
    trials = 300
    hits = 0
    for i in range(trials):
        r = mean_ci(rng.normal(0.7, 0.1, n), method=method, n_boot=400, seed=i)
        hits += r["lo"] <= 0.7 <= r["hi"]
    assert low <= hits / trials <= 0.99


def test_paired_comparisons():
    rng = np.random.default_rng(2)
    b = rng.uniform(0.5, 0.8, 12)
    a = b + 0.1 + rng.normal(0, 0.01, 12)
    boot = paired_bootstrap(a, b)
    assert boot["mean_diff"] == pytest.approx(0.1, abs=0.01)
    assert boot["lo"] < 0.1 < boot["hi"] and boot["lo"] > 0
    assert boot["p_value"] < 0.01
    wil = wilcoxon_signed_rank(a, b)
    assert wil["p_value"] == pytest.approx(sps.wilcoxon(a - b).pvalue)
    assert wilcoxon_signed_rank(b, b)["p_value"] == 1.0
    same = compare_paired(b, b)
    assert same["mean_diff"] == 0 and same["wilcoxon_p"] == 1.0 and same["n_pairs"] == 12
    # pairs with a NaN are dropped
    a_nan = a.copy()
    a_nan[0] = np.nan
    assert paired_bootstrap(a_nan, b)["n"] == 11
    with pytest.raises(InputError):
        paired_bootstrap(a[:3], b)


def test_isotonic_increasing():
    assert isotonic_increasing([1, 2, 3]).tolist() == [1, 2, 3]
    assert isotonic_increasing([3, 2, 1]).tolist() == [2, 2, 2]
    assert isotonic_increasing([0.2, 0.5, 0.4, 0.7]).tolist() == pytest.approx([0.2, 0.45, 0.45, 0.7])


def test_real_equivalent_interpolates_on_monotone_curve():
    sizes, dice_curve = [2, 4, 8], [0.4, 0.6, 0.7]
    r = real_equivalent(sizes, dice_curve, 0.5)
    assert r["outcome"] == WITHIN and r["value"] == pytest.approx(3.0)
    assert real_equivalent(sizes, dice_curve, 0.7)["value"] == pytest.approx(8.0)
    assert real_equivalent(sizes, dice_curve, 0.4)["value"] == pytest.approx(2.0)
    above = real_equivalent(sizes, dice_curve, 0.75)
    assert above["outcome"] == ABOVE_LARGEST and above["value"] is None and above["bound"] == 8
    below = real_equivalent(sizes, dice_curve, 0.3)
    assert below["outcome"] == BELOW_SMALLEST and below["bound"] == 2
    # a noisy dip is pooled away: 4 and 8 both become 0.65
    dip = real_equivalent([2, 4, 8], [0.4, 0.7, 0.6], 0.65)
    assert [p["score"] for p in dip["curve"]] == pytest.approx([0.4, 0.65, 0.65])
    assert dip["value"] == pytest.approx(4.0)
    assert real_equivalent([2, 4, 8], [0.4, 0.7, 0.6], 0.6)["value"] == pytest.approx(3.6)
    # order of sizes does not matter
    assert real_equivalent([8, 2, 4], [0.7, 0.4, 0.6], 0.5)["value"] == pytest.approx(3.0)
    assert real_equivalent(sizes, dice_curve, float("nan"))["outcome"] is None
