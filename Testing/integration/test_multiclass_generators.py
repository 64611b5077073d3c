"""Every generator family on a user's channels and label table (issue 16, item 2).

BRATS 2013 (``shared/data/brats2013_multiclass``): Flair + T1c, z-scored (negative values), four sub-regions
{1 necrosis, 2 edema, 3 non-enhancing, 4 enhancing}; split by case (4 train, 2 held out), downsampled to 4 mm.
Each family must give both channels (same names), the user's four values and names, and BraTS nesting
(:func:`~SyntheticImagingLib.lesions.check_tumor_nesting`) in >= 95 % of synthetic cases. A head-CT dataset in
the ``ich-alphabetical`` convention (EDH 1, IPH 2, IVH 3, SAH 4, SDH 5, named by abbreviation in dataset.json)
must come back with those values and names.
"""

from __future__ import annotations

import numpy as np
import pytest

from SyntheticImagingLib import api
from SyntheticImagingLib.anatomy import head_masks
from SyntheticImagingLib.cases import LabelTable, LesionKind
from SyntheticImagingLib.generators import load_generator
from SyntheticImagingLib.io import load_dataset
from SyntheticImagingLib.io.datasets import write_dataset
from SyntheticImagingLib.label_roles import CONVENTIONS, match_roles
from SyntheticImagingLib.lesions import LesionControls, check_tumor_nesting, make_lesion_label
from SyntheticImagingLib.preprocessing import IntensityMap, resample_case
from SyntheticImagingLib.tasks import task_for_data
from SyntheticImagingLib.training import train_generator

NAMES = {1: "necrosis", 2: "edema", 3: "non-enhancing tumor", 4: "enhancing tumor"}
CONTROLS = LesionControls(kind="tumor", volume_ml=(15.0, 40.0))
N_SYNTH = 4


@pytest.fixture(scope="module")
def brats2013(shared_data):
    ds = load_dataset(shared_data / "brats2013_multiclass", layout="brats2013")
    cases = [resample_case(c, (4.0, 4.0, 4.0)) for c in ds]
    return cases[:4], cases[4:]


def _check_cases(cases, task, *, exclude=None) -> float:
    """Shared assertions; returns the share of cases with BraTS nesting (new lesions only, see ``exclude``)."""
    ok = 0
    for c in cases:
        assert c.channel_names == ["Flair", "T1c"]
        assert c.label_table.names == NAMES
        assert set(np.unique(c.label).tolist()) == {0, 1, 2, 3, 4}
        assert all(np.isfinite(a).all() for a in c.channels.values())
        label = c.label.copy()
        if exclude is not None and exclude(c) is not None:
            label[exclude(c)] = 0
        ok += check_tumor_nesting(label, task.roles, brain=c.brain_mask)["ok"]
    return ok / len(cases)


def test_task_from_brats2013_data(brats2013):
    train, _ = brats2013
    task = task_for_data(train)
    assert task.channels == ("Flair", "T1c") and task.label_table.names == NAMES and not task.is_preset
    # z-scored data keeps its negative values through the network intensity map
    imap = IntensityMap.fit(train[0])
    assert imap.offset("Flair") < 0 and "offsets" in imap.to_dict()
    flair = train[0].channels["Flair"]
    back = imap.inverse_array(imap.forward_array(flair, "Flair"), "Flair")
    inside = train[0].brain_mask & (flair <= imap.scales["Flair"] * 1.5)
    assert np.allclose(back[inside & (flair >= imap.offset("Flair"))], flair[inside & (flair >= imap.offset("Flair"))],
                       atol=1e-4)
    assert IntensityMap.from_dict({"modality": "MR", "scales": {"T1": 2.0}}).offset("T1") == 0.0  # old cards


