"""The copy-paste generator (CarveMix + TumorCP): mechanics on small synthetic heads, then real BraTS cases."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage

from SyntheticImagingLib import api
from SyntheticImagingLib.cases import Case, Geometry, LabelTable
from SyntheticImagingLib.checks.utility import kfold_splits
from SyntheticImagingLib.errors import InputError
from SyntheticImagingLib.generators import CopyPasteConfig, create_generator, load_generator
from SyntheticImagingLib.generators.base import MODEL_CARD
from SyntheticImagingLib.generators.copy_paste import blend_alpha
from SyntheticImagingLib.io import load_dataset
from SyntheticImagingLib.lesions import LesionControls, check_tumor_nesting
from SyntheticImagingLib.preprocessing import resample_case
from SyntheticImagingLib.tasks import task_for_data

SHAPE = (32, 40, 36)
GEOMETRY = Geometry((2.0, 2.0, 2.0), (-36.0, -40.0, -32.0))
TABLE = LabelTable({2: "edema", 4: "enhancing tumor"})  # a user's values, not 1..n
#: exact intensities of the donors' enhancing cores (no noise): what a pasted lesion must keep
CORE = {"FLAIR": 900.0, "T1c": 700.0}
RIGID = {"rotation_deg": 0.0, "elastic_mm": 0.0, "scale_range": (1.0, 1.0), "flip_lr": 0.0, "mass_effect": 0.0}


def _head(i: int) -> Case:
    """An ellipsoid 'brain' (two channels, noise) with a nested tumour: enhancing core (4) inside edema (2)."""
    z, y, x = np.mgrid[:SHAPE[0], :SHAPE[1], :SHAPE[2]]
    brain = ((z - 16) / 13) ** 2 + ((y - 20) / 17) ** 2 + ((x - 18) / 15) ** 2 < 1
    centre = [(16, 14, 11), (17, 26, 25), (14, 22, 12)][i % 3]
    r2 = (z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2
    label = np.where(r2 < 16, 4, np.where(r2 < 30, 2, 0)).astype(np.int16) * brain
    rng = np.random.default_rng(i)
    gain = 1.0 + 0.3 * i
    flair = np.where(brain, gain * (300 + rng.normal(0, 15, SHAPE)), 0.0)
    t1c = np.where(brain, gain * (400 + rng.normal(0, 15, SHAPE)), 0.0)
    flair[label == 2], t1c[label == 2] = gain * 600, gain * 350
    flair[label == 4], t1c[label == 4] = CORE["FLAIR"], CORE["T1c"]
    return Case(case_id=f"head{i}", channels={"FLAIR": flair, "T1c": t1c}, geometry=GEOMETRY, label=label,
                label_table=TABLE, brain_mask=brain)


@pytest.fixture(scope="module")
def heads() -> list[Case]:
    return [_head(i) for i in range(3)]


def _pasted(case: Case, background: Case, mode: str = "keep") -> np.ndarray:
    """The pasted lesion: what the target did not have (``keep``), or the whole label (``fill``: every lesion is
    pasted; the pasted one may lie where the target's own lesion was)."""
    if mode == "fill":
        return case.label > 0
    return (case.label > 0) & ~(background.label > 0)


def test_config_checks_and_round_trip():
    config = CopyPasteConfig(margin_fraction=[0.1, 0.3], placement="same")
    assert CopyPasteConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    for bad, message in [({"margin_fraction": (0.5, 0.1)}, "low <= high"), ({"flip_lr": 2.0}, r"\[0, 1\]"),
                         ({"scale_range": (0.0, 1.0)}, "positive"), ({"placement": "anywhere"}, "one of"),
                         ({"rotation_deg": 270.0}, "at most 180")]:
        with pytest.raises(InputError, match=message) as err:
            CopyPasteConfig.from_dict(bad)
        assert err.value.fix


def test_blend_alpha_is_one_on_the_lesion_and_feathered_only_at_the_border():
    lesion = np.zeros((1, 1, 30), bool)
    lesion[..., :5] = True
    distance = ndimage.distance_transform_edt(~lesion)
    alpha = blend_alpha(distance, lesion, margin_mm=3.0, feather_mm=4.0)
    assert (alpha[lesion] == 1).all() and (alpha[distance <= 3] == 1).all()
    partial = (alpha > 0) & (alpha < 1)
    assert partial.any() and (distance[partial] > 3).all() and (distance[partial] < 7).all()
    assert (alpha[distance >= 7] == 0).all() and np.all(np.diff(alpha[0, 0]) <= 0)


def test_labels_kept_lesion_inside_target_brain_and_provenance(heads):
    # keep: the target's own lesion must survive beside the pasted one (fill, the default: test_lesion_fill.py)
    gen = api.get_generator("copy-paste", data=heads, mass_effect=0.0, background_lesions="keep")
    assert gen.task.label_table == TABLE and not gen.task.is_preset
    by_id = {c.case_id: c for c in heads}
    cases = list(gen.synthesize(6, seed=0))
    for c in cases:
        meta = c.metadata
        background = by_id[meta["background"]]
        assert meta["donor"] != meta["background"] and meta["source_case_ids"] == [meta["background"], meta["donor"]]
        assert meta["lesions"][0]["donor"] == meta["donor"] and meta["contains_real_patient_data"]
        assert meta["background_lesions"] == "keep"  # recorded, as lesion insertion does
        assert c.label_table == TABLE and c.channel_names == ["FLAIR", "T1c"]
        own = background.label > 0
        assert np.array_equal(c.label[own], background.label[own])  # the target's own lesion is kept
        new = _pasted(c, background)
        assert set(np.unique(c.label[new]).tolist()) == {2, 4}  # the user's values, both sub-regions
        assert (new <= background.brain_mask).all()  # inside the target's brain
        assert np.array_equal(c.brain_mask, background.brain_mask)
        assert meta["lesions"][0]["label_values"] == [2, 4]
        assert check_tumor_nesting(np.where(new, c.label, 0), gen.task.roles)["ok"]
    # a k-fold keeps every synthetic case made from a test patient (background or donor) out of that fold
    real = [*heads, _head(3)]
    cases = list(api.get_generator("copy-paste", data=real, mass_effect=0.0).synthesize(12, seed=0))
    for _, test, synthetic in kfold_splits(real, cases, folds=2):
        ids = {t.case_id for t in test}
        assert synthetic and all(not ({s.metadata["background"], s.metadata["donor"]} & ids) for s in synthetic)


def test_donor_voxels_kept_in_the_lesion_blend_only_at_the_border(heads):
    # keep: with fill the target's own lesion is painted over too, so voxels change outside the pasted ROI
    gen = create_generator("copy-paste", task=task_for_data(heads), match_intensity=False, background_lesions="keep",
                           **RIGID)
    gen.fit(heads)
    by_id = {c.case_id: c for c in heads}
    for c in gen.synthesize(3, seed=1):
        background = by_id[c.metadata["background"]]
        info = c.metadata["lesions"][0]
        new = _pasted(c, background)
        core = ndimage.binary_erosion(c.label == 4) & new
        assert core.any()
        for name, value in CORE.items():  # the donor's voxels, not blended
            assert np.allclose(c.channels[name][core], value), name
        changed = np.zeros(SHAPE, bool)
        for name in c.channels:
            changed |= c.channels[name] != background.channels[name]
        distance = ndimage.distance_transform_edt(~new, sampling=GEOMETRY.spacing_zyx)
        reach = info["margin_mm"] + info["feather_mm"]
        assert changed.any() and (distance[changed] < reach + 1e-6).all()  # nothing changes beyond the ROI


def test_intensities_matched_to_the_target(heads):
    # keep: the target's normal brain measured here is the real target's (fill paints its lesion over first)
    gen = api.get_generator("copy-paste", data=heads, background_lesions="keep", **RIGID)
    by_id = {c.case_id: c for c in heads}
    for c in gen.synthesize(3, seed=2):
        background, donor = by_id[c.metadata["background"]], by_id[c.metadata["donor"]]
        maps = c.metadata["lesions"][0]["intensity_map"]
        core = ndimage.binary_erosion(c.label == 4) & _pasted(c, background)
        for name, value in CORE.items():
            m = maps[name]
            assert m["target_median"] == pytest.approx(np.median(background.channels[name][
                background.brain_mask & (background.label == 0)]), rel=1e-3)
            expected = m["target_median"] + (value - m["donor_median"]) * m["scale"]
            assert np.allclose(c.channels[name][core], expected, rtol=1e-3)
            # the lesion keeps its contrast to the target's brain (gains differ by up to 1.6x between heads)
            assert c.channels[name][core].mean() / m["target_median"] == pytest.approx(
                value / m["donor_median"], rel=0.25)
        assert donor.case_id != background.case_id


def test_same_seed_same_output_and_controls(heads):
    gen = api.get_generator("copy-paste", data=heads, mass_effect=0.5)
    a, b = (list(gen.synthesize(2, seed=5)) for _ in range(2))
    for x, y in zip(a, b):
        assert np.array_equal(x.label, y.label) and x.metadata == y.metadata
        assert all(np.array_equal(x.channels[k], y.channels[k]) for k in x.channels)
    other = next(gen.synthesize(1, seed=6))
    assert not np.array_equal(other.channels["FLAIR"], a[0].channels["FLAIR"])
    # controls: the pasted lesion is scaled to the asked volume, on the asked side, with mass effect recorded
    controls = LesionControls(kind="tumor", volume_ml=(2.0, 2.5), side="left")
    by_id = {c.case_id: c for c in heads}
    for c in gen.synthesize(3, seed=7, controls=controls):
        info = c.metadata["lesions"][0]
        assert 1.4 <= info["volume_ml_achieved"] <= 3.2, info
        assert info["side"] == "left" and "mass_effect" in c.metadata
        assert tuple(c.metadata["controls"]["volume_ml"]) == (2.0, 2.5)
        assert c.metadata["background"] in by_id


def test_flip_mirrors_the_lesion_left_right():
    def bumped(i: int) -> Case:  # a lesion with a bump on its +x (patient left) side
        case = _head(i)
        label = case.label.copy()
        label[16:19, 13:16, 16:19] = 2 if i == 0 else 0
        return case.replace(label=label)

    cases = [bumped(0), _head(1)]
    cases[1] = cases[1].replace(label=np.zeros(SHAPE, np.int16))  # only head0 is a donor
    skew = {}
    for flip in (0.0, 1.0):
        gen = api.get_generator("copy-paste", data=cases, **{**RIGID, "flip_lr": flip})
        c = next(gen.synthesize(1, seed=3))
        assert c.metadata["donor"] == "head0" and c.metadata["lesions"][0]["flipped_lr"] == bool(flip)
        x = GEOMETRY.index_to_physical(np.argwhere(c.label > 0))[:, 0]
        skew[flip] = float(((x - x.mean()) ** 3).mean())
    assert skew[0.0] > 0 > skew[1.0]


def test_one_case_pastes_into_itself_and_no_lesion_is_an_error(heads):
    # keep: the case then has its own lesion and a pasted copy of it, more lesion than before
    gen = api.get_generator("copy-paste", data=heads[:1], mass_effect=0.0, background_lesions="keep")
    c = next(gen.synthesize(1, seed=0))
    assert c.metadata["donor"] == c.metadata["background"] == "head0"
    assert c.lesion_volume_ml() > heads[0].lesion_volume_ml()
    empty = heads[0].replace(label=np.zeros(SHAPE, np.int16))
    with pytest.raises(InputError, match="nothing to copy") as err:
        create_generator("copy-paste", task=task_for_data(heads)).fit([empty])
    assert "lesion-insertion" in err.value.fix
    with pytest.raises(InputError, match="cannot fit") as err:
        list(gen.synthesize(1, seed=0, controls=LesionControls(kind="tumor", volume_ml=2000.0)))
    assert "smaller volume" in err.value.fix


def test_save_load_round_trip_with_model_card(heads, tmp_path):
    gen = api.get_generator("copy-paste", data=heads, placement="same", mass_effect=0.0)
    gen.save(tmp_path / "cp")
    card = json.loads((tmp_path / "cp" / MODEL_CARD).read_text())
    assert card["family"] == "copy-paste" and card["config"]["placement"] == "same"
    assert card["files"]["contains_real_images"] and card["training"]["donor_ids"] == ["head0", "head1", "head2"]
    loaded = load_generator(tmp_path / "cp")
    assert loaded.config == gen.config and loaded.task.to_dict() == gen.task.to_dict()
    for x, y in zip(gen.synthesize(2, seed=4), loaded.synthesize(2, seed=4)):
        assert np.array_equal(x.label, y.label) and x.metadata["source_case_ids"] == y.metadata["source_case_ids"]
        assert all(np.allclose(x.channels[k], y.channels[k], atol=1e-3) for k in x.channels)


# -- real data ----------------------------------------------------------------------------------------------


def test_brats2018_three_cases(shared_data):
    ds = load_dataset(shared_data / "brats2018", layout="brats")
    cases = [resample_case(ds[i], (4.0, 4.0, 4.0)) for i in range(3)]
    gen = api.get_generator("copy-paste", data=cases)
    by_id = {c.case_id: c for c in cases}
    out = list(gen.synthesize(3, seed=0))
    for c in out:
        background = by_id[c.metadata["background"]]
        assert c.channel_names == ["FLAIR", "T1"] and c.label_table.names == {1: "tumor"}
        assert set(np.unique(c.label).tolist()) == {0, 1}
        assert all(np.isfinite(a).all() and a.min() >= 0 for a in c.channels.values())
        assert c.metadata["donor"] != c.metadata["background"]
        info = c.metadata["lesions"][0]
        assert info["volume_ml_achieved"] > 1.0 and c.metadata["mass_effect"]["displaced_volume_ml"] > 0
        new = _pasted(c, background, c.metadata["background_lesions"])
        assert (new <= gen.references[list(by_id).index(background.case_id)].brain).all()
        # the pasted tumour stays FLAIR-hyperintense against the target's normal brain
        normal = np.median(c.channels["FLAIR"][c.brain_mask & (c.label == 0)])
        assert np.median(c.channels["FLAIR"][new]) > 1.2 * normal


def test_brats2013_four_labels_nesting_kept(shared_data):
    """The donor's sub-regions are copied whole: the pasted lesion breaks the BraTS nesting no more than its real
    donor does (real annotations, downsampled to 4 mm, do: 6-30 % of core voxels touch background)."""
    ds = load_dataset(shared_data / "brats2013_multiclass", layout="brats2013")
    cases = [resample_case(ds[i], (4.0, 4.0, 4.0)) for i in range(3)]
    gen = api.get_generator("copy-paste", data=cases, mass_effect=0.0)
    names = {1: "necrosis", 2: "edema", 3: "non-enhancing tumor", 4: "enhancing tumor"}
    assert gen.task.label_table.names == names

    def breaks(label, brain) -> float:
        r = check_tumor_nesting(label, gen.task.roles, brain=brain)
        return r["core_touching_background"] / max(r["core_voxels"], 1)

    by_id = {c.case_id: c for c in cases}
    for c in gen.synthesize(3, seed=0):
        background, donor = by_id[c.metadata["background"]], by_id[c.metadata["donor"]]
        assert c.channel_names == ["Flair", "T1c"] and c.label_table.names == names
        assert set(np.unique(c.label).tolist()) == {0, 1, 2, 3, 4}
        assert min(float(a.min()) for a in c.channels.values()) < 0  # z-scored values kept
        new = _pasted(c, background, c.metadata["background_lesions"])
        assert set(np.unique(c.label[new]).tolist()) == set(np.unique(donor.label).tolist()) - {0}
        assert breaks(np.where(new, c.label, 0), c.brain_mask) <= 1.5 * breaks(donor.label, donor.brain_mask) + 0.05
        # the lesion keeps its look: enhancing tumour brighter than necrosis on T1c, edema bright on Flair
        t1c, flair = c.channels["T1c"], c.channels["Flair"]
        assert t1c[new & (c.label == 4)].mean() > t1c[new & (c.label == 1)].mean()
        assert flair[new & (c.label == 2)].mean() > np.median(flair[c.brain_mask & (c.label == 0)]) + 0.5
