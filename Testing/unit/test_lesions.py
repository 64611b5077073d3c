"""Unit tests of the anatomy masks and the lesion-mask synthesis on small synthetic brains and head phantoms."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import ndimage

from SyntheticImagingLib.anatomy import (
    HeadMasks,
    brain_mask,
    cormack_to_hu,
    distance_mm,
    estimate_midline_x,
    head_masks,
    head_masks_from_brain,
    physical_coordinate,
    surface_points,
)
from SyntheticImagingLib.cases import Case, Geometry, LesionKind
from SyntheticImagingLib.errors import InputError, SyntheticImagingError
from SyntheticImagingLib.lesions import (
    HEMORRHAGE_SUBTYPES,
    LesionControls,
    fit_to_count,
    make_lesion_label,
    synthesize_hemorrhage_mask,
    synthesize_tumor_mask,
    template_lesion,
)
from SyntheticImagingLib.lesions.shapes import blob, smooth_noise

ISO = Geometry((2.0, 2.0, 2.0), origin=(-47.0, -47.0, -47.0))
# Thick axial slices: 1.5 x 1.5 mm in-plane, 4 mm slices (x, y, z).
ANISO = Geometry((1.5, 1.5, 4.0), origin=(-47.25, -47.25, -46.0))
ISO_SHAPE = (48, 48, 48)
ANISO_SHAPE = (24, 64, 64)


def ellipsoid(shape: tuple[int, int, int], geometry: Geometry, radii_xyz: tuple[float, float, float],
              center_xyz: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> np.ndarray:
    """Boolean ellipsoid in physical space (radii in mm along x, y, z)."""
    r = sum(((physical_coordinate(geometry, shape, k) - center_xyz[k]) / radii_xyz[k]) ** 2 for k in range(3))
    return r <= 1.0


def iso_brain() -> np.ndarray:
    return ellipsoid(ISO_SHAPE, ISO, (36.0, 42.0, 34.0))


def aniso_brain() -> np.ndarray:
    return ellipsoid(ANISO_SHAPE, ANISO, (36.0, 42.0, 34.0))


BRAINS = {"iso": (iso_brain, ISO), "aniso": (aniso_brain, ANISO)}


def ct_phantom(shift_x: float = 0.0) -> tuple[np.ndarray, Geometry]:
    """Head CT phantom in HU centred at x = ``shift_x`` mm: air, scalp, 6 mm skull, noisy brain, two lateral
    ventricles (2 mm grid)."""
    shape = (56, 64, 56)
    geometry = Geometry((2.0, 2.0, 2.0), origin=(-55.0 + shift_x, -63.0, -55.0))
    rng = np.random.default_rng(0)
    c = (shift_x, 0.0, 0.0)
    hu = np.full(shape, -1000.0, np.float32)
    hu[ellipsoid(shape, geometry, (52, 60, 50), c)] = 40.0
    hu[ellipsoid(shape, geometry, (48, 56, 46), c)] = 900.0
    brain = ellipsoid(shape, geometry, (42, 50, 40), c)
    hu[brain] = 30.0 + rng.normal(0, 3, int(brain.sum()))
    for side in (-1, 1):
        vent = ellipsoid(shape, geometry, (6, 18, 8), (shift_x + side * 10.0, 0.0, 8.0))
        hu[vent] = 5.0 + rng.normal(0, 2, int(vent.sum()))
    return hu, geometry


@pytest.fixture(scope="module")
def phantom() -> tuple[np.ndarray, Geometry, HeadMasks]:
    hu, geometry = ct_phantom()
    return hu, geometry, head_masks(hu, geometry)


def volume_ml(mask: np.ndarray, geometry: Geometry) -> float:
    return float(np.count_nonzero(mask) * geometry.voxel_volume_ml)


def principal_lengths_mm(mask: np.ndarray, geometry: Geometry) -> np.ndarray:
    """Square roots of the eigenvalues of the voxel cloud's covariance (mm), largest first."""
    pts = np.argwhere(mask) * np.asarray(geometry.spacing_zyx)
    return np.sqrt(np.sort(np.linalg.eigvalsh(np.cov(pts.T)))[::-1])


# --- anatomy ---------------------------------------------------------------------------------------------------

