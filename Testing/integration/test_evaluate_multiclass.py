"""``evaluate`` on the shared BRATS 2013 cases with their four tumour labels (necrosis, edema, non-enhancing and
enhancing tumour): 4 real training / 2 real test cases split by case, a synthetic set made from the training
cases; the utility and adherence checks report every label and the BraTS regions (whole tumour, tumour core,
enhancing tumour) for every regime, and the report reads them back typed.

The BRATS 2013 channels are z-scored inside the brain (negative values in the brain); they are used as they are.
The synthetic set is made by the lesion-insertion generator fitted on the training cases (new BraTS-nested
tumours written with the user's table). A second test relabels perturbed training cases under another value
order and other names, so the label mapping by name/role is exercised on real data. A tiny grid (5 mm) and few
segmenter steps keep it to about a minute on one core: the numbers are plumbing, not a benchmark.
"""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest

from SyntheticImagingLib.cases import Case, LabelTable
from SyntheticImagingLib.checks.base import Profile
from SyntheticImagingLib.checks.evaluate import evaluate
from SyntheticImagingLib.checks.prepare import prepare_cases
from SyntheticImagingLib.checks.report_model import read_report
from SyntheticImagingLib.errors import LabelError
from SyntheticImagingLib.io.datasets import load_dataset
from SyntheticImagingLib.preprocessing import resample_case

pytestmark = pytest.mark.slow

PROFILE = Profile(name="tiny-multiclass", spacing=(5.0, 5.0, 5.0), shape=(32, 40, 32), seeds=2, segmenter_steps=30,
                  encoder_steps=10, real_sizes=(2,), synthetic_ratios=(1.0,), repeats=2)
LABELS = ("necrosis", "edema", "non-enhancing tumor", "enhancing tumor")
REGIONS = ("whole tumor", "tumor core", "enhancing tumor")
#: The synthetic set's own table: other values and names for the same labels.
SYNTHETIC_TABLE = LabelTable({1: "ET", 2: "NCR", 3: "peritumoral oedema", 4: "non-enhancing tumour"})
TO_SYNTHETIC = {4: 1, 1: 2, 2: 3, 3: 4}  # real value -> synthetic value


def perturbed(case: Case, i: int) -> Case:
    rng = np.random.default_rng(i)
    channels = {k: (a * rng.uniform(0.9, 1.1) + rng.normal(0, 0.05, a.shape)).astype(np.float32)
                for k, a in case.channels.items()}
    label = np.zeros_like(case.label)
    for real, syn in TO_SYNTHETIC.items():
        label[case.label == real] = syn
    if i % 2:
        channels = {k: a[..., ::-1].copy() for k, a in channels.items()}
        label = label[..., ::-1].copy()
    return case.replace(case_id=f"synthetic_{i}", channels=channels, label=label, label_table=SYNTHETIC_TABLE,
                        brain_mask=None if case.brain_mask is None else
                        (case.brain_mask[..., ::-1].copy() if i % 2 else case.brain_mask),
                        metadata={"synthetic": True, "stand_in": "perturbed training case"})


@pytest.fixture(scope="module")
def brats2013(shared_data):
    ds = load_dataset(shared_data / "brats2013_multiclass", layout="brats2013")
    ids = sorted(ds.case_ids)
    # 2 mm is enough for the 5 mm check grid and keeps memory and time small
    cases = [resample_case(c, (2.0, 2.0, 2.0)) for c in ds]
    by_id = {c.case_id: c for c in cases}
    return [by_id[i] for i in ids[:4]], [by_id[i] for i in ids[4:6]]


