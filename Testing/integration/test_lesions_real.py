"""Lesion-mask synthesis on real data: BraTS 2018 brains (tumours, real masks as templates) and the real head CT
template with skull (anatomy masks, all hemorrhage subtypes).

The hemorrhage statistics tests run on the bundled head-CT template (``sample_ct_head()``, 2 mm): 20 random cases
per subtype, each checked against the ranges documented in :mod:`SyntheticImagingLib.lesions.hemorrhage`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage
from scipy.spatial import ConvexHull

import SyntheticImagingLib.lesions.hemorrhage as hemorrhage
from SyntheticImagingLib.anatomy import (
    FAT_AIR_HU,
    brain_mask,
    cormack_to_hu,
    distance_mm,
    head_masks,
    physical_coordinate,
)
from SyntheticImagingLib.api import sample_ct_head
from SyntheticImagingLib.cases import Geometry, LesionKind
from SyntheticImagingLib.io.images import from_sitk, read_image, to_sitk
from SyntheticImagingLib.lesions import (
    HEMORRHAGE_SUBTYPES,
    LesionControls,
    make_lesion_label,
    synthesize_hemorrhage_mask,
    synthesize_tumor_mask,
    template_lesion,
)

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
BRATS = DATA / "brats2018"
CT = DATA / "ct_head_templates"
FULL = np.ones((3, 3, 3), bool)


def _need(path: Path) -> None:
    if not path.exists():
        pytest.skip(f"real data not found at {path}")


def _resample(image: sitk.Image, spacing: float, *, label: bool) -> sitk.Image:
    size = [int(round(n * s / spacing)) for n, s in zip(image.GetSize(), image.GetSpacing())]
    interpolator = sitk.sitkNearestNeighbor if label else sitk.sitkLinear
    return sitk.Resample(image, size, sitk.Transform(), interpolator, image.GetOrigin(), (spacing,) * 3,
                         image.GetDirection(), 0.0, image.GetPixelID())


@pytest.fixture(scope="module")
def brats() -> list[dict]:
    """Three BraTS cases at 2 mm: FLAIR, whole-tumour mask and the derived brain mask."""
    _need(BRATS)
    cases = []
    for i in range(3):
        flair, geometry = from_sitk(_resample(sitk.ReadImage(str(BRATS / f"case_{i}" / "FLAIR.nii.gz")), 2.0,
                                              label=False))
        gt, _ = from_sitk(_resample(sitk.ReadImage(str(BRATS / f"case_{i}" / "GT_W.nii.gz")), 2.0, label=True))
        cases.append({"flair": flair, "gt": gt > 0, "geometry": geometry,
                      "brain": brain_mask(flair, geometry, modality="MR")})
    return cases


@pytest.fixture(scope="module")
def head_ct() -> tuple[np.ndarray, Geometry, object]:
    _need(CT)
    cormack, geometry = read_image(CT / "scct_cormack.nii.gz")
    hu = cormack_to_hu(cormack)
    return hu, geometry, head_masks(hu, geometry)


def test_brats_brain_masks_hold_the_tumours(brats) -> None:
    for case in brats:
        ml = case["brain"].sum() * case["geometry"].voxel_volume_ml
        assert 1000 < ml < 2000
        # The real tumour lies inside the derived brain mask.
        assert (case["gt"] & case["brain"]).sum() >= 0.99 * case["gt"].sum()


@pytest.mark.parametrize("volume", [10.0, 30.0, 60.0])
def test_tumor_masks_on_real_brains(brats, volume: float) -> None:
    for i, case in enumerate(brats):
        g = case["geometry"]
        mask = synthesize_tumor_mask(case["brain"], g, volume_ml=volume, subregions=True,
                                     rng=np.random.default_rng(100 * i + int(volume)))
        assert (mask > 0).sum() * g.voxel_volume_ml == pytest.approx(volume, rel=0.15)
        assert not ((mask > 0) & ~case["brain"]).any()
        assert set(np.unique(mask)) == {0, 1, 2}


def test_real_tumour_masks_as_templates(brats) -> None:
    # Full-resolution (1 mm) real masks as templates for 2 mm targets: the mapping is physical.
    templates = [read_image(BRATS / f"case_{i}" / "GT_W.nii.gz") for i in (3, 4)]
    for i, case in enumerate(brats):
        g = case["geometry"]
        for j, volume in enumerate((10.0, 30.0, 60.0)):
            t_mask, t_geometry = templates[(i + j) % 2]
            mask = template_lesion(t_mask, t_geometry, case["brain"], g, volume_ml=volume,
                                   rng=np.random.default_rng(10 * i + j))
            assert mask.sum() * g.voxel_volume_ml == pytest.approx(volume, rel=0.15)
            assert not (mask & ~case["brain"]).any()
    # And through the composition, with the 2 mm real masks of the other cases as templates.
    case = brats[0]
    controls = LesionControls(kind="tumor", count=2, volume_ml=(10.0, 30.0), subregions=True)
    label, table, infos = make_lesion_label(case["brain"], case["geometry"], controls, rng=np.random.default_rng(0),
                                            templates=[(c["gt"].astype(np.uint8), c["geometry"]) for c in brats[1:]])
    assert table.names == {1: "tumor core", 2: "edema"}
    assert all(info["source"].startswith("template") for info in infos)
    for info in infos:
        assert info["volume_ml_achieved"] == pytest.approx(info["volume_ml_requested"], rel=0.15)
    assert not ((label > 0) & ~case["brain"]).any()


def test_head_masks_on_real_ct_template(head_ct) -> None:
    hu, geometry, masks = head_ct
    ml = geometry.voxel_volume_ml
    brain_ml = masks.brain.sum() * ml
    # Intracranial soft tissue of this (large, MNI-sized) template: its own 1 mm brain mask holds 1.92 l.
    assert 1400 < brain_ml < 2000
    reference = sitk.Resample(sitk.ReadImage(str(CT / "scct_unsmooth_SS_0.01_Mask.nii.gz")), to_sitk(hu, geometry),
                              sitk.Transform(), sitk.sitkLinear, 0.0)
    reference = sitk.GetArrayFromImage(reference) > 0.5
    dice = 2 * (reference & masks.brain).sum() / (reference.sum() + masks.brain.sum())
    assert dice > 0.9
    assert masks.skull.sum() * ml > 150 and masks.air.sum() * ml > 500
    assert not (masks.brain & (masks.skull | masks.air)).any()
    # Ventricles: non-empty, inside the brain, bilateral, central.
    vent = masks.ventricles
    assert 10 < vent.sum() * ml < 120 and not (vent & ~masks.brain).any()
    x = physical_coordinate(geometry, hu.shape, 0) - masks.midline_x
    assert (vent & (x > 5)).sum() > 0.3 * vent.sum() and (vent & (x < -5)).sum() > 0.3 * vent.sum()
    brain_centre = geometry.index_to_physical(np.argwhere(masks.brain).mean(axis=0))
    vent_centre = geometry.index_to_physical(np.argwhere(vent).mean(axis=0))
    assert abs(vent_centre[0] - masks.midline_x) < 5.0
    assert np.all(np.abs(vent_centre - brain_centre)[1:] < 30.0)
    assert abs(masks.midline_x) < 3.0  # the template is symmetric about x = 0
    assert masks.inner_table.any() and not (masks.inner_table & ~masks.brain).any()


@pytest.mark.parametrize("subtype", HEMORRHAGE_SUBTYPES)
def test_hemorrhages_on_real_ct_avoid_air_and_bone(head_ct, subtype: str) -> None:
    hu, geometry, masks = head_ct
    rng = np.random.default_rng(HEMORRHAGE_SUBTYPES.index(subtype))
    low, high = (2.0, 10.0) if subtype == "intraventricular" else (5.0, 30.0)
    for _ in range(20):
        volume = float(rng.uniform(low, high))
        mask = synthesize_hemorrhage_mask(masks, geometry, subtype=subtype, volume_ml=volume,
                                          shape_variety=float(rng.uniform()), rng=rng)
        assert mask.sum() * geometry.voxel_volume_ml == pytest.approx(volume, rel=0.05)
        assert not (mask & (masks.skull | masks.air)).any()
        assert not (mask & ~masks.brain).any()
        # The voxels themselves read as tissue, not bone or air, on the real CT.
        assert hu[mask].min() > -100 and hu[mask].max() < 250
        if subtype == "intraventricular":
            assert not (mask & ~masks.ventricles).any()
        if subtype in ("subdural", "epidural"):
            assert (mask & masks.inner_table).any()


def test_multiclass_hemorrhage_label_on_real_ct(head_ct) -> None:
    _, geometry, masks = head_ct
    controls = LesionControls(kind=LesionKind.HEMORRHAGE, count=3, volume_ml=(5.0, 20.0),
                              subtypes=HEMORRHAGE_SUBTYPES, side="left")
    label, table, infos = make_lesion_label(masks, geometry, controls, rng=np.random.default_rng(5))
    assert len(table.values) == len(HEMORRHAGE_SUBTYPES)
    assert not ((label > 0) & (masks.skull | masks.air)).any()
    for info in infos:
        assert info["volume_ml_achieved"] == pytest.approx(info["volume_ml_requested"], rel=0.05)
        assert info["side"] == "left"


# --- hemorrhage subtypes on the bundled template: shape and location statistics -------------------------------

#: Volume ranges (ml) drawn per subtype: typical admission sizes that fit the template.
VOLUMES = {"intraparenchymal": (5.0, 60.0), "intraventricular": (2.0, 15.0), "subarachnoid": (3.0, 20.0),
           "subdural": (10.0, 80.0), "epidural": (10.0, 60.0)}
CASES = 20


@pytest.fixture(scope="module")
def template() -> dict:
    """The bundled head-CT template, its anatomy masks (computed once) and derived maps."""
    case = sample_ct_head()
    hu, geometry = case.channels["CT"], case.geometry
    masks = head_masks(hu, geometry)
    coords = [physical_coordinate(geometry, hu.shape, k) for k in range(3)]
    return {"hu": hu, "geometry": geometry, "masks": masks, "x": coords[0] - masks.midline_x, "y": coords[1],
            "z": coords[2], "bone": distance_mm(~masks.skull, geometry), "depth": masks.brain_depth(geometry),
            "surface": masks.surface_points(geometry), "cache": {}}


def _cases(template: dict, subtype: str, *, cisternal: float | None = None) -> list[tuple[float, np.ndarray]]:
    """``CASES`` random masks of one subtype (volume and shape variety drawn per case), made once per module."""
    key = (subtype, cisternal)
    if key not in template["cache"]:
        rng = np.random.default_rng(2024 + HEMORRHAGE_SUBTYPES.index(subtype) + int(10 * (cisternal or 0)))
        saved = hemorrhage.CISTERNAL_PROBABILITY
        try:
            if cisternal is not None:
                hemorrhage.CISTERNAL_PROBABILITY = cisternal
            out = []
            for _ in range(CASES):
                volume = float(rng.uniform(*VOLUMES[subtype]))
                mask = synthesize_hemorrhage_mask(template["masks"], template["geometry"], subtype=subtype,
                                                  volume_ml=volume, shape_variety=float(rng.uniform()), rng=rng)
                out.append((volume, mask))
        finally:
            hemorrhage.CISTERNAL_PROBABILITY = saved
        template["cache"][key] = out
    return template["cache"][key]


def _check_common(template: dict, volume: float, mask: np.ndarray) -> None:
    masks, geometry = template["masks"], template["geometry"]
    assert mask.sum() * geometry.voxel_volume_ml == pytest.approx(volume, rel=0.15)
    assert not (mask & (masks.skull | masks.air)).any(), "blood in bone or air"
    assert not (mask & ~masks.brain).any()
    hu = template["hu"][mask]
    assert hu.min() > -100 and hu.max() < 250


def _pieces(mask: np.ndarray) -> np.ndarray:
    """Sizes (voxels) of the 26-connected pieces of ``mask``."""
    labels, _ = ndimage.label(mask, structure=FULL)
    return np.bincount(labels.ravel())[1:]


def _near_surface(mask: np.ndarray, geometry: Geometry, mm: float) -> float:
    """Share of the voxels within ``mm`` of the lesion's own surface (thin shapes: close to 1)."""
    return float((distance_mm(mask, geometry)[mask] <= mm + 1e-3).mean())