def test_cormack_to_hu_formula() -> None:
    c = np.array([0.0, 900.0, 2000.0, 3100.0, 3200.0])
    # c <= 900: c - 1024; above: 900 + (c - 900) / 11 - 1024 up to e = 2200, then 1 HU per unit.
    np.testing.assert_allclose(cormack_to_hu(c), [-1024.0, -124.0, -24.0, 76.0, 176.0], atol=1e-4)
    dense = cormack_to_hu(np.linspace(0, 4000, 4001))
    assert np.all(np.diff(dense) > 0)  # invertible: strictly increasing
    assert cormack_to_hu(np.zeros((2, 3, 4))).dtype == np.float32


def test_head_masks_on_phantom(phantom) -> None:
    hu, geometry, masks = phantom
    true_brain = ellipsoid(hu.shape, geometry, (42, 50, 40))
    # Brain: inside the skull, kept ~2 mm off the bone, ventricles filled in.
    assert not (masks.brain & ~true_brain).any()
    assert 0.75 * true_brain.sum() < masks.brain.sum() <= true_brain.sum()
    assert not (masks.brain & (masks.skull | masks.air)).any()
    assert (masks.skull == (hu >= 250)).all()
    assert (masks.air == (hu < -200)).all()
    # Ventricles: found, inside the brain, both sides, central.
    assert masks.ventricles.any() and not (masks.ventricles & ~masks.brain).any()
    x = physical_coordinate(geometry, hu.shape, 0)
    assert (masks.ventricles & (x > 0)).sum() > 0.4 * masks.ventricles.sum()
    assert (masks.ventricles & (x < 0)).sum() > 0.4 * masks.ventricles.sum()
    true_vent = (hu < 15) & true_brain
    assert masks.ventricles.sum() == pytest.approx(true_vent.sum(), rel=0.3)
    # Inner table: brain voxels facing the bone.
    assert masks.inner_table.any() and not (masks.inner_table & ~masks.brain).any()
    assert distance_mm(~masks.skull, geometry)[masks.inner_table].max() <= 2.0 + 8.0 + 1e-3
    assert abs(masks.midline_x) <= 1.0


def test_head_masks_midline_follows_shift() -> None:
    hu, geometry = ct_phantom(shift_x=7.0)
    assert head_masks(hu, geometry).midline_x == pytest.approx(7.0, abs=1.0)


def test_head_masks_rejects_cormack_and_stripped(phantom) -> None:
    hu, geometry, _ = phantom
    with pytest.raises(InputError, match="Hounsfield"):
        head_masks(hu + 1024.0, geometry)  # raw / Cormack-like units
    stripped = np.where(hu > 200, 0.0, np.where(hu < -200, 0.0, hu)).astype(np.float32)
    with pytest.raises(InputError, match="no skull"):
        head_masks(stripped, geometry)
    with pytest.raises(InputError, match="3D"):
        head_masks(hu[0], geometry)


def test_brain_mask_ct_and_stripped_ct(phantom) -> None:
    hu, geometry, masks = phantom
    assert (brain_mask(hu, geometry, modality="CT") == masks.brain).all()
    true_brain = ellipsoid(hu.shape, geometry, (42, 50, 40))
    stripped = np.where(true_brain, hu, 0.0).astype(np.float32)
    got = brain_mask(stripped, geometry, modality="CT")
    assert (got == true_brain).mean() > 0.995


def test_brain_mask_mr_stripped_and_whole_head() -> None:
    rng = np.random.default_rng(1)
    brain = iso_brain()
    smooth = 200.0 + 60.0 * smooth_noise(ISO_SHAPE, ISO, 6.0, rng)
    stripped = np.where(brain, smooth, 0.0).astype(np.float32)
    got = brain_mask(stripped, ISO, modality="MR")
    assert (got == brain).mean() > 0.995
    # Whole head: bright scalp, dark skull, bright brain, noisy non-zero background.
    head = rng.normal(5.0, 2.0, ISO_SHAPE).astype(np.float32)
    head[ellipsoid(ISO_SHAPE, ISO, (46, 52, 44))] = 150.0
    head[ellipsoid(ISO_SHAPE, ISO, (42, 48, 40))] = 15.0
    head[brain] = smooth[brain]
    got = brain_mask(head, ISO, modality="MR")
    dice = 2 * (got & brain).sum() / (got.sum() + brain.sum())
    assert dice > 0.95
    # A Case: its geometry and modality are used, a stored mask wins.
    case = Case("c", {"FLAIR": stripped}, ISO)
    assert (brain_mask(case) == brain_mask(stripped, ISO, modality="MR")).all()
    stored = np.zeros(ISO_SHAPE, bool)
    stored[10:20, 10:20, 10:20] = True
    assert (brain_mask(case.replace(brain_mask=stored)) == stored).all()