def test_lesion_insertion_multiclass(brats2013):
    train, _ = brats2013
    gen = api.get_generator("lesion-insertion", data=train, mass_effect=0.0)
    assert gen.task.label_table.names == NAMES and gen.training["subregion_fractions"]
    cases = list(gen.synthesize(N_SYNTH, seed=0, controls=CONTROLS))
    backgrounds = {r.case.case_id: r.case.label > 0 for r in gen.references}

    def own(c):
        """The background's own tumour where it was kept; with "fill" (the default) every lesion is new."""
        return backgrounds[c.metadata["background"]] if c.metadata["background_lesions"] == "keep" else None

    assert _check_cases(cases, gen.task, exclude=own) >= 0.95
    # each sub-region has its own intensity: enhancing brighter than necrosis on T1c, edema bright on Flair
    new = [c.label if own(c) is None else c.label * ~own(c) for c in cases]
    t1c = {v: np.mean([c.channels["T1c"][lab == v].mean() for c, lab in zip(cases, new)]) for v in (1, 4)}
    assert t1c[4] > t1c[1], t1c
    edema = np.mean([c.channels["Flair"][lab == 2].mean() for c, lab in zip(cases, new)])
    normal = np.mean([np.median(c.channels["Flair"][c.brain_mask & (c.label == 0)]) for c in cases])
    assert edema > normal + 0.5, (edema, normal)
    assert min(float(c.channels["T1c"].min()) for c in cases) < 0  # z-scored values kept


def test_label_to_image_multiclass(brats2013):
    train, _ = brats2013
    gen = api.get_generator("label-to-image", data=train)
    cases = list(gen.synthesize(N_SYNTH, seed=0, controls=CONTROLS))
    assert _check_cases(cases, gen.task) >= 0.95


def test_gan_multiclass_trains_on_user_table(brats2013, tmp_path):
    train, held_out = brats2013
    gen = train_generator(train, validation=held_out, task="brain-tumor-mri", family="gan3d",
                          out_dir=tmp_path / "gan", steps=2, device="cpu", cache_dir="", seed=0,
                          spacing=[8.0, 8.0, 8.0], shape=[24, 24, 24], channels=[8, 16], disc_channels=8,
                          disc_layers=2)
    assert gen.grid.label_values == (1, 2, 3, 4) and gen.grid.channels == ("Flair", "T1c")
    assert gen.in_channels == 5  # one-hot of the user's four labels + brain
    reloaded = load_generator(tmp_path / "gan")
    assert reloaded.task.to_dict() == gen.task.to_dict() and reloaded.intensity.offset("T1c") < 0
    cases = list(reloaded.synthesize(N_SYNTH, seed=1, controls=LesionControls(kind="tumor", volume_ml=(30.0, 60.0))))
    assert _check_cases(cases, reloaded.task) >= 0.95


def test_hemorrhage_user_convention_ich_alphabetical(tmp_path):
    """A head-CT dataset labelled EDH 1, IPH 2, IVH 3, SAH 4, SDH 5 (names in dataset.json) comes back so."""
    table = LabelTable({1: "EDH", 2: "IPH", 3: "IVH", 4: "SAH", 5: "SDH"})
    roles = match_roles(table, LesionKind.HEMORRHAGE)
    assert roles.roles == match_roles(CONVENTIONS["ich-alphabetical"], LesionKind.HEMORRHAGE).roles
    ct = resample_case(api.sample_ct_head(), (3.0, 3.0, 3.0))
    masks = head_masks(ct.channels["CT"], ct.geometry)
    real = []
    for i, subtypes in enumerate([("intraparenchymal", "subdural"), ("epidural", "intraparenchymal")]):
        label, out_table, _ = make_lesion_label(masks, ct.geometry, LesionControls(
            kind="hemorrhage", count=2, volume_ml=(8.0, 15.0), subtypes=subtypes), rng=np.random.default_rng(i),
            roles=roles)
        assert out_table == table
        real.append(ct.replace(case_id=f"ct{i}", label=label, label_table=table))
    write_dataset(real, tmp_path / "ich")
    data = load_dataset(tmp_path / "ich")
    assert data[0].label_table.names == table.names
    gen = api.get_generator("lesion-insertion", data=data, mass_effect=0.0)
    assert gen.task.label_table == table and not gen.task.is_preset
    controls = LesionControls(kind="hemorrhage", volume_ml=(8.0, 15.0), subtypes=("intraparenchymal", "subdural"))
    cases = list(gen.synthesize(3, seed=0, controls=controls))
    wanted = {"intraparenchymal": 2, "subdural": 5}
    for c in cases:
        assert c.label_table.names == table.names and c.channel_names == ["CT"]
        for info in c.metadata["lesions"]:
            assert info["label_value"] == wanted[info["subtype"]]
            assert (c.label == info["label_value"]).any()