def test_evaluate_reports_labels_and_regions(brats2013, tmp_path):
    from SyntheticImagingLib import api

    train, test = brats2013
    assert train[0].label_table.names == dict(enumerate(LABELS, start=1))
    assert min(float(c.channels["T1c"].min()) for c in train) < 0  # z-scored, used as it is
    generator = api.get_generator("lesion-insertion", data=train)
    synthetic = list(generator.synthesize(4, seed=0))
    assert all(c.label_table.names == train[0].label_table.names for c in synthetic)
    out = tmp_path / "report"
    t0 = time.monotonic()
    report = evaluate(train, test, synthetic, out_dir=out, checks="utility,adherence", profile=PROFILE,
                      device="cpu", seed=0)
    print(f"evaluate multiclass: {time.monotonic() - t0:.0f} s")
    assert report["status"] == "complete", {k: v.get("message") for k, v in report["checks"].items()}
    assert report["data"]["synthetic"]["labels"] == {str(v): n for v, n in enumerate(LABELS, start=1)}

    utility = json.loads((out / "report.json").read_text())["checks"]["utility"]
    regimes = [r["regime"] for r in utility["tables"]["regimes"]["rows"]]
    assert {"TRTR", "TSTR", "R+S x1"} <= set(regimes)
    per_label = utility["tables"]["per_label"]["rows"]
    per_region = utility["tables"]["per_region"]["rows"]
    assert {(r["regime"], r["label"]) for r in per_label} == {(g, n) for g in regimes for n in LABELS}
    assert {(r["regime"], r["region"]) for r in per_region} == {(g, n) for g in regimes for n in REGIONS}
    for row in (*per_label, *per_region):
        assert row["seeds"] == PROFILE.seeds and 0.0 <= row["dice"] <= 1.0 and math.isfinite(row["hd95_mm"])
    for row in (*per_label, *per_region):
        if row["regime"] in ("TRTR", "TSTR"):
            print(f"{row['regime']:5s} {row.get('label') or row.get('region'):20s} Dice {row['dice']:.2f} "
                  f"[{row['dice_lo']:.2f}, {row['dice_hi']:.2f}] HD95 {row['hd95_mm']:.0f} mm")
    assert (out / utility["tables"]["per_label"]["csv"]).exists()
    assert set(utility["summary"]["region_dice"]["TSTR"]) == set(REGIONS)
    # the headline stays the whole lesion; the whole-tumour region is the same voxels
    for regime in ("TRTR", "TSTR"):
        wt = next(r for r in per_region if r["regime"] == regime and r["region"] == "whole tumor")
        assert wt["dice"] == pytest.approx(utility["summary"]["regimes"][regime]["dice"], abs=1e-9)

    adherence = report["checks"]["adherence"]
    assert {r["label"] for r in adherence["tables"]["per_label"]["rows"]} == set(LABELS)
    assert {r["region"] for r in adherence["tables"]["per_region"]["rows"]} == set(REGIONS)

    typed = read_report(out)
    assert len(typed.label_rows()) == len(per_label) and len(typed.region_rows()) == len(per_region)
    assert {r.name for r in typed.label_rows() if r.regime == "TSTR"} == set(LABELS)
    page = (out / "report.html").read_text()
    assert "Table: per label" in page and "Table: per region" in page


def test_relabelled_set_maps_by_name(brats2013):
    """A set with the same labels under other values and names (ET 1, NCR 2, oedema 3, non-enhancing 4) is mapped
    onto the real training table voxel for voxel; a table that cannot be matched is refused naming both."""
    train, _ = brats2013
    real = train[0].label_table
    prepared = prepare_cases([perturbed(c, i) for i, c in enumerate(train[:2])], PROFILE, labels=real,
                             stage="prepare:synthetic")
    direct = prepare_cases(train[:2], PROFILE, labels=real, stage="prepare:real")
    for p, d, i in zip(prepared, direct, range(2)):
        assert p.label_table == real
        expected = d.label[..., ::-1] if i % 2 else d.label
        assert np.mean(p.label == expected) > 0.99  # same voxels, real values (resampling at the flipped edge aside)
    odd = train[0].replace(label_table=LabelTable({1: "blob", 2: "edema", 3: "non-enhancing", 4: "ET"}))
    with pytest.raises(LabelError) as err:
        prepare_cases([odd], PROFILE, labels=real, stage="prepare:synthetic")
    assert "'blob'" in str(err.value) and "'necrosis'" in str(err.value)
