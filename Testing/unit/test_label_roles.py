"""Tasks from the user's data: label roles by name, channel kinds, conventions, dataset layouts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from SyntheticImagingLib.cases import Case, Geometry, LabelTable, LesionKind, Modality
from SyntheticImagingLib.channel_names import channel_kind, find_channel
from SyntheticImagingLib.errors import DatasetError, InputError, LabelError
from SyntheticImagingLib.io.datasets import load_dataset
from SyntheticImagingLib.io.images import write_image
from SyntheticImagingLib.label_roles import (
    EDEMA,
    ENHANCING,
    NECROSIS,
    NON_ENHANCING,
    brats_regions,
    match_roles,
    parse_label_map,
    role_for_name,
)
from SyntheticImagingLib.tasks import TASKS, TaskPreset, task_for_data

BRATS2013 = Path(__file__).resolve().parents[3] / "shared" / "data" / "brats2013_multiclass"


@pytest.mark.parametrize("name,kind,role", [
    ("Enhancing Tumour", LesionKind.TUMOR, ENHANCING),
    ("ET", LesionKind.TUMOR, ENHANCING),
    ("NCR/NET", LesionKind.TUMOR, "necrotic and non-enhancing tumor core"),
    ("non-enhancing", LesionKind.TUMOR, NON_ENHANCING),
    ("Oedema", LesionKind.TUMOR, EDEMA),
    ("edema", LesionKind.HEMORRHAGE, "perihematomal edema"),
    ("SDH", LesionKind.HEMORRHAGE, "subdural hemorrhage"),
    ("extradural haematoma", LesionKind.HEMORRHAGE, "epidural hemorrhage"),
    ("Intracerebral", LesionKind.HEMORRHAGE, "intraparenchymal hemorrhage"),
    ("liver", LesionKind.TUMOR, None),
])
def test_role_for_name_tolerates_case_spelling_and_abbreviations(name: str, kind: LesionKind, role: str | None) -> None:
    assert role_for_name(name, kind) == role


def test_unmatched_names_list_what_failed_and_how_to_map() -> None:
    table = LabelTable({1: "blob", 2: "ring", 4: "ET"})
    with pytest.raises(LabelError) as err:
        match_roles(table, LesionKind.TUMOR)
    text = str(err.value)
    assert "1 'blob'" in text and "2 'ring'" in text and "'ET'" not in text.split("Fix")[0]
    assert "--label-map" in text and "brats2013" in text
    roles = match_roles(table, LesionKind.TUMOR, label_map="necrosis=1,edema=2")
    assert roles.roles == {1: NECROSIS, 2: EDEMA, 4: ENHANCING}
    assert roles.table.names == table.names  # the user's names are kept


def test_label_map_errors_name_the_bad_item() -> None:
    table = LabelTable({1: "a", 2: "b"})
    with pytest.raises(LabelError, match="not NAME=VALUE"):
        parse_label_map("edema:2")
    with pytest.raises(LabelError, match="no tumor label role"):
        match_roles(table, LesionKind.TUMOR, label_map="spleen=1")
    with pytest.raises(LabelError, match="values \\[1, 2\\]"):
        match_roles(table, LesionKind.TUMOR, label_map="edema=7")
    with pytest.raises(LabelError, match="one role"):
        match_roles(LabelTable({1: "edema", 2: "ED"}), LesionKind.TUMOR)


def test_single_unnamed_label_is_the_whole_lesion() -> None:
    assert match_roles(LabelTable({1: "label 1"}), LesionKind.TUMOR).roles == {1: "tumor"}
    assert match_roles(LabelTable({3: "label 3"}), LesionKind.HEMORRHAGE).roles == {3: "hemorrhage"}


def test_brats_regions_follow_the_table() -> None:
    b13 = match_roles(LabelTable({1: "necrosis", 2: "edema", 3: "non-enhancing", 4: "enhancing"}), LesionKind.TUMOR)
    assert brats_regions(b13) == {"whole tumor": [1, 2, 3, 4], "tumor core": [1, 3, 4], "enhancing tumor": [4]}
    b17 = match_roles(LabelTable({1: "NCR/NET", 2: "ED", 4: "ET"}), LesionKind.TUMOR)
    assert brats_regions(b17) == {"whole tumor": [1, 2, 4], "tumor core": [1, 4], "enhancing tumor": [4]}
    assert brats_regions(match_roles(LabelTable({1: "tumor"}), LesionKind.TUMOR)) == {}
    ich = match_roles(LabelTable({1: "EDH", 2: "IPH"}), LesionKind.HEMORRHAGE)
    assert brats_regions(ich) == {}


@pytest.mark.parametrize("name,kind", [("FLAIR", "FLAIR"), ("t2_flair", "FLAIR"), ("Flair_subtrMeanDivStd", "FLAIR"),
                                       ("T1c_subtrMeanDivStd", "T1c"), ("t1ce", "T1c"), ("T1Gd", "T1c"), ("T1", "T1"),
                                       ("T2w", "T2"), ("ct", "CT"), ("ADC", None)])
def test_channel_kinds(name: str, kind: str | None) -> None:
    assert channel_kind(name) == kind


def test_find_channel_by_kind() -> None:
    assert find_channel(["Flair_x", "T1c_x"], "FLAIR") == "Flair_x"
    with pytest.raises(InputError, match="no single channel"):
        find_channel(["a", "b"], "FLAIR")


def _case(channels: tuple[str, ...], table: LabelTable, values: list[int], modality: Modality = Modality.MR) -> Case:
    label = np.zeros((4, 4, 4), np.int16)
    for i, v in enumerate(values):
        label[1, i // 4, i % 4] = v
    return Case("c", {c: np.ones((4, 4, 4), np.float32) for c in channels}, Geometry(), modality=modality,
                label=label, label_table=table)


def test_task_for_data_keeps_presets_and_takes_users_tables() -> None:
    brats18 = _case(("FLAIR", "T1"), LabelTable({1: "tumor"}), [1])
    assert task_for_data([brats18]) is TASKS["brain-tumor-mri"]
    ich = LabelTable({1: "EDH", 2: "IPH", 3: "IVH", 4: "SAH", 5: "SDH"})
    ct = task_for_data([_case(("CT",), ich, [1, 2, 3, 4, 5], Modality.CT)])
    assert ct.lesion_kind is LesionKind.HEMORRHAGE and ct.label_table == ich and ct.channels == ("CT",)
    assert ct.roles.value_of("subdural hemorrhage") == 5
    assert TaskPreset.from_dict(json.loads(json.dumps(ct.to_dict()))) == ct
    with pytest.raises(InputError, match="different channels"):
        task_for_data([brats18, _case(("FLAIR",), LabelTable({1: "tumor"}), [1])])
    with pytest.raises(LabelError, match="not recognised"):
        task_for_data([_case(("FLAIR",), LabelTable({1: "label 1", 2: "label 2"}), [1, 2])])


def _write_case(folder: Path, files: dict[str, np.ndarray]) -> None:
    folder.mkdir(parents=True)
    for name, array in files.items():
        write_image(folder / name, array, Geometry())


def test_folder_with_label_and_brain_mask_is_not_ambiguous(tmp_path: Path) -> None:
    img = np.random.default_rng(0).random((6, 6, 6)).astype(np.float32) + 1
    lab = np.zeros((6, 6, 6), np.uint8)
    lab[2:4, 2:4, 2:4] = 1
    brain = np.zeros((6, 6, 6), np.uint8)
    brain[1:5, 1:5, 1:5] = 1
    for i in range(2):
        _write_case(tmp_path / f"case{i}", {"FLAIR.nii.gz": img, "T1.nii.gz": img, "GT.nii.gz": lab,
                                            "brainmask.nii.gz": brain})
    ds = load_dataset(tmp_path)
    case = ds[0]
    assert case.channel_names == ["FLAIR", "T1"]
    assert case.brain_mask is not None and int(case.brain_mask.sum()) == 64
    assert ds.entries[0].label is not None and ds.entries[0].label.name == "GT.nii.gz"


def test_nnunet_v2_dataset_json(tmp_path: Path) -> None:
    (tmp_path / "imagesTr").mkdir()
    (tmp_path / "labelsTr").mkdir()
    img = np.full((5, 5, 5), 40.0, np.float32)
    lab = np.zeros((5, 5, 5), np.uint8)
    lab[1, 1, 1], lab[2, 2, 2] = 1, 5
    for case in ("ich_001", "ich_002"):
        write_image(tmp_path / "imagesTr" / f"{case}_0000.nii.gz", img, Geometry())
        write_image(tmp_path / "labelsTr" / f"{case}.nii.gz", lab, Geometry())
    (tmp_path / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "CT"}, "labels": {"background": 0, "EDH": 1, "IPH": 2, "IVH": 3, "SAH": 4, "SDH": 5},
        "numTraining": 2, "file_ending": ".nii.gz"}))
    ds = load_dataset(tmp_path)
    assert ds.case_ids == ["ich_001", "ich_002"]
    case = ds[1]
    assert case.channel_names == ["CT"] and case.label_table.names == {1: "EDH", 2: "IPH", 3: "IVH", 4: "SAH",
                                                                       5: "SDH"}
    data = json.loads((tmp_path / "dataset.json").read_text())
    (tmp_path / "dataset.json").write_text(json.dumps({**data, "channel_names": {"0": "CT", "1": "CTA"}}))
    with pytest.raises(DatasetError, match="channel 'CTA' of case ich_001 is missing"):
        load_dataset(tmp_path)


def test_unnamed_multiclass_labels_need_a_convention() -> None:
    if not BRATS2013.exists():
        pytest.skip("shared BRATS 2013 data not present")
    ds = load_dataset(BRATS2013)  # auto layout: channels by file stem, brainmask recognised
    case = ds[0]
    assert case.brain_mask is not None and ds.entries[0].label is not None
    assert ds.entries[0].label.name == "OTMultiClass.nii.gz"
    with pytest.raises(LabelError, match="--labels brats2013"):
        task_for_data([case])
    named = load_dataset(BRATS2013, labels="brats2013")
    task = task_for_data([named[0]])
    assert task.channels == ("Flair_subtrMeanDivStd", "T1c_subtrMeanDivStd")
    assert task.roles.roles == {1: NECROSIS, 2: EDEMA, 3: NON_ENHANCING, 4: ENHANCING}
    assert set(np.unique(named[0].label)) == {0, 1, 2, 3, 4}
