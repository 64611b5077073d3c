"""The disguise family and the aligned comparison on small arrays: the disguise moves image and label together
and is seeded; the matching normalisation ignores gamma and bias; a disguised copy is registered back onto its
source, named, and separated from other subjects; the filter drops it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from scipy import ndimage

from SyntheticImagingLib.cases import Case, Geometry
from SyntheticImagingLib.checks.aligned_match import (
    aligned_nearest,
    aligned_view,
    candidate_pairs,
    fast_features,
    match_images,
    normalise_for_matching,
)
from SyntheticImagingLib.checks.base import CheckContext, Profile
from SyntheticImagingLib.checks.disguise import (
    DISGUISE,
    DisguiseParams,
    DrawnDisguise,
    disguise_case,
    disguised_copies,
    draw_disguise,
)
from SyntheticImagingLib.checks.privacy import assess_privacy
from SyntheticImagingLib.checks.privacy_aligned import assess_aligned, calibrate_aligned
from SyntheticImagingLib.checks.privacy_filter import privacy_filter
from SyntheticImagingLib.errors import InputError

SHAPE = (36, 40, 36)
SPACING = (4.0, 4.0, 4.0)
TINY = Profile(name="tiny", spacing=SPACING, shape=SHAPE, seeds=1, segmenter_steps=10, encoder_steps=4,
               real_sizes=(2,), synthetic_ratios=(1.0,), repeats=2)
CHANNELS = ("FLAIR", "T1")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Two shared cores: one torch thread avoids oversubscription."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def subject(case_id: str, seed: int) -> Case:
    """A 'head' with its own shape, smooth anatomy (8 mm texture) and lesion, normalised (background -1)."""
    rng = np.random.default_rng(seed)
    zz, yy, xx = np.indices(SHAPE, dtype=float)
    centre = (np.asarray(SHAPE) - 1) / 2 + rng.uniform(-1, 1, 3)
    radii = np.array([12.0, 15.0, 12.5]) * rng.uniform(0.92, 1.08, 3)
    head = sum(((g - c) / r) ** 2 for g, c, r in zip((zz, yy, xx), centre, radii)) < 1
    texture = ndimage.gaussian_filter(rng.normal(size=SHAPE), 2.0)
    texture /= texture.std()
    inside = np.argwhere(ndimage.binary_erosion(head, iterations=5))
    c = inside[rng.integers(len(inside))]
    lesion = ((zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2) < rng.uniform(3.0, 5.0) ** 2
    flair = np.where(head, 0.2 + 0.3 * texture + 0.8 * lesion, -1.0)
    t1 = np.where(head, 0.5 - 0.25 * texture - 0.3 * lesion, -1.0)
    return Case(case_id=case_id, channels={"FLAIR": flair.astype(np.float32), "T1": t1.astype(np.float32)},
                geometry=Geometry(SPACING, (0.0, 0.0, 0.0)), label=lesion.astype(np.int16), brain_mask=head)


@pytest.fixture(scope="module")
def people():
    return {"train": [subject(f"train{i}", i) for i in range(5)],
            "holdout": [subject(f"hold{i}", 100 + i) for i in range(4)],
            "fresh": [subject(f"fresh{i}", 200 + i) for i in range(6)]}


def context(tmp_path) -> CheckContext:
    return CheckContext(profile=TINY, out_dir=tmp_path, device="cpu")


# ------------------------------------------------------------------------------------------------ disguise
def test_disguise_is_seeded_and_moves_image_and_label_together():
    case = subject("a", 1)
    a, b = disguised_copies([case], 2, seed=4), disguised_copies([case], 2, seed=4)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.channels["FLAIR"], y.channels["FLAIR"])
        assert x.metadata["source"] == "a" and x.metadata["disguise"] == y.metadata["disguise"]
    assert not np.array_equal(a[0].channels["FLAIR"], a[1].channels["FLAIR"])
    for copy in a:  # the lesion is bright where the moved label says it is
        flair, lab = copy.channels["FLAIR"], copy.label > 0
        assert lab.sum() > 0.6 * (case.label > 0).sum()
        assert flair[lab].mean() > flair[copy.brain_mask & ~lab].mean() + 0.4


def test_flip_only_mirrors_and_intensity_only_keeps_geometry():
    case = subject("a", 2)
    flip = DrawnDisguise(flip=True, angles_deg=(0.0, 0.0, 0.0), scale=1.0, shift_mm=(0.0, 0.0, 0.0), elastic_mm=0.0,
                         bias=0.0, gamma=1.0, noise=0.0, seed=0)
    mirrored = disguise_case(case, flip)
    np.testing.assert_array_equal(mirrored.label, case.label[..., ::-1])
    np.testing.assert_allclose(mirrored.channels["T1"], case.channels["T1"][..., ::-1], atol=1e-5)
    tone = DrawnDisguise(flip=False, angles_deg=(0.0, 0.0, 0.0), scale=1.0, shift_mm=(0.0, 0.0, 0.0),
                         elastic_mm=0.0, bias=0.3, gamma=1.4, noise=0.0, seed=1)
    toned = disguise_case(case, tone)
    np.testing.assert_array_equal(toned.label, case.label)
    assert np.abs(toned.channels["FLAIR"] - case.channels["FLAIR"])[case.brain_mask].mean() > 0.05
    with pytest.raises(InputError):
        DisguiseParams(gamma=(1.5, 1.2))
    assert "flip" in DISGUISE.describe() and draw_disguise(np.random.default_rng(0)).gamma > 0


def test_matching_normalisation_ignores_gamma_and_bias():
    case, other = subject("a", 3), subject("b", 4)
    tone = DrawnDisguise(flip=False, angles_deg=(0.0, 0.0, 0.0), scale=1.0, shift_mm=(0.0, 0.0, 0.0),
                         elastic_mm=0.0, bias=0.3, gamma=0.7, noise=0.0, seed=2)
    toned = disguise_case(case, tone)

    def norm(c: Case) -> np.ndarray:
        return normalise_for_matching(np.stack([c.channels[n] for n in CHANNELS]), case.brain_mask, SPACING)

    base, alt, far = norm(case), norm(toned), norm(other)
    raw_corr = np.corrcoef(case.channels["FLAIR"][case.brain_mask], toned.channels["FLAIR"][case.brain_mask])[0, 1]
    corr = np.corrcoef(base[0][case.brain_mask], alt[0][case.brain_mask])[0, 1]
    assert corr > 0.97 and corr > raw_corr
    assert np.corrcoef(base[0][case.brain_mask], far[0][case.brain_mask])[0, 1] < 0.5


# ------------------------------------------------------------------------------------------ aligned matching
def test_disguised_copies_are_matched_to_their_source(people):
    train = people["train"]
    copies = disguised_copies(train, 5, seed=7)
    ti, ci = match_images(train, channels=CHANNELS), match_images(copies, channels=CHANNELS)
    tf, cf = fast_features(ti, both_orientations=False), fast_features(ci)
    sources = [int(c.metadata["source"][5:]) for c in copies]
    _, idx, flip = candidate_pairs(cf, tf, k=2)
    assert list(idx[:, 0]) == sources
    assert list(flip[:, 0]) == [c.metadata["disguise"]["flip"] for c in copies]
    found = aligned_nearest(ci, ti, train_features=tf, synthetic_features=cf)
    assert list(found.nearest) == sources
    others = aligned_nearest(match_images(people["fresh"], channels=CHANNELS), ti, train_features=tf)
    assert found.distance.max() < 0.8 * others.distance.min()
    moved, lab = aligned_view(copies[0], train[sources[0]], found.pairs[0], channel="FLAIR")
    truth = train[sources[0]].label > 0
    assert moved.shape == SHAPE and 2 * (lab & truth).sum() / (lab.sum() + truth.sum()) > 0.6


def test_calibration_separates_copies_from_other_subjects(people):
    train = people["train"]
    images = match_images(train, channels=CHANNELS)
    cal = calibrate_aligned(train, people["holdout"], channels=CHANNELS, train_images=images,
                            train_features=fast_features(images, both_orientations=False), copies_total=10,
                            max_null=4, seed=1)
    assert cal.separated and cal.copy_distances.max() < cal.threshold < cal.null_distances.min()
    assert len(cal.copy_distances) == 10 and len(cal.null_distances) == 4 + 4
    assert "elastic" in cal.family and cal.gate > cal.copy_fast_distances.max()


def test_assessment_names_the_copied_patients_and_the_filter_drops_them(people, tmp_path):
    train, holdout = people["train"], people["holdout"]
    copies = disguised_copies(train, 2, seed=3, prefix="copy")
    honest = disguised_copies(people["fresh"], 4, seed=5, prefix="honest")
    ctx = context(tmp_path)
    a = assess_privacy(train, holdout, copies + honest, context=ctx, spaces=("voxel",))
    assert a.flagged and a.aligned is not None and a.aligned.calibration.separated
    assert a.copies == [(c.case_id, c.metadata["source"]) for c in copies]
    assert "disguised copies after alignment" in a.summary()["flag_reasons"]
    clean = assess_privacy(train, holdout, honest, context=ctx, spaces=("voxel",))
    assert not clean.aligned.copy.any()
    kept, dropped = privacy_filter(copies + honest, train, threshold=-1.0, context=ctx)
    assert [c.case_id for c in kept] == [c.case_id for c in honest]
    assert [(r["synthetic_id"], r["copies_training_id"]) for r in dropped] == a.copies


def test_a_new_lesion_on_copied_anatomy_is_an_anatomy_match_unless_as_close_as_a_copy(people):
    """The copy rule: within the copy threshold a case is a copy only with its lesion reproduced; within the
    anatomy threshold (as close as a disguised copy) it is one whatever its lesion."""
    train = people["train"]
    src = train[0]
    moved = np.roll(src.label, 9, axis=2)  # the patient's anatomy with the lesion somewhere else
    flair = np.where(src.label > 0, src.channels["FLAIR"] - 0.8, src.channels["FLAIR"]) + 0.8 * (moved > 0)
    new_lesion = src.replace(case_id="new_lesion", channels={**src.channels, "FLAIR": flair.astype(np.float32)},
                             label=moved)
    copy = disguised_copies([src], 1, seed=2, prefix="copy")[0]
    images = match_images(train, channels=CHANNELS)
    feats = fast_features(images, both_orientations=False)
    cal = calibrate_aligned(train, people["holdout"], channels=CHANNELS, train_images=images, train_features=feats,
                            copies_total=10, max_null=4, seed=1)
    res = assess_aligned([copy, new_lesion], images, feats, cal, channels=CHANNELS)
    assert res.dice[0] > cal.lesion_threshold > res.dice[1]
    assert list(res.copy) == [True, True] and not res.anatomy_match.any()  # both as close as copies
    strict = dataclasses.replace(cal, anatomy_threshold=0.0)
    res = assess_aligned([copy, new_lesion], images, feats, strict, channels=CHANNELS)
    assert list(res.copy) == [True, False] and list(res.anatomy_match) == [False, True]
    assert list(res.nearest) == [0, 0]
