"""Lesion-mask synthesis on real data: BraTS 2018 brains (tumours, real masks as templates) and the real head CT
template with skull (anatomy masks, all hemorrhage subtypes)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from SyntheticImagingLib.anatomy import brain_mask, cormack_to_hu, head_masks, physical_coordinate
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

pytestmark = pytest.mark.skipif(not (BRATS.exists() and CT.exists()),
                                reason=f"real data not found at {DATA} (brats2018/ and ct_head_templates/)")


def _resample(image: sitk.Image, spacing: float, *, label: bool) -> sitk.Image:
    size = [int(round(n * s / spacing)) for n, s in zip(image.GetSize(), image.GetSpacing())]
    interpolator = sitk.sitkNearestNeighbor if label else sitk.sitkLinear
    return sitk.Resample(image, size, sitk.Transform(), interpolator, image.GetOrigin(), (spacing,) * 3,
                         image.GetDirection(), 0.0, image.GetPixelID())


@pytest.fixture(scope="module")
def brats() -> list[dict]:
    """Three BraTS cases at 2 mm: FLAIR, whole-tumour mask and the derived brain mask."""
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
