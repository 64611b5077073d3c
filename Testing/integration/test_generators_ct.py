"""The trainable families on head CT (task preset ``head-hemorrhage-ct``), exactly as on MRI.

No real labelled hemorrhage CT exists here: the training cases are knowledge-based hemorrhages (all five subtypes)
inserted into the real head-CT template. A user's own labelled CTs go through the same calls.
"""

from __future__ import annotations

import numpy as np
import pytest

from SyntheticImagingLib.api import sample_ct_head, synthesize
from SyntheticImagingLib.generators import load_generator
from SyntheticImagingLib.generators.diffusion import TINY_CONFIG
from SyntheticImagingLib.lesions.controls import HEMORRHAGE_SUBTYPES, LesionControls
from SyntheticImagingLib.training import train_generator

pytestmark = pytest.mark.slow

CONTROLS = LesionControls(kind="hemorrhage", volume_ml=(15.0, 40.0), count=1, subtypes=HEMORRHAGE_SUBTYPES,
                          use_templates=False)
#: 4 mm grid over the 182x218x182 mm template head.
GAN_GRID = {"spacing": [4.0, 4.0, 4.0], "shape": [48, 56, 48]}
GAN_STEPS = 40


@pytest.fixture(scope="module")
def training_cases():
    cases = synthesize("lesion-insertion", 6, seed=11, controls=CONTROLS, task="head-hemorrhage-ct",
                       data=[sample_ct_head()])
    return [c.replace(case_id=f"template_ich_{i}") for i, c in enumerate(cases)]


def _check_ct_case(case, shape):
    assert case.modality.value == "CT" and case.channel_names == ["CT"] and case.shape == shape
    ct = case.channels["CT"]
    assert np.isfinite(ct).all() and ct.min() >= -1024.0 and ct.max() <= 3071.0
    assert case.label is not None and case.label.any()
    assert case.brain_mask is not None and case.brain_mask[case.label > 0].all()


def test_gan_trains_on_template_ct_and_renders_blood_denser_than_brain(training_cases, tmp_path):
    gen = train_generator(training_cases, task="head-hemorrhage-ct", family="gan3d", out_dir=tmp_path / "gan",
                          steps=GAN_STEPS, batch_size=2, device="cpu", seed=0, cache_dir="", **GAN_GRID)
    assert gen.card()["training"]["data"]["modality"] == "CT"
    cases = list(gen.synthesize(3, seed=2, controls=CONTROLS))
    for case in cases:
        _check_ct_case(case, tuple(GAN_GRID["shape"]))
        names = set(case.label_table.names.values())
        assert names <= {f"{s} hemorrhage" for s in HEMORRHAGE_SUBTYPES} | set(HEMORRHAGE_SUBTYPES), names
        ct = case.channels["CT"]
        blood = case.label > 0
        brain = case.brain_mask & ~blood
        print(f"{case.case_id}: blood {np.median(ct[blood]):.0f} HU, brain {np.median(ct[brain]):.0f} HU")
        assert np.median(ct[brain]) == pytest.approx(30.0, abs=25.0)  # brain tissue in its HU range
        assert np.median(ct[blood]) > np.median(ct[brain]) + 10.0  # acute blood is hyperdense
    # The saved generator keeps the head anatomy (masks only) and places the same bleeds.
    loaded = load_generator(tmp_path / "gan")
    again = next(loaded.synthesize(1, seed=2, controls=CONTROLS))
    assert np.array_equal(again.label, cases[0].label)


def test_diffusion_trains_on_template_ct_and_samples_image_and_mask(training_cases, tmp_path):
    config = {**TINY_CONFIG, "spacing": [12.0, 12.0, 12.0], "inference_steps": 4}
    gen = train_generator(training_cases, task="head-hemorrhage-ct", family="diffusion", out_dir=tmp_path / "dm",
                          steps=4, batch_size=2, device="cpu", seed=0, cache_dir="", **config)
    cases = list(gen.synthesize(2, seed=1))
    for case in cases:
        assert case.modality.value == "CT" and case.channel_names == ["CT"]
        ct = case.channels["CT"]
        assert np.isfinite(ct).all() and ct.min() >= -1024.0 and ct.max() <= 3071.0
        assert case.label is not None and set(np.unique(case.label).tolist()) <= {0, *gen.grid.label_values}