def test_brain_mask_bad_inputs() -> None:
    a = np.zeros(ISO_SHAPE, np.float32)
    with pytest.raises(InputError, match="geometry"):
        brain_mask(a, modality="MR")
    with pytest.raises(InputError, match="modality"):
        brain_mask(a, ISO)
    with pytest.raises(InputError, match="unknown modality"):
        brain_mask(a, ISO, modality="PET")
    with pytest.raises(InputError, match="constant"):
        brain_mask(a, ISO, modality="MR")
    b = a.copy()
    b[0, 0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        brain_mask(b, ISO, modality="MR")


def test_midline_with_flipped_direction() -> None:
    # x index axis points to -x physically (as in RAS-stored files).
    geometry = Geometry((2.0, 2.0, 2.0), origin=(50.0, -47.0, -47.0), direction=(-1, 0, 0, 0, 1, 0, 0, 0, 1))
    brain = ellipsoid(ISO_SHAPE, geometry, (30.0, 40.0, 30.0), center_xyz=(12.0, 0.0, 0.0))
    assert estimate_midline_x(brain, geometry) == pytest.approx(12.0, abs=1.0)


def test_midline_is_remembered_by_mask_content_not_identity() -> None:
    geometry = Geometry((2.0, 2.0, 2.0), origin=(-47.0, -47.0, -47.0))
    left = ellipsoid(ISO_SHAPE, geometry, (30.0, 40.0, 30.0), center_xyz=(-6.0, 0.0, 0.0))
    first = estimate_midline_x(left, geometry)
    assert estimate_midline_x(left.copy(), geometry) == first  # same content: the remembered plane
    moved = ellipsoid(ISO_SHAPE, geometry, (30.0, 40.0, 30.0), center_xyz=(10.0, 0.0, 0.0))
    assert estimate_midline_x(moved, geometry) == pytest.approx(first + 16.0, abs=1.0)  # new content, new plane
    shifted = Geometry((2.0, 2.0, 2.0), origin=(-37.0, -47.0, -47.0))
    assert estimate_midline_x(left, shifted) == pytest.approx(first + 10.0, abs=0.01)  # geometry is in the key


# --- shape primitives ------------------------------------------------------------------------------------------

@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 400), density=st.floats(0.3, 1.0))
def test_fit_to_count_is_exact_and_connected(seed: int, n: int, density: float) -> None:
    rng = np.random.default_rng(seed)
    field = rng.standard_normal((10, 12, 9)).astype(np.float32)
    allowed = rng.random(field.shape) < density
    seed_idx = tuple(int(v) for v in np.argwhere(allowed)[0]) if allowed.any() else None
    labels, _ = ndimage.label(allowed, structure=np.ones((3, 3, 3), bool))
    room = int((labels == labels[seed_idx]).sum()) if seed_idx else 0
    if room < n:
        with pytest.raises(InputError):
            fit_to_count(field, allowed, n, seed=seed_idx)
        return
    mask = fit_to_count(field, allowed, n, seed=seed_idx)
    assert mask.sum() == n and mask[seed_idx] and not (mask & ~allowed).any()
    assert ndimage.label(mask, structure=np.ones((3, 3, 3), bool))[1] == 1


