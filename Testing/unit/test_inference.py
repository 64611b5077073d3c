"""Synthesis settings: bf16 keeps the images, batches do not change the cases, precision is chosen safely."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from test_training import TINY_GAN, make_cases  # same folder: pytest puts it on sys.path
from torch import nn

from SyntheticImagingLib.api import synthesize
from SyntheticImagingLib.background import prefetch
from SyntheticImagingLib.cli import main
from SyntheticImagingLib.errors import InputError
from SyntheticImagingLib.generators.gan3d import _ClassMeanPrior
from SyntheticImagingLib.generators.inference import (
    InferenceNetwork,
    InferenceSettings,
    resolve_precision,
)
from SyntheticImagingLib.hardware import cpu_has_native_bf16
from SyntheticImagingLib.io.datasets import load_dataset
from SyntheticImagingLib.lesions.controls import LesionControls
from SyntheticImagingLib.training import train_generator

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("gan") / "model"
    return train_generator(make_cases(4), task="brain-tumor-mri", family="gan3d", out_dir=out, steps=12,
                           batch_size=2, device="cpu", cache_dir="", **TINY_GAN), out


@pytest.fixture(scope="module")
def gan(trained):
    return trained[0]


CONTROLS = LesionControls(kind="tumor", volume_ml=0.3, use_templates=False)


def _cases(gen, **settings):
    gen.to("cpu", **settings)
    return list(gen.synthesize(5, seed=3, controls=CONTROLS))


def test_precision_choice():
    assert resolve_precision("fp32", CPU) is None
    assert resolve_precision("bf16", CPU) == torch.bfloat16
    assert resolve_precision("auto", CPU) == (torch.bfloat16 if cpu_has_native_bf16() else None)
    with pytest.raises(InputError, match="fp16 synthesis needs a CUDA GPU"):
        resolve_precision("fp16", CPU)
    with pytest.raises(InputError, match="unknown precision"):
        InferenceSettings(precision="int8")
    with pytest.raises(InputError, match="batch size must be >= 1"):
        InferenceSettings(batch_size=0)
    assert InferenceSettings().resolved_batch_size(CPU) == 1
    assert InferenceSettings(batch_size=3).options() == {"precision": "auto", "batch_size": 3, "compile": False,
                                                         "channels_last": False, "label_workers": 0}


def test_bf16_synthesis_keeps_labels_and_images(gan):
    full = _cases(gan, precision="fp32")
    half = _cases(gan, precision="bf16")
    for a, b in zip(full, half):
        assert a.case_id == b.case_id and np.array_equal(a.label, b.label)  # labels are never touched
        for name in a.channel_names:
            x, y = a.channels[name], b.channels[name]
            scale = np.percentile(x[a.brain_mask], 99) - np.percentile(x[a.brain_mask], 1)
            assert np.abs(x - y).mean() < 0.01 * scale  # well under the image's own noise
            assert np.abs(x - y).max() < 0.1 * scale
            assert np.abs(x - y).max() > 0  # bf16 really ran


def test_batched_synthesis_makes_the_same_cases(gan):
    one = _cases(gan, precision="fp32", batch_size=1)
    three = _cases(gan, precision="fp32", batch_size=3)  # batches of 3 and 2
    assert [c.case_id for c in one] == [c.case_id for c in three]
    for a, b in zip(one, three):
        assert np.array_equal(a.label, b.label)
        for name in a.channel_names:
            np.testing.assert_allclose(a.channels[name], b.channels[name], rtol=1e-4, atol=1e-2)


def test_channels_last_gives_the_same_images(gan):
    plain = _cases(gan, precision="fp32")[:2]
    last = _cases(gan, precision="fp32", channels_last=True)[:2]
    for a, b in zip(plain, last):
        np.testing.assert_allclose(a.channels["FLAIR"], b.channels["FLAIR"], rtol=1e-4, atol=1e-2)


def test_api_applies_the_settings_and_keeps_a_configured_instance(gan):
    gan.to("cpu", precision="bf16", batch_size=2)
    synthesize(gan, 1, seed=0, controls=CONTROLS)
    assert gan.inference.precision == "bf16" and gan.inference.batch_size == 2  # instance kept as configured
    synthesize(gan, 1, seed=0, controls=CONTROLS, inference=InferenceSettings(device="cpu", precision="fp32"))
    assert gan.inference.precision == "fp32" and gan.inference.batch_size is None


def test_cli_synthesize_takes_the_settings(trained, tmp_path):
    out = tmp_path / "synth"
    code = main(["--progress", "none", "synthesize", "--generator", str(trained[1]), "--n", "3", "--seed", "1",
                 "--out", str(out), "--device", "cpu", "--precision", "bf16", "--batch-size", "2",
                 "--lesion-volume", "0.3"])
    assert code == 0
    cases = list(load_dataset(out))
    assert [c.case_id for c in cases] == ["gan3d-s1-0000", "gan3d-s1-0001", "gan3d-s1-0002"]
    assert all(c.label.any() for c in cases)
    assert main(["--progress", "none", "synthesize", "--generator", str(trained[1]), "--n", "1",
                 "--out", str(tmp_path / "x"), "--device", "cpu", "--precision", "fp16"]) == 2  # a clear error


def test_class_mean_prior_stays_full_precision_under_autocast():
    class Zero(nn.Module):
        def forward(self, x):
            return torch.zeros_like(x[:, :1]).repeat(1, 2, 1, 1, 1)

    prior = _ClassMeanPrior(Zero(), n_lesion=1, n_out=2)
    prior.class_means.copy_(torch.tensor([[0.0, 0.0], [0.123457, 0.654321], [1.234567, 0.987654]]))
    cond = torch.zeros(1, 2, 4, 4, 4)
    cond[:, 1] = 1  # all brain
    cond[:, 0, :2] = 1  # lesion in half
    out = InferenceNetwork(prior, dtype=torch.bfloat16)(cond)
    assert out.dtype == torch.float32
    assert torch.allclose(out[0, 0, 3], torch.tensor(0.123457)) and torch.allclose(out[0, 1, 0], torch.tensor(0.987654))


def test_compiled_network_matches():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv3d(2, 4, 3, padding=1), nn.ReLU(), nn.Conv3d(4, 1, 1)).eval()
    x = torch.rand(1, 2, 8, 8, 8)
    with torch.inference_mode():
        ref = net(x)
        out = InferenceNetwork(net, compile=True)(x)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)


def test_prefetch_keeps_order_raises_in_place_and_stops_with_the_consumer():
    assert list(prefetch(range(7), depth=3)) == list(range(7))

    def failing():
        yield 0
        yield 1
        raise ValueError("draw 2 failed")

    got = []
    with pytest.raises(ValueError, match="draw 2 failed"):
        for x in prefetch(failing()):
            got.append(x)
    assert got == [0, 1]

    def endless():
        i = 0
        while True:
            yield i
            i += 1

    stream = prefetch(endless(), depth=2)
    assert next(stream) == 0
    stream.close()  # the consumer stops early: the producer thread ends
    assert not any(t.name == "synthesis-prefetch" and t.is_alive() for t in threading.enumerate())


def test_label_worker_processes_make_the_same_cases_and_pass_errors_on(gan):
    here = _cases(gan, precision="fp32", label_workers=0)
    workers = _cases(gan, precision="fp32", label_workers=2)  # spawned processes draw the labels
    assert [c.case_id for c in here] == [c.case_id for c in workers]
    for a, b in zip(here, workers):
        assert np.array_equal(a.label, b.label) and a.metadata["lesions"] == b.metadata["lesions"]
        np.testing.assert_array_equal(a.channels["FLAIR"], b.channels["FLAIR"])
    gan.to("cpu", precision="fp32", label_workers=1)
    too_big = LesionControls(kind="tumor", volume_ml=500.0, use_templates=False)
    with pytest.raises(InputError, match="too large"):  # raised in the worker, reported here
        list(gan.synthesize(2, seed=0, controls=too_big))
    with pytest.raises(InputError, match="label workers"):
        InferenceSettings(label_workers=-1)


def test_a_refused_setting_changes_nothing_and_unknown_ones_are_named(gan):
    gan.to("cpu", precision="fp32", batch_size=2)
    with pytest.raises(InputError, match="fp16 synthesis needs a CUDA GPU"):
        gan.to("cpu", precision="fp16")
    assert gan.inference.precision == "fp32" and gan.inference.batch_size == 2
    with pytest.raises(InputError, match=r"unknown synthesis settings \['half'\]"):
        gan.to("cpu", half=True)


def test_a_rendering_error_leaves_no_drawing_thread(gan, monkeypatch):
    gan.to("cpu", precision="fp32")

    def broken(*args, **kwargs):
        raise RuntimeError("out of memory (simulated)")

    monkeypatch.setattr(gan, "_images", broken)
    with pytest.raises(RuntimeError, match="simulated") as caught:
        list(gan.synthesize(4, seed=0, controls=CONTROLS))
    assert caught.value is not None  # the traceback (and the synthesize frame) is still held here
    assert not any(t.name == "synthesis-prefetch" and t.is_alive() for t in threading.enumerate())