def _solidity(mask: np.ndarray, geometry: Geometry) -> float:
    """Volume over the volume of the convex hull of the voxel cubes."""
    spacing = np.asarray(geometry.spacing_zyx)
    corners = np.array([[a, b, c] for a in (-0.5, 0.5) for b in (-0.5, 0.5) for c in (-0.5, 0.5)])
    points = ((np.argwhere(mask)[:, None, :] + corners[None]) * spacing).reshape(-1, 3)
    return float(mask.sum() * np.prod(spacing) / ConvexHull(points).volume)


def _profile(template: dict, mask: np.ndarray) -> dict[str, float]:
    """Extra-axial profile: thickness (90th percentile of the depth below the brain surface) in the centre
    (along-surface distance <= 25% of the radius), half-way (40-60%) and at the rim (>= 75%); extent (mm)."""
    box, depth, nearest = template["surface"]
    sub = mask[box]
    d = depth[sub]
    points = np.stack([nearest[k][sub] for k in range(3)], axis=1) * np.asarray(template["geometry"].spacing_zyx)
    centre = points[d >= np.percentile(d, 95)].mean(axis=0)
    s = np.linalg.norm(points - centre, axis=1)
    radius = float(np.percentile(s, 98))

    def thickness(lo: float, hi: float) -> float:
        return float(np.percentile(d[(s >= lo * radius) & (s <= hi * radius)], 90))

    return {"centre": thickness(0.0, 0.25), "middle": thickness(0.4, 0.6), "rim": thickness(0.75, 1.0),
            "extent": 2.0 * radius, "thick": float(np.percentile(d, 99))}


