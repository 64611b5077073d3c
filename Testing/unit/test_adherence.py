"""Label adherence and the quality filter on tiny 24^3 blob cases (1 mm): generators whose labels drift from their
images (label 10 mm beside the painted lesion; a label with no lesion painted) score clearly below real cases and
are filtered out; an honest generator (new blobs painted where their labels are) is not."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from SyntheticImagingLib.cases import Case, Geometry
from SyntheticImagingLib.checks import available_checks
from SyntheticImagingLib.checks.adherence import AdherenceCheck, adherence_threshold, intensity_range
from SyntheticImagingLib.checks.base import CheckContext, Profile
from SyntheticImagingLib.checks.prepare import prepare_cases
from SyntheticImagingLib.checks.quality_filter import quality_filter, write_filtered
from SyntheticImagingLib.checks.segmenter import SegmenterConfig
from SyntheticImagingLib.io.datasets import load_dataset
from SyntheticImagingLib.io.images import read_image

N = 24
TINY = Profile(name="tiny", spacing=(1.0, 1.0, 1.0), shape=(N, N, N), seeds=1, segmenter_steps=80,
               encoder_steps=10, real_sizes=(2,), synthetic_ratios=(1.0,), repeats=2)
CONFIG = SegmenterConfig(features=(8, 16, 32), steps=80, batch_size=2, learning_rate=1e-2, cpu_threads=1)


def blob_case(case_id: str, seed: int, *, label_shift_mm: int = 0, paint: bool = True) -> Case:
    """A head-like sphere with one bright blob; the label is the blob, optionally moved or with no blob painted."""
    rng = np.random.default_rng(seed)
    z, y, x = np.mgrid[:N, :N, :N]
    head = ((z - 11.5) ** 2 + (y - 11.5) ** 2 + (x - 11.5) ** 2) < 11**2
    c = np.array([11.5, 7.0, 11.5]) + rng.uniform(-1.5, 1.5, 3)
    blob = ((z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2) < rng.uniform(3.0, 4.0) ** 2
    flair = np.where(head, 100 + rng.normal(0, 5, head.shape), 0) + (120 * blob if paint else 0)
    label = np.roll(blob, label_shift_mm, axis=1) if label_shift_mm else blob  # 1 mm voxels
    return Case(case_id=case_id, channels={"FLAIR": flair.astype(np.float32)}, geometry=Geometry((1.0, 1.0, 1.0)),
                label=label.astype(np.int16))


@pytest.fixture(scope="module")
def sets():
    torch.set_num_threads(1)
    real_train = prepare_cases([blob_case(f"r{i}", i) for i in range(6)], TINY)
    real_test = prepare_cases([blob_case(f"t{i}", 100 + i) for i in range(3)], TINY)
    honest = [blob_case(f"h{i}", 200 + i) for i in range(4)]
    shifted = [blob_case(f"s{i}", 300 + i, label_shift_mm=10) for i in range(4)]
    unpainted = [blob_case(f"u{i}", 400 + i, paint=False) for i in range(4)]
    return real_train, real_test, honest, shifted, unpainted


@pytest.fixture(scope="module")
def cache():
    return {}  # one reference segmenter for the whole module


def ctx(tmp_path, cache, name: str = "adherence") -> CheckContext:
    return CheckContext(profile=TINY, out_dir=tmp_path / name, device="cpu", seed=0, cache=cache)


def test_registered():
    assert "adherence" in available_checks()


def test_threshold_and_range():
    assert adherence_threshold([0.9, 0.8], percentile=0, margin=0.1) == pytest.approx(0.7)
    assert adherence_threshold([0.05], margin=0.1) == 0.0
    lo, hi = intensity_range([2.0, 2.0, 2.0], margin=0.5)
    assert lo < 2.0 < hi  # near-identical real values still give a usable range


def test_drifting_generators_below_real_honest_not(sets, cache, tmp_path):
    real_train, real_test, honest, shifted, unpainted = sets
    check = AdherenceCheck(config=CONFIG, min_lesion_ml=0.005)
    res = {}
    for name, syn in (("honest", honest), ("shifted", shifted), ("unpainted", unpainted)):
        res[name] = check.run(real_train=real_train, real_test=real_test, synthetic=prepare_cases(syn, TINY),
                              context=ctx(tmp_path, cache, name))
    real_mean = res["honest"].summary["dice_real_mean"]
    print({k: (round(r.summary["dice_synthetic_mean"], 3), r.summary["share_below_threshold"],
               r.summary["verdict"]) for k, r in res.items()}, "real", round(real_mean, 3),
          "threshold", round(res["honest"].summary["threshold"], 3))
    assert real_mean > 0.6  # the reference segmenter works on real held-out cases
    honest_s = res["honest"].summary
    assert honest_s["follows_labels"] and honest_s["share_below_threshold"] == 0.0
    assert honest_s["share_intensity_out_of_range"] == 0.0
    for name in ("shifted", "unpainted"):
        s = res[name].summary
        assert not s["follows_labels"] and s["share_below_threshold"] == 1.0
        assert s["dice_synthetic_mean"] < real_mean - 0.4
    # the painted-but-shifted lesion is found where it is painted, not where its label says
    rows = res["shifted"].tables["per_case"]
    assert all(r["below_threshold"] and r["reason"] for r in rows)
    assert set(rows[0]) >= {"case_id", "dice", "detection", "volume_error_ml", "below_threshold"}
    # no lesion painted: nothing to find, so the lesion-wise detection is 0 and the volume error -100 %
    un = res["unpainted"].tables["per_case"]
    assert np.mean([r["detection"] for r in un]) < 0.5
    assert np.median([r["volume_error_rel"] for r in un]) < -0.5
    assert res["unpainted"].summary["share_intensity_out_of_range"] > 0.5  # lesion as dark as normal brain
    assert (tmp_path / "honest" / "adherence.png").exists()
    # each synthetic case's prediction is saved on its prepared grid, and listed (relative to the report folder)
    details = res["shifted"].details["predictions"]
    assert details["folder"] == "shifted/predictions" and set(details["files"]) == {c.case_id for c in shifted}
    prepared = {c.case_id: c for c in prepare_cases(shifted, TINY)}
    for row in rows:
        assert row["prediction"] == details["files"][row["case_id"]] == f"shifted/predictions/{row['case_id']}.nii.gz"
        pred, geometry = read_image(tmp_path / row["prediction"])
        case = prepared[row["case_id"]]
        assert pred.shape == case.shape and geometry.differences(case.geometry) == []
        assert set(np.unique(pred)) <= {0, 1} and pred.any()
        # the saved mask is the one the Dice was computed from: found where the lesion is painted, not at its label
        assert row["predicted_ml"] == pytest.approx(pred.sum() * case.geometry.voxel_volume_ml)
        painted = np.roll(case.label > 0, -10, axis=1)
        assert (pred > 0)[painted].mean() > 0.5 and (pred > 0)[case.label > 0].mean() < 0.2


def test_quality_filter_drops_drifting_cases(sets, cache, tmp_path):
    real_train, real_test, honest, shifted, unpainted = sets
    context = ctx(tmp_path, cache)
    mixed = [*honest, *shifted[:2], *unpainted[:2]]
    kept, dropped = quality_filter(mixed, real_train, real_test, context=context,
                                   config=CONFIG, min_lesion_ml=0.005)
    assert [c.case_id for c in kept] == [c.case_id for c in honest]
    assert {r["synthetic_id"] for r in dropped} == {"s0", "s1", "u0", "u1"}
    assert kept[0] is honest[0]  # the cases as given (raw resolution), not the prepared copies

    calls = []

    def regenerate(n: int, rnd: int) -> list[Case]:
        calls.append((n, rnd))
        return [blob_case(f"re{rnd}_{i}", 500 + 10 * rnd + i) for i in range(n)]

    kept2, dropped2 = quality_filter(shifted[:2], real_train, real_test, context=context, config=CONFIG,
                                     min_lesion_ml=0.005, regenerate=regenerate, max_rounds=2)
    assert calls == [(2, 1)] and [c.case_id for c in kept2] == ["re1_0", "re1_1"]
    assert all(r["round"] == 0 for r in dropped2)

    out = write_filtered(kept, dropped, tmp_path / "filtered", {"generator": "test"})
    info = json.loads((out / "dataset.json").read_text())
    assert info["generator"] == "test" and info["quality_filter"]["dropped"] == 4
    assert {r["synthetic_id"] for r in info["quality_filter"]["dropped_cases"]} == {"s0", "s1", "u0", "u1"}
    assert all(r["reason"] for r in info["quality_filter"]["dropped_cases"])
    assert sorted(load_dataset(out).case_ids) == sorted(c.case_id for c in honest)
