"""The checks on head-CT hemorrhage sets, as on tumour sets: utility, adherence and privacy with HU-aware inputs.

No real labelled hemorrhage CT exists here, so the reference ("real") cases are knowledge-based hemorrhages on the
real head-CT template, split by case; a user's own labelled CTs take their place in practice. A CPU-sized profile
(one seed, few steps) keeps this under a minute.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from SyntheticImagingLib.api import sample_ct_head, synthesize
from SyntheticImagingLib.checks.base import PROFILES
from SyntheticImagingLib.checks.evaluate import evaluate
from SyntheticImagingLib.checks.prepare import BRAIN_WINDOW_HU, prepare_case
from SyntheticImagingLib.lesions.controls import HEMORRHAGE_SUBTYPES, LesionControls

pytestmark = pytest.mark.slow

PROFILE = dataclasses.replace(PROFILES["quick"], name="quick-ct", seeds=1, segmenter_steps=100, encoder_steps=20,
                              real_sizes=(), synthetic_ratios=(1.0,), repeats=5)
CONTROLS = LesionControls(kind="hemorrhage", volume_ml=(8.0, 40.0), count=1, subtypes=HEMORRHAGE_SUBTYPES,
                          use_templates=False)


@pytest.fixture(scope="module")
def sets():
    ct = [sample_ct_head()]
    reference = synthesize("lesion-insertion", 10, seed=100, controls=CONTROLS, task="head-hemorrhage-ct", data=ct)
    reference = [c.replace(case_id=f"reference_{i}") for i, c in enumerate(reference)]
    train, test = reference[:8], reference[8:]
    synthetic = {
        "label-to-image": synthesize("label-to-image", 4, seed=0, controls=CONTROLS, task="head-hemorrhage-ct",
                                     data=train),
        "lesion-insertion": synthesize("lesion-insertion", 4, seed=0, controls=CONTROLS, task="head-hemorrhage-ct",
                                       data=ct),
    }
    return train, test, synthetic


def test_ct_cases_get_a_brain_window_channel(sets):
    case = sets[0][0]
    prepared = prepare_case(case, PROFILE)
    name = f"CT {BRAIN_WINDOW_HU[0]:g}-{BRAIN_WINDOW_HU[1]:g} HU"
    assert list(prepared.channels) == ["CT", name]
    window = prepared.channels[name]
    lesion, brain = prepared.label > 0, prepared.brain_mask & (prepared.label == 0)
    # Blood (50-90 HU) far brighter than brain (~30 HU) in the window channel: the step the segmenter learns.
    assert np.median(window[lesion]) - np.median(window[brain]) > 0.5


@pytest.mark.parametrize("family", ["label-to-image", "lesion-insertion"])
def test_utility_adherence_privacy_on_hemorrhage_ct(sets, family, tmp_path):
    torch.set_num_threads(1)
    train, test, synthetic = sets
    report = evaluate(train, test, synthetic[family], out_dir=tmp_path / "report", profile=PROFILE, device="cpu",
                      checks=("utility", "adherence", "privacy"))
    assert report["status"] == "complete"
    assert set(report["checks"]) == {"utility", "adherence", "privacy"}
    assert all(c["status"] == "ok" for c in report["checks"].values())
    assert (tmp_path / "report" / "report.html").exists()
    written = json.loads((tmp_path / "report" / "report.json").read_text())
    assert written["status"] == "complete" and set(written["checks"]) == set(report["checks"])
    utility = report["checks"]["utility"]["summary"]["regimes"]
    assert utility["TRTR"]["dice"] > 0.05  # HU-aware inputs: a segmenter learns CT blood in 100 steps
    adherence = report["checks"]["adherence"]["summary"]
    assert adherence["intensity_feature"] == "lesion_median_hu" and adherence["intensity_channel"] == "CT"
    assert adherence["share_intensity_out_of_range"] == 0.0  # synthetic blood in the HU range of the reference
    privacy = report["checks"]["privacy"]["summary"]
    assert privacy["n_train"] == 8 and privacy["n_holdout"] == 2 and "verdict" in privacy