def _anchor_bone_mm(template: dict, mask: np.ndarray) -> np.ndarray:
    """Distance (mm) to bone of the brain-surface point each voxel of ``mask`` lies under."""
    box, _, nearest = template["surface"]
    idx = [np.clip(nearest[k][mask[box]] + box[k].start, 0, mask.shape[k] - 1) for k in range(3)]
    return template["bone"][tuple(idx)]


def test_template_brain_mask_off_orbits_and_sinuses(template) -> None:
    hu, geometry, masks = template["hu"], template["geometry"], template["masks"]
    # The anterior skull base is too thin to threshold on the template: the brain keeps 6 mm from orbital fat
    # and sinus air instead, so it no longer runs into the orbits and the ethmoid.
    assert not (masks.brain & (distance_mm(~(hu < FAT_AIR_HU), geometry) <= 6.0)).any()
    assert 1500 < masks.brain.sum() * geometry.voxel_volume_ml < 2000
    # The lateral ventricles are two pieces, one on each side (no bridge at the atria or the septum).
    labels, _ = ndimage.label(masks.ventricles, structure=FULL)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    first, second = np.argsort(-sizes)[:2]
    assert sizes[second] > 0.3 * sizes[first]
    x = template["x"]
    assert (x[labels == first] > 0).all() != (x[labels == second] > 0).all()
    assert ((x[labels == first] > 0).all() or (x[labels == first] < 0).all())
    assert ((x[labels == second] > 0).all() or (x[labels == second] < 0).all())


