"""Training-free generators on the shared real data: requested volumes, lesion intensities, geometry."""

from __future__ import annotations

import numpy as np
import pytest

from SyntheticImagingLib.anatomy import head_masks
from SyntheticImagingLib.api import sample_ct_head
from SyntheticImagingLib.generators import create_generator, load_generator
from SyntheticImagingLib.io import load_dataset
from SyntheticImagingLib.lesions.controls import LesionControls
from SyntheticImagingLib.preprocessing import resample_case


@pytest.fixture(scope="module")
def brats_2mm(shared_data):
    ds = load_dataset(shared_data / "brats2018", layout="brats")
    return [resample_case(ds[i], (2.0, 2.0, 2.0)) for i in (0, 2, 5)]


@pytest.fixture(scope="module")
def insertion(brats_2mm):
    return create_generator("lesion-insertion", task="brain-tumor-mri").fit(brats_2mm)


def _new_lesion(case, backgrounds):
    """The inserted lesion and the real background: the whole label when the background's own tumour was filled
    (the default; the new one may lie where it was), else what the background did not have (``keep``)."""
    bg = next(b for b in backgrounds if b.case_id == case.metadata["background"])
    if case.metadata["background_lesions"] == "fill":
        return case.label > 0, bg
    return (case.label > 0) & ~(bg.label > 0), bg


@pytest.mark.parametrize("volume_ml", [10.0, 30.0, 60.0])
def test_insertion_volume_within_15_percent(insertion, brats_2mm, volume_ml):
    controls = LesionControls(kind="tumor", volume_ml=volume_ml)
    for case in insertion.synthesize(2, seed=int(volume_ml), controls=controls):
        new, bg = _new_lesion(case, brats_2mm)
        achieved = new.sum() * case.geometry.voxel_volume_ml
        assert achieved == pytest.approx(volume_ml, rel=0.15)
        assert not case.geometry.differences(bg.geometry) and case.shape == bg.shape
        assert case.brain_mask[new].all(), "lesion voxels outside the brain mask"
        assert (bg.channels["FLAIR"][new] > 0).mean() > 0.99, "lesion over background voxels"


def test_insertion_tumour_intensities_match_kind(insertion, brats_2mm):
    ratios = {"FLAIR": [], "T1": []}
    for case in insertion.synthesize(4, seed=3, controls=LesionControls(kind="tumor", volume_ml=25.0)):
        new, bg = _new_lesion(case, brats_2mm)
        normal = (bg.channels["FLAIR"] > 0) & ~(case.label > 0)
        for name in ratios:
            a = case.channels[name]
            ratios[name].append(np.median(a[new]) / np.median(a[normal]))
    # real BraTS tumours: FLAIR 1.5-2.3x the normal brain; T1 darker
    assert min(ratios["FLAIR"]) > 1.3, ratios
    assert max(ratios["T1"]) < 1.0, ratios
    fitted = insertion.model.ratios["FLAIR"]
    assert 1.4 < fitted[0] <= fitted[1] < 2.5


def test_ct_hemorrhage_insertion_hu_and_anatomy():
    ct = sample_ct_head()
    masks = head_masks(ct.channels["CT"], ct.geometry)
    gen = create_generator("lesion-insertion", task="head-hemorrhage-ct").fit([ct])
    controls = LesionControls(kind="hemorrhage", volume_ml=20.0, subtypes=("intraparenchymal", "subdural"),
                              use_templates=False)
    for case in gen.synthesize(4, seed=0, controls=controls):
        lesion = case.label > 0
        assert lesion.sum() * case.geometry.voxel_volume_ml == pytest.approx(20.0, rel=0.15)
        hu = case.channels["CT"][lesion]
        assert 50 <= np.median(hu) <= 90, np.median(hu)
        assert not (lesion & masks.skull).any() and not (lesion & masks.air).any()
        assert case.modality.value == "CT" and not case.geometry.differences(ct.geometry)


def test_label_to_image_tumour_brighter_and_reproducible(brats_2mm, tmp_path):
    gen = create_generator("label-to-image", task="brain-tumor-mri").fit(brats_2mm)
    controls = LesionControls(kind="tumor", volume_ml=30.0)
    cases = list(gen.synthesize(2, seed=5, controls=controls))
    for case in cases:
        lesion = case.label > 0
        brain = case.brain_mask & ~lesion
        assert lesion.any() and case.brain_mask[lesion].all()
        assert np.median(case.channels["FLAIR"][lesion]) > 1.2 * np.median(case.channels["FLAIR"][brain])
    gen.save(tmp_path / "l2i")
    again = list(load_generator(tmp_path / "l2i").synthesize(2, seed=5, controls=controls))
    for a, b in zip(cases, again):
        assert np.array_equal(a.label, b.label)
        assert np.allclose(a.channels["FLAIR"], b.channels["FLAIR"])
