"""Joint image + mask diffusion: a tiny configuration trains and samples on CPU end to end (image + mask out)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_training import make_cases  # same folder: pytest puts it on sys.path

from SyntheticImagingLib.errors import InputError
from SyntheticImagingLib.generators import create_generator, load_generator
from SyntheticImagingLib.generators.diffusion import CUDA_LATENT_128_CONFIG, TINY_CONFIG
from SyntheticImagingLib.training import train_generator
from SyntheticImagingLib.training.data import GridSettings, prepare_cases

TINY = {**TINY_CONFIG, "spacing": [2, 2, 2], "inference_steps": 4}


@pytest.fixture(scope="module")
def cases():
    return make_cases(4)


@pytest.fixture(scope="module")
def trained(cases, tmp_path_factory):
    out = tmp_path_factory.mktemp("diffusion") / "model"
    gen = train_generator(cases, task="brain-tumor-mri", family="diffusion", out_dir=out, steps=4, batch_size=2,
                          device="cpu", cache_dir="", preview_every=4, **TINY)
    return gen, out


def _check_case(case, shape=(16, 16, 16)):
    assert case.channel_names == ["FLAIR", "T1"] and case.shape == shape
    assert all(np.isfinite(a).all() and a.min() >= 0 for a in case.channels.values())  # MR: physical, >= 0
    assert case.label is not None and case.label.dtype == np.int16 and set(np.unique(case.label)) <= {0, 1}
    assert case.brain_mask is not None and case.brain_mask[case.label > 0].all()
    assert case.metadata["generator"] == "diffusion/1"


def test_tiny_diffusion_trains_and_samples_image_and_mask(trained):
    gen, out = trained
    card = json.loads((out / "model_card.json").read_text())
    assert card["family"] == "diffusion" and card["training"]["steps"] == 4
    assert np.isfinite(card["training"]["final_metrics"]["loss"])
    assert sorted(p.suffix for p in (out / "validation").iterdir()) == [".npz", ".png"]
    loaded = load_generator(out)
    a, b = list(loaded.synthesize(2, seed=5))  # joint: image channels and masks sampled together
    for case in (a, b):
        _check_case(case)
        assert case.metadata["conditioned"] is False
        assert case.geometry in [g for _, g in loaded.references]  # a training case's model-grid geometry
    again = next(loaded.synthesize(1, seed=5))
    assert np.array_equal(again.channels["FLAIR"], a.channels["FLAIR"]) and np.array_equal(again.label, a.label)


def test_mask_conditioned_sampling_returns_the_given_mask(trained, cases):
    gen, _ = trained
    grid = GridSettings.from_task(gen.task, spacing=gen.grid.spacing, shape=gen.grid.shape)
    p = prepare_cases(cases[:1], grid)[0]
    case = gen.generate(p.label, p.brain, p.geometry, seed=1)  # RePaint inpainting around the given masks
    _check_case(case)
    assert np.array_equal(case.label, p.label) and np.array_equal(case.brain_mask, p.brain)
    assert case.geometry == p.geometry


@pytest.mark.parametrize("extra", [
    {"objective": "rflow", "sampler": "rflow"},
    {"latent_channels": 2, "autoencoder_channels": [8, 16], "autoencoder_steps": 2, "conditioning": "concat",
     "guidance": 1.5},
], ids=["rflow", "latent-concat"])
def test_other_objectives_and_latent_mode(cases, extra, tmp_path):
    gen = train_generator(cases, task="brain-tumor-mri", family="diffusion", out_dir=tmp_path / "m", steps=4,
                          batch_size=2, device="cpu", cache_dir="", **{**TINY, **extra})
    loaded = load_generator(tmp_path / "m")
    _check_case(next(loaded.synthesize(1, seed=0)))
    brain, geometry = loaded.references[0]
    label = np.zeros(brain.shape, np.int16)
    label[6:9, 6:9, 6:9] = 1
    cond = loaded.generate(label, brain, geometry, seed=2)
    assert np.array_equal(cond.label, label)
    if gen.latent:
        assert float(loaded.nets["latent_scale"].scale) != 1.0  # fitted on the first diffusion step, saved


def test_configurations_are_checked():
    with pytest.raises(InputError, match="latent diffusion"):
        create_generator("diffusion", latent_channels=4, conditioning="repaint", autoencoder_steps=1)
    with pytest.raises(InputError, match="sampler"):
        create_generator("diffusion", objective="rflow", sampler="ddim")
    with pytest.raises(InputError, match="divisible"):
        create_generator("diffusion", **{**TINY_CONFIG, "shape": [17, 16, 16]})
    gen = create_generator("diffusion", **CUDA_LATENT_128_CONFIG)  # the documented CUDA configuration is valid
    assert gen.space_shape == (32, 32, 32) and gen.latent