def test_intraparenchymal_is_compact_solid_and_subcortical(template) -> None:
    geometry, masks = template["geometry"], template["masks"]
    z_brain = float(template["z"][masks.brain].mean())
    for volume, mask in _cases(template, "intraparenchymal"):
        _check_common(template, volume, mask)
        assert len(_pieces(mask)) == 1
        assert not (ndimage.binary_fill_holes(mask) & ~mask).any(), "a hole in the clot"
        assert all(not (ndimage.binary_fill_holes(mask[k]) & ~mask[k]).any() for k in range(mask.shape[0])), \
            "a ring in an axial slice"
        assert _solidity(mask, geometry) >= 0.8
        lengths = np.sqrt(np.sort(np.linalg.eigvalsh(np.cov((np.argwhere(mask) * geometry.spacing_zyx).T))))
        assert lengths[0] / lengths[2] >= 0.5  # round to oval, not a slab
        # Never against the inner table, never in the ventricles, in one hemisphere, supratentorial.
        assert template["depth"][mask].min() >= hemorrhage.IPH_SURFACE_MARGIN_MM - 1e-3
        assert distance_mm(~masks.ventricles, geometry)[mask].min() > hemorrhage.IPH_VENTRICLE_MARGIN_MM
        x = template["x"][mask]
        assert (x > 0).all() or (x < 0).all()
        assert template["z"][mask].mean() >= z_brain - 25.0


def test_intraventricular_layers_in_the_occipital_horns(template) -> None:
    masks = template["masks"]
    x, y = template["x"], template["y"]
    for volume, mask in _cases(template, "intraventricular"):
        _check_common(template, volume, mask)
        assert not (mask & ~masks.ventricles).any()
        # Dependent: well behind the ventricles' centre (supine: posterior = +y), most of it behind their median.
        assert y[mask].mean() >= y[masks.ventricles].mean() + 10.0
        assert (y[mask] >= np.median(y[masks.ventricles])).mean() >= 0.9
        # Two separate occipital horns, no bridge across the midline; no specks.
        labels, count = ndimage.label(mask, structure=FULL)
        sizes = np.bincount(labels.ravel())[1:]
        assert sizes.min() >= 10
        for piece in range(1, count + 1):
            if sizes[piece - 1] >= 0.1 * mask.sum():
                side = x[labels == piece]
                assert (side > 0).all() or (side < 0).all()


