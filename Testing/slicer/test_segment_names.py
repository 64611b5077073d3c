"""The user's names flow through the scene (Slicer-runtime harness, ``runtime/``): channels are the volume nodes'
names, the label table is the segment names with each segment's label value, a case written back to the scene keeps
both, and segment names that mean no label role end in a message box naming them.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

slicer = pytest.importorskip("slicer")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("slicer-core (MRML) is not installed", allow_module_level=True)

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from panel_scenario import PanelScenario  # noqa: E402
from runtime import slicer_runtime  # noqa: E402

from SyntheticImagingLib.cases import Case, Geometry, LabelTable  # noqa: E402
from SyntheticImagingLib.errors import LabelError  # noqa: E402
from SyntheticImagingLib.io.seg_nrrd import write_seg_nrrd  # noqa: E402

SHAPE = (6, 10, 12)
GEOMETRY = Geometry((1.0, 1.2, 2.0), (-5.0, 3.0, 7.5))
BRATS2013 = {1: "necrosis", 2: "edema", 3: "non-enhancing tumor", 4: "enhancing tumor"}


def _label(values: list[int]) -> np.ndarray:
    label = np.zeros(SHAPE, np.int16)
    for i, value in enumerate(values):
        label[i + 1, 2:6, 2 + 2 * i:5 + 2 * i] = value  # overlapping boxes: a later value wins, as in a label map
    return label


def _volumes(names: list[str]) -> list:
    rng = np.random.default_rng(0)
    return [slicer.util.addVolumeFromArray(rng.random(SHAPE).astype(np.float32), ijkToRAS=GEOMETRY.ijk_to_ras(),
                                           name=name) for name in names]


def _drawnSegmentation(reference, names: dict[int, str], label: np.ndarray):
    """Segments added and painted one by one, as the Segment Editor makes them (each on its own layer)."""
    node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", "my segmentation")
    node.CreateDefaultDisplayNodes()
    node.SetReferenceImageGeometryParameterFromVolumeNode(reference)
    for value, name in names.items():
        segmentId = node.GetSegmentation().AddEmptySegment("", name)
        slicer.util.updateSegmentBinaryLabelmapFromArray((label == value).astype(np.uint8), node, segmentId,
                                                         reference)
    return node


def _segments(node) -> list[tuple[str, int]]:
    segmentation = node.GetSegmentation()
    return [(segmentation.GetNthSegment(i).GetName(), segmentation.GetNthSegment(i).GetLabelValue())
            for i in range(segmentation.GetNumberOfSegments())]


def test_channels_are_volume_names_and_labels_are_segment_names():
    with slicer_runtime():
        from SyntheticImagingModule.logic import SyntheticImagingLogic

        logic = SyntheticImagingLogic()
        flair, t1c = _volumes(["Flair", "T1c"])
        label = _label([1, 2, 3, 4])
        segmentation = _drawnSegmentation(flair, BRATS2013, label)
        case = logic.caseFromNodes([flair, t1c], segmentation, task="brain-tumor-mri")
        assert case.channel_names == ["Flair", "T1c"]
        assert case.label_table.names == BRATS2013
        np.testing.assert_array_equal(case.label, label)
        # the cases of a scene form the task the library trains on: the user's channels and labels
        (scene,) = logic.casesFromInput([([flair, t1c], segmentation)], task="brain-tumor-mri")
        from SyntheticImagingLib.tasks import task_for_data

        task = task_for_data([scene], task="brain-tumor-mri")
        assert task.channels == ("Flair", "T1c") and task.label_table.names == BRATS2013
        assert task.roles.value_of("enhancing tumor") == 4
        # volumes named after their case ("case_3 Flair", "case_3 T1c"): the shared case name is not the channel
        named = _volumes(["case_3 Flair", "case_3 T1c"])
        assert logic.caseFromNodes(named, segmentation).channel_names == ["Flair", "T1c"]


def test_stored_label_values_of_a_seg_nrrd_are_kept(tmp_path):
    with slicer_runtime():
        from SyntheticImagingModule.logic import SyntheticImagingLogic

        names = {1: "NCR", 2: "ED", 4: "ET"}
        label = _label([1, 2, 4])
        path = write_seg_nrrd(tmp_path / "label.seg.nrrd", label, GEOMETRY, LabelTable(names))
        volumes = _volumes(["Flair", "T1c"])
        segmentation = slicer.util.loadSegmentation(str(path))
        assert sorted(value for _, value in _segments(segmentation)) == [1, 2, 4]
        case = SyntheticImagingLogic().caseFromNodes(volumes, segmentation, task="brain-tumor-mri")
        assert case.label_table.names == names
        np.testing.assert_array_equal(case.label, label)


@pytest.mark.parametrize("table", [{1: "NCR", 2: "ED", 4: "ET"}, {1: "EDH", 2: "IPH", 3: "IVH", 4: "SAH", 5: "SDH"}])
def test_case_to_scene_to_case_keeps_values_and_names(table):
    with slicer_runtime():
        from SyntheticImagingModule.logic import SyntheticImagingLogic

        logic = SyntheticImagingLogic()
        values = sorted(table)[:-1]  # the last label marks no voxel: its segment is kept, empty, with its value
        hemorrhage = "SDH" in table.values()
        channels = {"CT": np.full(SHAPE, 40.0, np.float32)} if hemorrhage else {
            "Flair": np.ones(SHAPE, np.float32), "T1c": np.full(SHAPE, 2.0, np.float32)}
        case = Case("synthetic_0001", channels, GEOMETRY, modality="CT" if hemorrhage else "MR",
                    lesion_kind="hemorrhage" if hemorrhage else "tumor", label=_label(values),
                    label_table=LabelTable(table))
        nodes = logic.caseToNodes(case, showSurface=False)
        assert _segments(nodes.segmentation) == list(zip(table.values(), table))
        back = logic.caseFromNodes(list(nodes.volumes.values()), nodes.segmentation, caseId=case.case_id,
                                   modality=case.modality, lesionKind=case.lesion_kind)
        assert back.channel_names == case.channel_names
        assert back.label_table.names == table
        np.testing.assert_array_equal(back.label, case.label)
        assert not slicer.util.getNodesByClass("vtkMRMLLabelMapVolumeNode")  # the import's helper node is gone


def test_unknown_segment_names_end_in_a_message_box_naming_them(tmp_path):
    with slicer_runtime() as rt:
        sc = PanelScenario(rt, tmp_path)
        from SyntheticImagingModule.logic import SyntheticImagingLogic

        flair, t1c = _volumes(["Flair", "T1c"])
        names = {1: "blob", 2: "edema", 3: "thing"}
        segmentation = _drawnSegmentation(flair, names, _label([1, 2, 3]))
        with pytest.raises(LabelError, match="'blob'"):
            SyntheticImagingLogic().casesFromInput([([flair, t1c], segmentation)], task="brain-tumor-mri")
        rt.clear_messages()
        sc.addSceneCases([([flair, t1c], segmentation)])
        (error,) = [m.text for m in rt.messages("error")]
        assert error.startswith("The scene cases cannot be written: label names not recognised as tumor labels")
        assert "1 'blob'" in error and "3 'thing'" in error and "--label-map" in error
        assert not sc.p.datasetPath or "scene-cases" not in str(sc.p.datasetPath)
