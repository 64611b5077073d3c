"""CT appearance model: scanner noise level and texture, no double noise, gravity-dependent fluid levels, swirl
sign, reproducibility, and the within-bleed spread on the real head-CT template (was ~2.4 HU, now > 10 HU)."""

from __future__ import annotations

import numpy as np
import pytest

from SyntheticImagingLib.api import sample_ct_head
from SyntheticImagingLib.cases import Geometry
from SyntheticImagingLib.checks.lesion_texture import mean_lesion_spread, texture_stats
from SyntheticImagingLib.generators import create_generator
from SyntheticImagingLib.generators.ct_appearance import CTAppearance, axial_axis, noise_sigma_for, scanner_noise
from SyntheticImagingLib.lesions.controls import LesionControls

BLEED = {1: "intraparenchymal hemorrhage"}


def _lag_corr(a: np.ndarray, axis: int, lag: int = 1) -> float:
    a = np.moveaxis(a, axis, 0)
    return float(np.corrcoef(a[:-lag].ravel(), a[lag:].ravel())[0, 1])


def _finish_flat(spacing, *, sigma=0.0, seed=0):
    geometry = Geometry(spacing=spacing)
    shape = (10, 64, 64)
    image = np.full(shape, 30.0, np.float32) + np.random.default_rng(99).normal(0, sigma, shape).astype(np.float32)
    app = CTAppearance(np.random.default_rng(seed), sigma_at_5mm=4.0)
    brain = np.ones(shape, bool)
    out = app.finish_channels({"CT": image}, brain, np.zeros(shape, bool), geometry)["CT"]
    return image, out, app


@pytest.mark.parametrize("thickness", [5.0, 1.0])
def test_noise_sigma_follows_slice_thickness(thickness):
    _, out, app = _finish_flat((0.5, 0.5, thickness))
    expected = 4.0 * np.sqrt(5.0 / thickness)  # 4 HU at 5 mm, 8.9 HU at 1 mm
    assert noise_sigma_for(thickness, 4.0) == pytest.approx(expected)
    assert float(out.std()) == pytest.approx(expected, rel=0.05)
    assert float(np.mean(out)) == pytest.approx(30.0, abs=0.5)
    assert app.record["channels"]["CT"]["added_noise_hu"] == pytest.approx(expected, rel=0.01)


def test_noise_is_correlated_like_fbp():
    g = Geometry(spacing=(0.5, 0.5, 5.0))
    noise = scanner_noise((8, 96, 96), g, 4.0, np.random.default_rng(1), nps_peak_per_mm=0.28)
    # in-plane: correlated at 0.5 mm, about uncorrelated at 1.5 mm (correlation length ~0.5-1 mm)
    assert 0.3 < _lag_corr(noise, 2) < 0.8 and 0.3 < _lag_corr(noise, 1) < 0.8
    assert abs(_lag_corr(noise, 2, 3)) < 0.15
    # contiguous slices: Gaussian slice profile with FWHM = thickness
    assert 0.15 < _lag_corr(noise, 0) < 0.45
    white = np.random.default_rng(1).standard_normal((8, 96, 96))
    assert abs(_lag_corr(white, 2)) < 0.05


def test_slice_axis_comes_from_the_geometry():
    assert axial_axis(Geometry()) == 0
    coronal_stack = Geometry(direction=(1, 0, 0, 0, 0, 1, 0, 1, 0))  # index y runs along the patient's z
    assert axial_axis(coronal_stack) == 1


def test_no_noise_added_to_an_already_noisy_background():
    image, out, app = _finish_flat((0.5, 0.5, 5.0), sigma=6.0)
    assert np.array_equal(out, image)
    entry = app.record["channels"]["CT"]
    assert entry["added_noise_hu"] == 0.0 and entry["background_noise_hu"] > 4.0