def test_convexity_subarachnoid_is_thin_streaks(template) -> None:
    for volume, mask in _cases(template, "subarachnoid", cisternal=0.0):
        _check_common(template, volume, mask)
        assert _near_surface(mask, template["geometry"], 2.0) >= 0.8
        sizes = _pieces(mask)
        # pieces per mask are random: 1-6 on the template in the canonical (LPS) voxel order, 2-5 when it was used in
        # its stored LAS order (the random draws follow the voxel order)
        assert len(sizes) <= 6 and sizes.min() >= 3
        # In the sulci under the convexity: shallow, never deep in the brain.
        assert np.percentile(template["depth"][mask], 90) <= 20.0


def test_cisternal_subarachnoid_casts_the_basal_cisterns(template) -> None:
    masks = template["masks"]
    hu = template["hu"]
    tissue = float(np.median(hu[masks.brain & ~masks.ventricles]))
    z_brain = float(template["z"][masks.brain].mean())
    for volume, mask in _cases(template, "subarachnoid", cisternal=1.0):
        _check_common(template, volume, mask)
        assert len(_pieces(mask)) == 1
        # Over CSF density: the template's cisterns read ~5-20 HU against ~30 HU brain.
        assert np.median(hu[mask]) <= tissue - 8.0
        assert np.percentile(hu[mask], 90) <= tissue - 5.0
        # Around the midline at the skull base (suprasellar, perimesencephalic, prepontine), not in a ventricle.
        assert abs(template["x"][mask].mean()) <= 10.0
        assert template["z"][mask].mean() <= z_brain - 20.0
        assert not (mask & masks.ventricles).any()
        # Cisterns are narrow: half the blood on its own surface, nearly all within two voxels of it.
        assert _near_surface(mask, template["geometry"], 2.0) >= 0.5
        assert _near_surface(mask, template["geometry"], 4.0) >= 0.85


def test_subdural_is_a_thin_crescent_on_the_convexity(template) -> None:
    masks = template["masks"]
    for volume, mask in _cases(template, "subdural"):
        _check_common(template, volume, mask)
        assert (mask & masks.inner_table).any()
        assert len(_pieces(mask)) == 1
        x = template["x"][mask]
        assert (x > 0).all() or (x < 0).all(), "crosses the midline"
        profile = _profile(template, mask)
        assert profile["thick"] <= 0.12 * profile["extent"], profile  # thin: thickness << extent
        assert profile["rim"] >= 0.3 * profile["centre"], profile  # even thickness: concave inner margin
        # Against the inner table of the convexity, never along the skull base.
        assert _anchor_bone_mm(template, mask).max() <= hemorrhage.EXTRA_AXIAL_BONE_MM + 2.0 + 1e-3
        bone = template["bone"][mask]
        assert np.percentile(bone, 90) <= 15.0 and bone.max() <= 24.0


def test_epidural_is_a_biconvex_lens(template) -> None:
    masks = template["masks"]
    aspect = []
    for volume, mask in _cases(template, "epidural"):
        _check_common(template, volume, mask)
        assert (mask & masks.inner_table).any()
        assert len(_pieces(mask)) == 1
        x = template["x"][mask]
        assert (x > 0).all() or (x < 0).all()
        profile = _profile(template, mask)
        assert profile["centre"] >= 1.5 * profile["rim"], profile  # thickest in the middle
        assert profile["thick"] >= 0.13 * profile["extent"], profile  # thick for its extent
        aspect.append(profile["thick"] / profile["extent"])
        assert profile["extent"] <= 120.0, profile  # limited extent
        assert _anchor_bone_mm(template, mask).max() <= hemorrhage.EXTRA_AXIAL_BONE_MM + 2.0 + 1e-3
    assert np.median(aspect) >= 0.2


def test_subdural_thinner_than_epidural(template) -> None:
    sdh = [_profile(template, m) for _, m in _cases(template, "subdural")]
    edh = [_profile(template, m) for _, m in _cases(template, "epidural")]
    ratio = [np.mean([p["thick"] / p["extent"] for p in group]) for group in (sdh, edh)]
    assert ratio[1] > 2.0 * ratio[0]
