"""Fidelity numbers on known answers (Fréchet distance, precision/recall, MS-SSIM, Wasserstein-1), and the
self-supervised encoder: deterministic, cached by training data, saved and loaded without pickled code."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from SyntheticImagingLib.cases import Case, Geometry
from SyntheticImagingLib.checks import get_check
from SyntheticImagingLib.checks.base import CheckContext, Profile
from SyntheticImagingLib.checks.encoder import (
    ENCODER_CACHE_KEY,
    ENCODER_DIR_KEY,
    SIMCLR_AUGMENT,
    EncoderConfig,
    FeatureEncoder,
    augment_batch,
    get_encoder,
    train_encoder,
)
from SyntheticImagingLib.checks.fidelity import (
    FidelityCheck,
    frechet_distance,
    intensity_distances,
    ledoit_wolf,
    ms_ssim_pairs,
    precision_recall,
    principal_axes,
)
from SyntheticImagingLib.errors import CheckpointError, InputError

SHAPE = (16, 20, 16)
TINY = Profile(name="tiny", spacing=(4.0, 4.0, 4.0), shape=SHAPE, seeds=1, segmenter_steps=10, encoder_steps=6,
               real_sizes=(2,), synthetic_ratios=(1.0,), repeats=2)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Two shared cores: one torch thread avoids oversubscription."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def head(case_id: str, seed: int, *, lesion_gain: float = 0.8) -> Case:
    rng = np.random.default_rng(seed)
    zz, yy, xx = np.indices(SHAPE, dtype=float)
    c = (np.asarray(SHAPE) - 1) / 2 + rng.uniform(-1, 1, 3)
    mask = ((zz - c[0]) / 6) ** 2 + ((yy - c[1]) / 8) ** 2 + ((xx - c[2]) / 6) ** 2 < 1
    texture = ndimage.gaussian_filter(rng.normal(size=SHAPE), 1.0)
    texture /= texture.std()
    lesion = ((zz - c[0]) ** 2 + (yy - c[1] - 2) ** 2 + (xx - c[2]) ** 2) < rng.uniform(2, 3) ** 2
    flair = np.where(mask, -0.2 + 0.3 * texture + lesion_gain * lesion, -1.0)
    t1 = np.where(mask, 0.3 - 0.2 * texture - 0.3 * lesion, -1.0)
    return Case(case_id=case_id, channels={"FLAIR": flair, "T1": t1}, geometry=Geometry((4.0, 4.0, 4.0)),
                label=lesion.astype(np.int16), brain_mask=mask)


@pytest.fixture(scope="module")
def cases():
    return [head(f"c{i}", i) for i in range(8)]


def ctx(tmp_path, **cache) -> CheckContext:
    return CheckContext(profile=TINY, out_dir=tmp_path, device="cpu", cache=dict(cache))


# ------------------------------------------------------------------------------------------ statistics
def test_ledoit_wolf_and_frechet_distance():
    rng = np.random.default_rng(0)
    big = rng.normal(size=(4000, 4)) * [1.0, 2.0, 3.0, 4.0]
    cov, shrink = ledoit_wolf(big)
    assert shrink < 0.05 and np.allclose(cov, np.diag([1.0, 4.0, 9.0, 16.0]), rtol=0.1, atol=0.2)
    assert ledoit_wolf(rng.normal(size=(4000, 4)))[1] > 0.5  # isotropic truth: shrinking to the identity is right
    assert frechet_distance(big, big)["value"] == pytest.approx(0.0, abs=1e-6)
    shifted = frechet_distance(big, big + [3.0, 0, 0, 0])
    assert shifted["value"] == pytest.approx(9.0, rel=1e-4) and shifted["dims"] == 4
    scaled = frechet_distance(big, 2.0 * big)  # N(0, S) vs N(0, 4S): tr(S + 4S - 2*2S) = tr(S) = 30
    assert scaled["value"] == pytest.approx(30.0, rel=0.1)
    # fewer cases than dimensions: finite, with strong shrinkage, and the dimensions are reported
    few_a, few_b = rng.normal(size=(5, 64)), rng.normal(size=(6, 64)) + 1.0
    fd = frechet_distance(few_a, few_b)
    assert np.isfinite(fd["value"]) and fd["dims"] == 64 and fd["shrinkage_a"] > 0.3
    assert fd["value"] > frechet_distance(few_a, rng.normal(size=(6, 64)))["value"]
    basis = principal_axes(few_a, dims=10)
    assert basis.shape == (4, 64)  # at most n - 1 axes
    assert frechet_distance(few_a, few_b, basis=basis)["dims"] == 4


def test_precision_recall_known_answers():
    rng = np.random.default_rng(1)
    real = rng.normal(size=(200, 3))
    same = precision_recall(real, real.copy(), k=3)
    assert same["precision"] == 1.0 and same["recall"] == 1.0
    far = precision_recall(real, real + 100.0, k=3)
    assert far["precision"] == 0.0 and far["recall"] == 0.0
    collapsed = precision_recall(real, rng.normal(scale=0.05, size=(200, 3)), k=3)
    assert collapsed["precision"] > 0.9 and collapsed["recall"] < 0.3  # realistic but not diverse
    assert np.isnan(precision_recall(real, real[:1])["recall"])


def test_ms_ssim_pairs(cases):
    same, name = ms_ssim_pairs([cases[0], cases[0].replace(case_id="twin")], max_pairs=5)
    assert same[0] == pytest.approx(1.0, abs=1e-5) and "SSIM" in name
    values, _ = ms_ssim_pairs(cases, max_pairs=6, seed=0)
    assert values.shape == (6,) and np.all(values < 0.99)
    small = [Case(case_id=str(i), channels={"A": np.random.default_rng(i).normal(size=(8, 8, 8))},
                  geometry=Geometry()) for i in range(3)]
    vals, name = ms_ssim_pairs(small, max_pairs=10)
    assert name.startswith("SSIM") and vals.shape == (3,)


def test_intensity_distances_per_label(cases):
    brighter = [c.replace(channels={**c.channels, "FLAIR": c.channels["FLAIR"] + 0.2 * (c.label > 0)})
                for c in cases[:4]]
    rows = {(r["region"], r["channel"]): r for r in intensity_distances(cases[:4], brighter, cases[4:])}
    assert rows[("lesion: tumor", "FLAIR")]["w1_synthetic"] == pytest.approx(0.2, abs=1e-6)
    assert rows[("lesion: tumor", "T1")]["w1_synthetic"] == pytest.approx(0.0, abs=1e-9)
    assert rows[("normal brain", "FLAIR")]["w1_synthetic"] == pytest.approx(0.0, abs=1e-9)
    assert rows[("normal brain", "FLAIR")]["w1_holdout"] > 0


# ---------------------------------------------------------------------------------------------- encoder
def test_augmentations_keep_background_and_are_seeded(cases):
    x = torch.from_numpy(np.stack([np.stack(list(c.channels.values())) for c in cases[:3]]))
    a = augment_batch(x, SIMCLR_AUGMENT, generator=torch.Generator().manual_seed(0))
    b = augment_batch(x, SIMCLR_AUGMENT, generator=torch.Generator().manual_seed(0))
    assert a.shape == x.shape and torch.equal(a, b)
    assert abs(float(a[:, :, 0, 0, 0].mean()) + 1.0) < 0.3  # corners stay background (up to jitter and noise)


def test_encoder_is_deterministic_cached_and_saved(cases, tmp_path):
    config = EncoderConfig(steps=4, widths=(8, 8, 16, 16), batch_size=4)
    one = train_encoder(cases[:4], config=config, seed=3, device="cpu")
    two = train_encoder(cases[:4], config=config, seed=3, device="cpu")
    e1, e2 = one.embed(cases), two.embed(cases)
    assert e1.shape == (8, 16) and np.array_equal(e1, e2)
    path = one.save(tmp_path / "enc.pt")
    loaded = FeatureEncoder.load(path)
    np.testing.assert_allclose(loaded.embed(cases), e1, rtol=1e-5, atol=1e-6)
    assert loaded.fingerprint == one.fingerprint and loaded.losses == one.losses
    torch.load(path, weights_only=True)  # plain tensors and strings only: loadable without trusting code
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        FeatureEncoder.load(path)
    with pytest.raises(InputError):
        one.embed([Case(case_id="x", channels={"FLAIR": np.zeros((8, 8, 8)), "T1": np.zeros((8, 8, 8))},
                        geometry=Geometry())])


def test_get_encoder_cache_keyed_by_training_data(cases, tmp_path):
    folder = tmp_path / "encoders"
    context = ctx(tmp_path, **{ENCODER_DIR_KEY: str(folder)})
    first = get_encoder(cases[:4], context=context)
    assert get_encoder(cases[:4], context=context) is first
    other = get_encoder(cases[1:5], context=context)
    assert other is not first and len(context.cache[ENCODER_CACHE_KEY]) == 2
    assert len(list(folder.glob("encoder-*.pt"))) == 2
    # a new evaluation reads the saved weights instead of training again
    fresh = ctx(tmp_path, **{ENCODER_DIR_KEY: str(folder)})
    again = get_encoder(cases[:4], context=fresh)
    assert again is not first and again.fingerprint == first.fingerprint
    np.testing.assert_allclose(again.embed(cases), first.embed(cases), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------------------------ check
def test_fidelity_check_on_small_cases(cases, tmp_path):
    check = get_check("fidelity")
    assert isinstance(check, FidelityCheck)
    context = ctx(tmp_path)
    copies = [c.replace(case_id=f"s{i}") for i, c in enumerate(cases[:4])]
    good = check.run(real_train=cases[:4], real_test=cases[4:], synthetic=copies, context=context)
    s = good.summary
    assert s["precision"] == 1.0 and s["recall"] == 1.0
    assert s["fd_synthetic_vs_train"] == pytest.approx(0.0, abs=1e-6) and s["fd_dims"] == 16 * 8
    assert s["w1_lesion_synthetic"] == pytest.approx(0.0, abs=1e-9)
    assert np.isfinite(s["fd_holdout_vs_train"]) and np.isfinite(s["ms_ssim_real"])
    assert good.figures["fidelity"].exists()
    assert {"intensity_distances", "embedding_distances", "ms_ssim", "lesion_texture"} <= set(good.tables)
    assert s["lesion_texture_within_real_range"] == 1.0  # copies of real cases: inside the real range
    # one image repeated with a flat lesion: further away, less diverse, wrong lesion intensity
    bad = [head(f"b{i}", 0, lesion_gain=0.1).replace(case_id=f"b{i}") for i in range(4)]
    worse = FidelityCheck(figures=False).run(real_train=cases[:4], real_test=cases[4:], synthetic=bad,
                                             context=context)
    w = worse.summary
    assert w["ms_ssim_synthetic"] == pytest.approx(1.0, abs=1e-5)
    assert w["ms_ssim_synthetic"] > s["ms_ssim_synthetic"]
    assert w["w1_lesion_synthetic"] > 0.3
    assert w["fd_synthetic_vs_train"] > s["fd_synthetic_vs_train"]
    # a flat, faint lesion: its contrast to the brain lies below every real case's
    contrast = [r for r in worse.tables["lesion_texture"] if r["metric"] == "contrast" and r["channel"] == "FLAIR"]
    assert contrast and not any(r["within_real_range"] for r in contrast)
    assert w["lesion_texture_within_real_range"] < 1.0