def _ball(shape=(24, 24, 24), radius=8.0):
    zz, yy, xx = np.indices(shape)
    c = (np.asarray(shape) - 1) / 2
    return (zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2 <= radius ** 2


@pytest.mark.parametrize("y_direction", [1.0, -1.0])
def test_fluid_level_is_horizontal_and_dependent_in_physical_space(y_direction):
    """Supine patient: the cells settle posterior (+y in LPS), whichever way the array's y axis runs."""
    geometry = Geometry(spacing=(1.0, 1.0, 1.0), direction=(1, 0, 0, 0, y_direction, 0, 0, 0, 1))
    mask = _ball()
    label = mask.astype(np.int16)
    target = np.where(mask, 40.0, 30.0).astype(np.float32)
    app = CTAppearance(np.random.default_rng(5), age="subacute", fluid_level_probability=1.0)
    out = app.clot_target(target, mask, label, BLEED, geometry, 30.0)
    level = app.record["lesions"][0]["fluid_level"]
    mid = 0.5 * (level["sediment_hu"] + level["serum_hu"])
    y_mm = geometry.index_to_physical(np.argwhere(mask))[:, 1]
    dense = out[mask] > mid
    assert y_mm[dense].mean() > y_mm[~dense].mean() + 3.0  # the dense layer is posterior
    # one horizontal level: every dense voxel lies behind (posterior to) every light one, up to the 1 mm interface
    assert y_mm[dense].min() >= y_mm[~dense].max() - 1.0
    assert out[mask][dense].mean() - out[mask][~dense].mean() > 20.0
    assert np.array_equal(out[~mask], target[~mask])


def test_swirl_sign_lowers_part_of_the_clot():
    geometry = Geometry(spacing=(1.0, 1.0, 1.0))
    mask = _ball()
    label = mask.astype(np.int16)
    target = np.where(mask, 75.0, 30.0).astype(np.float32)
    runs = {}
    for p in (0.0, 1.0):
        app = CTAppearance(np.random.default_rng(7), swirl_probability=p, fluid_level_probability=0.0)
        runs[p] = (app.clot_target(target, mask, label, BLEED, geometry, 30.0)[mask], app.record["lesions"][0])
    plain, swirled = runs[0.0][0], runs[1.0][0]
    assert "swirl" in runs[1.0][1] and "swirl" not in runs[0.0][1]
    assert (plain < 50.0).mean() == 0.0  # hyperdense clot: texture and retraction stay well above brain
    assert 0.03 < (swirled < 45.0).mean() < 0.4  # iso/hypodense swirls in part of it
    # retraction: the clot core is denser than its rim
    core = _ball(radius=3.0)[mask]
    assert plain[core].mean() > plain[~_ball(radius=6.0)[mask]].mean() + 2.0


def test_same_seed_same_appearance():
    geometry = Geometry(spacing=(2.0, 2.0, 2.0))
    mask = _ball((16, 16, 16), 5.0)
    image = np.where(mask, 70.0, 30.0).astype(np.float32)

    def run(seed):
        app = CTAppearance(np.random.default_rng(seed))
        t = app.clot_target(image, mask, mask.astype(np.int16), BLEED, geometry, 30.0)
        return app.finish_channels({"CT": t}, np.ones(mask.shape, bool), mask, geometry)["CT"]

    assert np.array_equal(run(3), run(3))
    assert not np.array_equal(run(3), run(4))


@pytest.fixture(scope="module")
def template_cases():
    """Acute bleeds inserted into the real head-CT template (bundled 2 mm sample), model on and off."""
    controls = LesionControls(kind="hemorrhage", volume_ml=(15.0, 30.0), count=1, subtypes=("intraparenchymal",),
                              use_templates=False)
    out = {}
    for on in (True, False):
        gen = create_generator("lesion-insertion", task="head-hemorrhage-ct", ct_appearance=on, mass_effect=0.0)
        gen.fit([sample_ct_head()])
        out[on] = list(gen.synthesize(2, seed=4, controls=controls))
    return out


def test_within_bleed_spread_on_the_real_template(template_cases):
    before = mean_lesion_spread(template_cases[False])
    after = mean_lesion_spread(template_cases[True])
    assert before["lesion_spread_5_95"] < 5.0  # uniform blood on an average of many heads
    assert 10.0 < after["lesion_spread_5_95"] < 60.0
    assert after["brain_sd"] > before["brain_sd"]
    for case in template_cases[True]:
        stats = texture_stats(case)
        for s in stats["lesions"].values():
            assert s["contrast"] > 10.0  # acute blood stays hyperdense to brain
        entry = case.metadata["ct_appearance"]["channels"]["CT"]
        assert entry["background_noise_hu"] < 1.0 and entry["added_noise_hu"] > 4.0  # 2 mm slices: ~5-8 HU
    # the label and placement do not depend on the appearance model (its own random stream)
    assert np.array_equal(template_cases[True][0].label, template_cases[False][0].label)


def test_generator_is_reproducible(template_cases):
    gen = create_generator("lesion-insertion", task="head-hemorrhage-ct", mass_effect=0.0)
    gen.fit([sample_ct_head()])
    controls = LesionControls(kind="hemorrhage", volume_ml=(15.0, 30.0), count=1, subtypes=("intraparenchymal",),
                              use_templates=False)
    again = next(gen.synthesize(1, seed=4, controls=controls))
    assert np.array_equal(again.channels["CT"], template_cases[True][0].channels["CT"])


def test_grey_white_contrast_added_only_where_missing():
    """A noise-free background with 3 HU grey/white contrast gets 8-12 HU; the template (about 10 HU) keeps its."""
    geometry = Geometry(spacing=(1.0, 1.0, 5.0))
    image = np.full((8, 48, 48), 28.0, np.float32)
    image[:, :, 24:] = 31.0  # "grey matter" half
    app = CTAppearance(np.random.default_rng(2), sigma_at_5mm=4.0)
    out = app.finish_channels({"CT": image}, np.ones(image.shape, bool), np.zeros(image.shape, bool), geometry)
    entry = app.record["channels"]["CT"]
    assert entry["gm_wm_contrast_hu"] < 5.0 and entry["gm_wm_contrast_gain"] > 2.0
    inner = slice(4, 20), slice(28, 44)
    assert out["CT"][:, inner[0], inner[1]].mean() - out["CT"][:, inner[0], 4:20].mean() > 7.0