@pytest.mark.parametrize("name", sorted(BRAINS))
def test_blob_is_round_in_mm_on_any_spacing(name: str) -> None:
    make, geometry = BRAINS[name]
    brain = make()
    n = int(round(8.0 / geometry.voxel_volume_ml))
    ratios = []
    for seed in range(6):
        centre = tuple(int(v) for v in np.array(brain.shape) // 2)
        mask = blob(brain, geometry, center_zyx=centre, n_voxels=n, shape_variety=0.0, rng=np.random.default_rng(seed))
        assert mask.sum() == n
        lengths = principal_lengths_mm(mask, geometry)
        ratios.append(lengths[0] / lengths[2])
    # Smooth blobs are mildly elongated ellipsoids in mm; measured in voxels the 4 mm slices would squash them 2.7x.
    assert np.mean(ratios) < 1.8


def test_shape_variety_controls_irregularity() -> None:
    brain = iso_brain()
    n = int(round(20.0 / ISO.voxel_volume_ml))
    centre = (24, 24, 24)

    def surface_ratio(variety: float) -> float:
        vals = []
        for seed in range(5):
            m = blob(brain, ISO, center_zyx=centre, n_voxels=n, shape_variety=variety, rng=np.random.default_rng(seed))
            vals.append((m & ~ndimage.binary_erosion(m)).sum() / m.sum())
        return float(np.mean(vals))

    assert surface_ratio(1.0) > 1.1 * surface_ratio(0.0)


# --- tumour ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(BRAINS))
@pytest.mark.parametrize("volume", [0.5, 5.0, 25.0])
def test_tumor_volume_and_containment(name: str, volume: float) -> None:
    make, geometry = BRAINS[name]
    brain = make()
    mask = synthesize_tumor_mask(brain, geometry, volume_ml=volume, rng=np.random.default_rng(3))
    assert mask.dtype == np.int16 and set(np.unique(mask)) <= {0, 1}
    assert volume_ml(mask, geometry) == pytest.approx(volume, rel=0.05)
    assert not (mask.astype(bool) & ~brain).any()
    assert ndimage.label(mask > 0, structure=np.ones((3, 3, 3), bool))[1] == 1


def test_tumor_deterministic_and_seed_dependent() -> None:
    brain = iso_brain()
    a = synthesize_tumor_mask(brain, ISO, volume_ml=10, rng=np.random.default_rng(7), shape_variety=0.8)
    b = synthesize_tumor_mask(brain, ISO, volume_ml=10, rng=np.random.default_rng(7), shape_variety=0.8)
    c = synthesize_tumor_mask(brain, ISO, volume_ml=10, rng=np.random.default_rng(8), shape_variety=0.8)
    assert (a == b).all() and not (a == c).all()


def test_tumor_subregions_core_inside_edema() -> None:
    brain = iso_brain()
    mask = synthesize_tumor_mask(brain, ISO, volume_ml=20, subregions=True, rng=np.random.default_rng(4))
    assert set(np.unique(mask)) == {0, 1, 2}
    assert volume_ml(mask > 0, ISO) == pytest.approx(20.0, rel=0.05)
    core = mask == 1
    # The core is wrapped in edema: almost none of its outer neighbours are outside the tumour.
    ring = ndimage.binary_dilation(core, structure=np.ones((3, 3, 3), bool)) & ~core
    assert (mask[ring] == 2).mean() > 0.9
    assert 0.2 <= core.sum() / (mask > 0).sum() <= 0.55


def test_tumor_location_and_side() -> None:
    brain = iso_brain()
    target = (15.0, -10.0, 5.0)
    mask = synthesize_tumor_mask(brain, ISO, volume_ml=4, center_xyz=target, rng=np.random.default_rng(0),
                                 shape_variety=0.2)
    centroid = ISO.index_to_physical(np.argwhere(mask).mean(axis=0))
    assert np.linalg.norm(centroid - np.asarray(target)) < 8.0
    x = physical_coordinate(ISO, ISO_SHAPE, 0)
    for seed in range(4):
        left = synthesize_tumor_mask(brain, ISO, volume_ml=3, side="left", rng=np.random.default_rng(seed))
        right = synthesize_tumor_mask(brain, ISO, volume_ml=3, side="right", rng=np.random.default_rng(seed))
        assert x[left > 0].mean() > 0 > x[right > 0].mean()


def test_tumor_bad_inputs() -> None:
    brain = iso_brain()
    rng = np.random.default_rng(0)
    with pytest.raises(InputError, match=r"requested tumour volume 900 ml .* at most \d"):
        synthesize_tumor_mask(brain, ISO, volume_ml=900, rng=rng)
    with pytest.raises(InputError, match="smaller than one voxel"):
        synthesize_tumor_mask(brain, ISO, volume_ml=0.001, rng=rng)
    with pytest.raises(InputError, match="positive"):
        synthesize_tumor_mask(brain, ISO, volume_ml=-3, rng=rng)
    with pytest.raises(InputError, match="empty"):
        synthesize_tumor_mask(np.zeros(ISO_SHAPE, bool), ISO, volume_ml=3, rng=rng)
    with pytest.raises(InputError, match="3D"):
        synthesize_tumor_mask(brain[0], ISO, volume_ml=3, rng=rng)
    with pytest.raises(InputError, match="shape_variety"):
        synthesize_tumor_mask(brain, ISO, volume_ml=3, shape_variety=2.0, rng=rng)
    with pytest.raises(InputError, match="outside the image"):
        synthesize_tumor_mask(brain, ISO, volume_ml=3, center_xyz=(500.0, 0.0, 0.0), rng=rng)
    with pytest.raises(InputError, match="shape"):
        synthesize_tumor_mask(brain, ISO, volume_ml=3, rng=rng, exclude=np.zeros((4, 4, 4), bool))
    # Every error is the project's: problem, where, fix.
    try:
        synthesize_tumor_mask(brain, ISO, volume_ml=900, rng=rng)
    except SyntheticImagingError as err:
        assert err.where and err.fix


# --- hemorrhage ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("subtype", [s for s in HEMORRHAGE_SUBTYPES if s != "intraventricular"])
@pytest.mark.parametrize("name", sorted(BRAINS))
def test_hemorrhage_on_brain_only(subtype: str, name: str) -> None:
    make, geometry = BRAINS[name]
    brain = make()
    for volume, seed in ((2.0, 0), (12.0, 1)):
        mask = synthesize_hemorrhage_mask(brain, geometry, subtype=subtype, volume_ml=volume,
                                          rng=np.random.default_rng(seed))
        assert mask.dtype == bool
        assert volume_ml(mask, geometry) == pytest.approx(volume, rel=0.05)
        assert not (mask & ~brain).any()


@pytest.mark.parametrize("subtype", HEMORRHAGE_SUBTYPES)
def test_hemorrhage_on_head_phantom_avoids_air_and_bone(phantom, subtype: str) -> None:
    hu, geometry, masks = phantom
    for seed in range(3):
        volume = 3.0 if subtype == "intraventricular" else 10.0
        mask = synthesize_hemorrhage_mask(masks, geometry, subtype=subtype, volume_ml=volume,
                                          shape_variety=0.7, rng=np.random.default_rng(seed))
        assert volume_ml(mask, geometry) == pytest.approx(volume, rel=0.05)
        assert not (mask & (masks.skull | masks.air)).any()
        assert not (mask & ~masks.brain).any()
        if subtype == "intraventricular":
            assert not (mask & ~masks.ventricles).any()
        if subtype == "intraparenchymal":
            assert not (mask & masks.ventricles).any()


def _thickness_and_extent(mask: np.ndarray, brain: np.ndarray, geometry: Geometry):
    """Depth below the brain surface and along-surface distance from the lesion's deepest point, per voxel."""
    box, depth, nearest = surface_points(brain, geometry)
    sub = mask[box]
    d = depth[sub]
    pts = np.stack([nearest[k][sub] for k in range(3)], axis=1) * np.asarray(geometry.spacing_zyx)
    s = np.linalg.norm(pts - pts[int(np.argmax(d))], axis=1)
    return d, s


def test_subdural_is_a_thin_crescent_on_one_side(phantom) -> None:
    _, geometry, masks = phantom
    x = physical_coordinate(geometry, masks.shape, 0)
    for seed in range(4):
        mask = synthesize_hemorrhage_mask(masks, geometry, subtype="subdural", volume_ml=12.0, shape_variety=0.3,
                                          rng=np.random.default_rng(seed))
        assert (mask & masks.inner_table).sum() > 0.3 * mask.sum()  # lies along the inner table
        d, s = _thickness_and_extent(mask, masks.brain, geometry)
        thickness = d.max() - d.min() + geometry.spacing[0]
        extent = 2.0 * s.max()
        assert thickness < 0.3 * extent
        xs = x[mask] - masks.midline_x
        assert (xs > 0).all() or (xs < 0).all()  # never crosses the midline


def test_epidural_is_biconvex_and_thicker_than_subdural(phantom) -> None:
    _, geometry, masks = phantom
    epi_ratio, sub_ratio = [], []
    for seed in range(4):
        epi = synthesize_hemorrhage_mask(masks, geometry, subtype="epidural", volume_ml=12.0, shape_variety=0.0,
                                         rng=np.random.default_rng(seed))
        assert (epi & masks.inner_table).any()
        d, s = _thickness_and_extent(epi, masks.brain, geometry)
        # Biconvex lens: thickest in the middle, thin at the rim.
        centre = d[s <= 0.2 * s.max()].max()
        rim = d[s >= 0.8 * s.max()].max()
        assert centre >= 1.8 * rim
        epi_ratio.append((d.max() - d.min()) / s.max())
        sub = synthesize_hemorrhage_mask(masks, geometry, subtype="subdural", volume_ml=12.0, shape_variety=0.0,
                                         rng=np.random.default_rng(seed))
        d, s = _thickness_and_extent(sub, masks.brain, geometry)
        sub_ratio.append((d.max() - d.min()) / s.max())
        # Crescent: nearly even thickness along the skull, tapering only at its very edge.
        assert d[s <= 0.2 * s.max()].max() <= 1.5 * d[s >= 0.8 * s.max()].max()
    assert np.mean(epi_ratio) > 2.0 * np.mean(sub_ratio)


def test_intraventricular_fills_the_dependent_part(phantom) -> None:
    _, geometry, masks = phantom
    y = physical_coordinate(geometry, masks.shape, 1)
    mask = synthesize_hemorrhage_mask(masks, geometry, subtype="intraventricular", volume_ml=2.0, shape_variety=0.0,
                                      rng=np.random.default_rng(0))
    assert not (mask & ~masks.ventricles).any()
    # A fluid level: every blood voxel is at least as posterior (+y) as every free ventricle voxel.
    assert y[mask].min() >= y[masks.ventricles & ~mask].max() - 1e-3
    assert y[mask].mean() > y[masks.ventricles].mean() + 10.0
    left = synthesize_hemorrhage_mask(masks, geometry, subtype="intraventricular", volume_ml=1.0, side="left",
                                      rng=np.random.default_rng(0))
    assert (physical_coordinate(geometry, masks.shape, 0)[left] > masks.midline_x).all()


def test_intraventricular_needs_ventricles() -> None:
    with pytest.raises(InputError, match="ventricles"):
        synthesize_hemorrhage_mask(iso_brain(), ISO, subtype="intraventricular", volume_ml=2,
                                   rng=np.random.default_rng(0))


def test_intraventricular_too_large(phantom) -> None:
    _, geometry, masks = phantom
    with pytest.raises(InputError, match=r"requested intraventricular hemorrhage volume 80 ml exceeds"):
        synthesize_hemorrhage_mask(masks, geometry, subtype="intraventricular", volume_ml=80,
                                   rng=np.random.default_rng(0))


def test_subarachnoid_is_thin() -> None:
    brain = iso_brain()
    for seed in range(3):
        sah = synthesize_hemorrhage_mask(brain, ISO, subtype="subarachnoid", volume_ml=6.0,
                                         rng=np.random.default_rng(seed))
        ipa = synthesize_hemorrhage_mask(brain, ISO, subtype="intraparenchymal", volume_ml=6.0,
                                         rng=np.random.default_rng(seed))
        # Sheets: almost nothing survives one erosion; a blob of the same volume keeps much of itself.
        assert ndimage.binary_erosion(sah).sum() < 0.15 * sah.sum()
        assert ndimage.binary_erosion(ipa).sum() > 0.3 * ipa.sum()


def test_hemorrhage_side_deterministic_and_errors() -> None:
    brain = iso_brain()
    x = physical_coordinate(ISO, ISO_SHAPE, 0)
    midline = estimate_midline_x(brain, ISO)
    for subtype in ("intraparenchymal", "subdural", "epidural", "subarachnoid"):
        left = synthesize_hemorrhage_mask(brain, ISO, subtype=subtype, volume_ml=3, side="left",
                                          rng=np.random.default_rng(1))
        assert (x[left] > midline).all(), subtype
    a = synthesize_hemorrhage_mask(brain, ISO, subtype="subdural", volume_ml=5, rng=np.random.default_rng(9))
    b = synthesize_hemorrhage_mask(brain, ISO, subtype="subdural", volume_ml=5, rng=np.random.default_rng(9))
    assert (a == b).all()
    rng = np.random.default_rng(0)
    with pytest.raises(InputError, match="unknown hemorrhage subtype"):
        synthesize_hemorrhage_mask(brain, ISO, subtype="chronic", volume_ml=3, rng=rng)
    with pytest.raises(InputError, match="side"):
        synthesize_hemorrhage_mask(brain, ISO, subtype="subdural", volume_ml=3, side="up", rng=rng)
    with pytest.raises(InputError, match=r"requested intraparenchymal hemorrhage volume 500 ml is too large"):
        synthesize_hemorrhage_mask(brain, ISO, subtype="intraparenchymal", volume_ml=500, rng=rng)
    with pytest.raises(InputError, match="empty"):
        synthesize_hemorrhage_mask(np.zeros(ISO_SHAPE, bool), ISO, subtype="subdural", volume_ml=3, rng=rng)


def test_head_masks_from_brain_shell() -> None:
    brain = iso_brain()
    masks = head_masks_from_brain(brain, ISO)
    assert not masks.skull.any() and not masks.ventricles.any()
    assert (masks.inner_table == (brain & ~ndimage.binary_erosion(brain))).mean() > 0.99
    assert abs(masks.midline_x) < 1.0
    # replace() gives a fresh derived-field cache.
    smaller = dataclasses.replace(masks, brain=ndimage.binary_erosion(brain))
    assert smaller.brain_depth(ISO).max() < masks.brain_depth(ISO).max()


# --- templates -------------------------------------------------------------------------------------------------

def _template() -> tuple[np.ndarray, Geometry]:
    """An elongated, bent real-looking template on a 1 mm grid with another origin."""
    g = Geometry((1.0, 1.0, 1.0), origin=(100.0, 100.0, 100.0))
    shape = (30, 40, 60)
    m = ellipsoid(shape, g, (22.0, 9.0, 8.0), center_xyz=(130.0, 120.0, 115.0))
    m |= ellipsoid(shape, g, (7.0, 10.0, 7.0), center_xyz=(148.0, 128.0, 115.0))
    return m.astype(np.uint8), g


@pytest.mark.parametrize("name", sorted(BRAINS))
def test_template_lesion_volume_place_and_shape(name: str) -> None:
    make, geometry = BRAINS[name]
    brain = make()
    tmask, tgeom = _template()
    t_lengths = principal_lengths_mm(tmask > 0, tgeom)
    for seed, volume in ((0, 3.0), (1, 12.0)):
        m = template_lesion(tmask, tgeom, brain, geometry, volume_ml=volume, elastic_mm=0.0,
                            rng=np.random.default_rng(seed))
        assert volume_ml(m, geometry) == pytest.approx(volume, rel=0.05)
        assert not (m & ~brain).any()
        # Rotation + uniform scale keep the template's proportions (not a sphere).
        lengths = principal_lengths_mm(m, geometry)
        np.testing.assert_allclose(lengths / lengths[0], t_lengths / t_lengths[0], atol=0.15)
    a = template_lesion(tmask, tgeom, brain, geometry, volume_ml=5, rng=np.random.default_rng(3))
    b = template_lesion(tmask, tgeom, brain, geometry, volume_ml=5, rng=np.random.default_rng(3))
    assert (a == b).all()
    target = (10.0, 5.0, -5.0)
    m = template_lesion(tmask, tgeom, brain, geometry, volume_ml=3, center_xyz=target, rng=np.random.default_rng(0))
    assert np.linalg.norm(geometry.index_to_physical(np.argwhere(m).mean(axis=0)) - target) < 8.0


def test_template_lesion_errors() -> None:
    brain = iso_brain()
    tmask, tgeom = _template()
    rng = np.random.default_rng(0)
    with pytest.raises(InputError, match="template lesion mask is empty"):
        template_lesion(np.zeros_like(tmask), tgeom, brain, ISO, volume_ml=3, rng=rng)
    with pytest.raises(InputError, match="too large"):
        template_lesion(tmask, tgeom, brain, ISO, volume_ml=1000, rng=rng)
    with pytest.raises(InputError, match="elastic_mm"):
        template_lesion(tmask, tgeom, brain, ISO, volume_ml=3, rng=rng, elastic_mm=-1)


# --- composition -----------------------------------------------------------------------------------------------

def test_make_lesion_label_tumors() -> None:
    brain = iso_brain()
    controls = LesionControls(kind="tumor", count=3, volume_ml=(2.0, 6.0), shape_variety=0.6)
    label, table, infos = make_lesion_label(brain, ISO, controls, rng=np.random.default_rng(0))
    assert table.names == {1: "tumor"} and label.dtype == np.int16
    assert ndimage.label(label > 0, structure=np.ones((3, 3, 3), bool))[1] == 3  # separate, not touching
    assert not (label.astype(bool) & ~brain).any()
    assert len(infos) == 3
    for info in infos:
        assert 2.0 <= info["volume_ml_requested"] <= 6.0
        assert info["volume_ml_achieved"] == pytest.approx(info["volume_ml_requested"], rel=0.05)
        assert info["subtype"] == "tumor" and info["source"] == "shape" and len(info["center_xyz"]) == 3
    assert sum(i["volume_ml_achieved"] for i in infos) == pytest.approx(volume_ml(label, ISO))
    again, _, _ = make_lesion_label(brain, ISO, controls, rng=np.random.default_rng(0))
    assert (again == label).all()


def test_make_lesion_label_tumor_subregions_templates_and_side() -> None:
    brain = iso_brain()
    controls = LesionControls(kind="tumor", count=2, volume_ml=4.0, subregions=True, side="left")
    label, table, infos = make_lesion_label(brain, ISO, controls, rng=np.random.default_rng(1),
                                            templates=[_template()])
    assert table.names == {1: "tumor core", 2: "edema"}
    assert set(np.unique(label)) == {0, 1, 2}
    assert all(i["source"] == "template 0" and i["side"] == "left" for i in infos)
    no_templates = dataclasses.replace(controls, use_templates=False)
    _, _, infos = make_lesion_label(brain, ISO, no_templates, rng=np.random.default_rng(1), templates=[_template()])
    assert all(i["source"] == "shape" for i in infos)


def test_make_lesion_label_hemorrhage_multiclass(phantom) -> None:
    _, geometry, masks = phantom
    controls = LesionControls(kind=LesionKind.HEMORRHAGE, count=4, volume_ml=(2.0, 4.0), subregions=True,
                              subtypes=("intraparenchymal", "subdural", "intraventricular"))
    label, table, infos = make_lesion_label(masks, geometry, controls, rng=np.random.default_rng(2))
    # Fixed values per subtype, whatever subset and order is asked for.
    assert table.names == {1: "intraparenchymal hemorrhage", 4: "subdural hemorrhage",
                           2: "intraventricular hemorrhage", 6: "perihematomal edema"}
    assert not (label.astype(bool) & (masks.skull | masks.air | ~masks.brain)).any()
    for info in infos:
        value = info["label_value"]
        assert table.names[value] == f"{info['subtype']} hemorrhage"
        assert info["volume_ml_achieved"] == pytest.approx(info["volume_ml_requested"], rel=0.05)
        if info["subtype"] == "intraparenchymal":
            assert info["edema_ml"] > 0
    assert set(np.unique(label)) - {0} <= set(table.values)
    assert {i["subtype"] for i in infos} <= set(controls.subtypes)


def test_make_lesion_label_location_count_zero_and_errors() -> None:
    brain = iso_brain()
    target = (-12.0, 8.0, 4.0)
    controls = LesionControls(kind="hemorrhage", count=1, volume_ml=2.0, location=target, location_jitter_mm=3.0,
                              subtypes=("intraparenchymal",))
    label, _, infos = make_lesion_label(brain, ISO, controls, rng=np.random.default_rng(0))
    assert np.linalg.norm(np.asarray(infos[0]["center_xyz"]) - target) < 10.0
    empty, table, infos = make_lesion_label(brain, ISO, LesionControls(count=0), rng=np.random.default_rng(0))
    assert not empty.any() and infos == [] and table.names == {1: "tumor"}
    too_many = LesionControls(kind="tumor", count=3, volume_ml=60.0)
    with pytest.raises(InputError, match="lesion 3 of 3|lesion 2 of 3"):
        make_lesion_label(brain, ISO, too_many, rng=np.random.default_rng(0))
    with pytest.raises(InputError, match="ventricles"):
        make_lesion_label(brain, ISO, LesionControls(kind="hemorrhage", volume_ml=2.0,
                                                     subtypes=("intraventricular",)), rng=np.random.default_rng(0))
    with pytest.raises(InputError, match="Geometry"):
        make_lesion_label(brain, ISO, LesionControls(volume_ml=2.0), rng=np.random.default_rng(0),
                          templates=[np.zeros(3)])
