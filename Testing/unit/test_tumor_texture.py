"""Hidden tumour sub-structure, tumour heterogeneity and tissue texture of the training-free families (issue 17).

Real targets are measured here on 3 BraTS 2018 cases at 4 mm, the same way as on the synthetic cases.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from SyntheticImagingLib.cases import Case
from SyntheticImagingLib.generators import create_generator
from SyntheticImagingLib.generators.config import LabelToImageConfig, LesionInsertionConfig
from SyntheticImagingLib.generators.label_to_image import anatomy_map
from SyntheticImagingLib.generators.references import Reference, prepare_reference
from SyntheticImagingLib.io import load_dataset
from SyntheticImagingLib.lesions.controls import LesionControls
from SyntheticImagingLib.lesions.tumor_subregions import HIDDEN_ROLES, hidden_subregions
from SyntheticImagingLib.preprocessing import resample_case

CONTROLS = LesionControls(kind="tumor", volume_ml=(30.0, 60.0), count=1)


@pytest.fixture(scope="module")
def brats_4mm(shared_data):
    ds = load_dataset(shared_data / "brats2018", layout="brats")
    return [resample_case(ds[i], (4.0, 4.0, 4.0)) for i in (0, 2, 5)]


def _lesion_sd(case: Case, lesion: np.ndarray, brain: np.ndarray, channel: str = "FLAIR") -> float:
    """SD inside ``lesion`` over the normal-brain median."""
    image = case.channels[channel]
    normal = brain & ~ndimage.binary_dilation(case.label > 0, iterations=2)
    return float(image[lesion].std() / np.median(image[normal]))


def _class_cv(case: Case, brain: np.ndarray, channel: str) -> float:
    """Mean within-class SD over mean of grey- and white-matter-like T1 k-means classes."""
    amap = anatomy_map(Reference(case.replace(label=(case.label > 0).astype(np.int16)), brain), classes=3)
    image = case.channels[channel]
    return float(np.mean([image[amap == k].std() / image[amap == k].mean() for k in (2, 3)]))


def test_hidden_subregions_nest_inside_the_tumour(brats_4mm):
    whole = brats_4mm[0].label > 0
    inner = hidden_subregions(whole, brats_4mm[0].geometry, np.random.default_rng(0))
    assert ((inner > 0) <= whole).all() and (inner[whole] > 0).mean() > 0.95
    assert set(np.unique(inner[whole])) >= {HIDDEN_ROLES.value_of("necrosis"), HIDDEN_ROLES.value_of("edema")}
    # the edema is the outer shell: the tumour's border is edema
    border = whole & ~ndimage.binary_erosion(whole)
    assert (inner[border] == HIDDEN_ROLES.value_of("edema")).mean() > 0.9


def test_insertion_inner_structure_keeps_label_and_matches_real_texture(brats_4mm):
    refs = {c.case_id: prepare_reference(c) for c in brats_4mm}
    real = [_lesion_sd(c, c.label > 0, refs[c.case_id].brain) for c in brats_4mm]
    sds = {}
    labels = {}
    for on in (False, True):
        gen = create_generator("lesion-insertion", task="brain-tumor-mri", inner_structure=on).fit(brats_4mm)
        sds[on], labels[on] = [], []
        for case in gen.synthesize(3, seed=1, controls=CONTROLS):
            assert case.label_table.names == {1: "tumor"}
            assert set(np.unique(case.label)) == {0, 1}
            new = case.label > 0  # filled background (the default): every lesion is new
            if case.metadata["background_lesions"] == "keep":
                new &= ~(refs[case.metadata["background"]].case.label > 0)
            sds[on].append(_lesion_sd(case, new, case.brain_mask))
            labels[on].append(case.label)
    for off, on in zip(labels[False], labels[True]):
        assert np.array_equal(off, on), "the inner structure changed the written label"
    assert np.mean(sds[True]) > 1.5 * np.mean(sds[False]), sds
    assert min(real) <= np.mean(sds[True]) <= max(real), (sds[True], real)
    assert np.mean(sds[False]) < min(real), "before, the inserted tumours were flatter than every real one"


def test_setting_off_is_the_old_single_level_paint(brats_4mm):
    config = LesionInsertionConfig.from_dict({"texture": 0.08})  # an old card's settings load, structure on
    assert config.inner_structure and LabelToImageConfig.from_dict({"noise": 0.5}).tissue_texture == 1.0
    gen = create_generator("lesion-insertion", task="brain-tumor-mri", inner_structure=False).fit(brats_4mm[:1])
    first = [c.channels["FLAIR"] for c in gen.synthesize(2, seed=4, controls=CONTROLS)]
    again = [c.channels["FLAIR"] for c in gen.synthesize(2, seed=4, controls=CONTROLS)]
    assert all(np.array_equal(a, b) for a, b in zip(first, again))


def test_label_to_image_tissue_texture_moves_within_class_sd_to_real(brats_4mm):
    fit = brats_4mm[:2]
    real = np.mean([_class_cv(c, prepare_reference(c).brain, "T1") for c in fit])
    cvs, sds = {}, {}
    for on in (False, True):
        settings = {} if on else {"tissue_texture": 0.0, "inner_structure": False}
        gen = create_generator("label-to-image", task="brain-tumor-mri", **settings).fit(fit)
        cases = list(gen.synthesize(2, seed=2, controls=CONTROLS))
        cvs[on] = np.mean([_class_cv(c, c.brain_mask, "T1") for c in cases])
        sds[on] = np.mean([_lesion_sd(c, c.label > 0, c.brain_mask) for c in cases])
        assert all(c.label_table.names == {1: "tumor"} for c in cases)
    assert cvs[True] > cvs[False], (cvs, real)
    assert abs(cvs[True] - real) < abs(cvs[False] - real), (cvs, real)
    assert sds[True] > 1.2 * sds[False], sds
