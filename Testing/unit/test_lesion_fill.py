"""background_lesions="fill": a background's own lesions are painted over with the tissue around them, so every
lesion of a lesion-insertion or copy-paste case is new; on real BraTS cases the filled tumour looks like brain."""

from __future__ import annotations

import numpy as np
import pytest

from SyntheticImagingLib.api import get_generator
from SyntheticImagingLib.cases import Case, Geometry, LabelTable, LesionKind
from SyntheticImagingLib.generators import CopyPasteConfig, LesionInsertionConfig, create_generator
from SyntheticImagingLib.generators.lesion_fill import fill_lesions
from SyntheticImagingLib.generators.references import prepare_reference
from SyntheticImagingLib.io import load_dataset
from SyntheticImagingLib.lesions import LesionControls
from SyntheticImagingLib.preprocessing import resample_case


def _two_tissue_head(seed: int) -> Case:
    """Grey (300) and white (450) halves, voxel noise 10, a bright tumour (900) straddling both."""
    z, y, x = np.mgrid[:30, :34, :30]
    brain = ((z - 15) / 13) ** 2 + ((y - 17) / 15) ** 2 + ((x - 15) / 13) ** 2 < 1
    rng = np.random.default_rng(seed)
    image = np.where(brain, np.where(x < 15, 300.0, 450.0) + rng.normal(0, 10, brain.shape), 0.0)
    tumour = ((z - 15) ** 2 + (y - 14) ** 2 + (x - 15) ** 2) < 25
    image[tumour] = 900.0 + rng.normal(0, 30, int(tumour.sum()))
    return Case(case_id=f"h{seed}", channels={"FLAIR": image.astype(np.float32)}, geometry=Geometry((2.0,) * 3),
                label=tumour.astype(np.int16), label_table=LabelTable({1: "tumor"}), brain_mask=brain)


def test_fill_paints_each_side_with_its_own_tissue():
    case = _two_tissue_head(0)
    filled = fill_lesions(prepare_reference(case), rng=np.random.default_rng(1), classes=2).case
    image, tumour = filled.channels["FLAIR"], case.label > 0
    assert filled.label is None and not filled.label_table.values
    assert filled.metadata["filled_lesions_ml"] == pytest.approx(tumour.sum() * 8 / 1000)
    z, y, x = np.nonzero(tumour)
    left, right = image[z[x < 13], y[x < 13], x[x < 13]], image[z[x > 17], y[x > 17], x[x > 17]]
    assert abs(np.median(left) - 300) < 25 and abs(np.median(right) - 450) < 25
    assert 5 < float(np.std(left)) < 40  # noise and texture, not a flat patch
    outside = case.brain_mask & ~np.pad(tumour, 0)
    far = outside.copy()
    far[10:21, 7:22, 8:23] = False
    np.testing.assert_array_equal(image[far], case.channels["FLAIR"][far])  # the rest of the brain is untouched
    same = fill_lesions(prepare_reference(case), rng=np.random.default_rng(1), classes=2).case.channels["FLAIR"]
    np.testing.assert_array_equal(same, image)
    bare = case.replace(label=None, label_table=LabelTable())
    assert fill_lesions(prepare_reference(bare), rng=np.random.default_rng(1)).case is bare


def test_generators_keep_or_fill_background_lesions():
    heads = [_two_tissue_head(i) for i in range(2)]
    controls = LesionControls(kind=LesionKind.TUMOR, count=1, volume_ml=(2.0, 3.0))
    for family, config in (("lesion-insertion", LesionInsertionConfig), ("copy-paste", CopyPasteConfig)):
        volumes = {}
        for mode in ("keep", "fill"):
            gen = create_generator(family, task="brain-tumor-mri", config=config(background_lesions=mode,
                                                                                 mass_effect=0.0)).fit(heads)
            cases = list(gen.synthesize(3, seed=0, controls=controls))
            volumes[mode] = [float((c.label > 0).sum() * 8 / 1000) for c in cases]
            for c in cases:
                own = next(h for h in heads if h.case_id == c.metadata["background"]).label > 0
                if mode == "fill":  # the background's tumour is gone, label and image
                    assert not (c.label[own] > 0).all() and float(np.median(c.channels["FLAIR"][own])) < 600
                else:
                    assert (c.label[own] > 0).all()
        own_ml = float((heads[0].label > 0).sum() * 8 / 1000)
        assert min(volumes["keep"]) > own_ml and max(volumes["fill"]) < own_ml, (family, volumes)


def test_fill_keeps_the_users_label_values():
    """Filled backgrounds have no label left; the new lesions still carry the user's values (BraTS 1, 2, 4),
    not a renumbering (1, 2, 3) of them."""
    brats = LabelTable({1: "necrosis", 2: "edema", 4: "enhancing tumor"})
    heads = []
    for i in range(3):
        head = _two_tissue_head(i)
        label = np.where(head.label > 0, 2, 0).astype(np.int16)  # edema around a core: necrosis in an enhancing rim
        z, y, x = np.mgrid[:30, :34, :30]
        d2 = (z - 15) ** 2 + (y - 14) ** 2 + (x - 15) ** 2
        label[d2 < 9] = 4
        label[d2 < 2] = 1
        heads.append(head.replace(label=label, label_table=brats))
    controls = LesionControls(kind=LesionKind.TUMOR, count=1, volume_ml=(2.0, 3.0))
    for family in ("lesion-insertion", "copy-paste"):
        for mode in ("keep", "fill"):
            # the task from the data: new lesions drawn as the user's sub-regions, in the user's values
            gen = get_generator(family, data=heads, background_lesions=mode, mass_effect=0.0)
            for case in gen.synthesize(2, seed=0, controls=controls):
                assert case.label_table == brats, (family, mode, case.label_table)
                assert set(np.unique(case.label).tolist()) <= {0, 1, 2, 4}, (family, mode)
                assert 4 in np.unique(case.label), (family, mode)


def test_fill_on_real_brats_cases(shared_data):
    cases = [resample_case(c, (2.0, 2.0, 2.0)) for c in list(load_dataset(shared_data / "brats2018",
                                                                               layout="brats"))[:3]]
    for case in cases:
        ref = prepare_reference(case)
        filled = fill_lesions(ref, rng=np.random.default_rng(0)).case
        tumour, normal = case.label > 0, ref.brain & ~(case.label > 0)
        for name in case.channel_names:
            before, after, brain = case.channels[name], filled.channels[name], case.channels[name][normal]
            lo, hi = np.percentile(brain, [5, 95])
            # the filled tumour sits in the normal brain's range; FLAIR was far brighter before
            assert lo <= float(np.median(after[tumour])) <= hi, (case.case_id, name)
            assert float(np.std(after[tumour])) < 1.5 * float(np.std(brain)), (case.case_id, name)
            if name == "FLAIR":
                assert np.median(before[tumour]) > hi
    gen = create_generator("lesion-insertion", task="brain-tumor-mri", background_lesions="fill").fit(cases)
    controls = LesionControls(kind=LesionKind.TUMOR, count=1, volume_ml=(30.0, 40.0))
    for case in gen.synthesize(3, seed=0, controls=controls):
        # the whole label is the new tumour (mass effect may grow it a little), not new + the patient's own
        assert 25.0 < float((case.label > 0).sum() * 8 / 1000) < 50.0
        assert case.metadata["background_lesions"] == "fill"
