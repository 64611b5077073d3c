"""Logic of the SyntheticImaging module: MRML nodes <-> library cases, results -> table and plot nodes, and the
Python-console API. Usable without the widget (and, for everything but the views, without the application:
the tests run it on a bare MRML scene with slicer-core).

Python console::

    logic = slicer.util.getModuleLogic("SyntheticImaging")
    case = logic.caseFromNodes([flair, t1], segmentation, task="brain-tumor-mri")     # nodes -> Case
    nodes = logic.caseToNodes(case)                                                     # Case -> CaseNodes
    ckpt = logic.train([([flair, t1], segmentation)], task="brain-tumor-mri", family="gan3d",
                       outDir="/tmp/gen", steps=200)                       # scene cases (or a dataset folder)
    synthetic = logic.synthesize(ckpt, task="brain-tumor-mri", n=2, seed=0, location=pointListNode)
    tables = logic.evaluate("/data/train", "/data/test", synthetic, outDir="/tmp/eval")  # name -> table node
    nodes = logic.loadAdherenceCase("/tmp/eval", "synthetic_0001")    # label + the segmenter's prediction
    logic.showAdherenceCase(nodes)
    ranking = logic.rankGenerators("/data/train", "/data/test", {"gan": "/gen/gan", "l2i": "/gen/l2i"},
                                   outDir="/tmp/ranking")                  # name -> table node ("ranking" first)
    logic.exportDicom(synthetic, "/tmp/dicom", addToDatabase=True)

Long jobs (train, synthesize, evaluate, export-dicom) run the library's CLI in a separate process, the same
way the panel does; from the console they block until done and print their progress.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import math
import re
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import slicer
import vtk

from SyntheticImagingLib.cases import Case, Geometry, LabelTable, LesionKind, Modality
from SyntheticImagingLib.errors import GeometryError, InputError
from SyntheticImagingLib.io import load_dataset, write_dataset
from SyntheticImagingLib.io.datasets import Dataset, infer_modality
from SyntheticImagingLib.io.seg_nrrd import DEFAULT_COLORS
from SyntheticImagingLib.tasks import get_task

from . import results as resultsLib
from .jobs import BackgroundJob, JobEvent, JobOutcome, cli_command, format_status

try:
    from slicer.ScriptedLoadableModule import ScriptedLoadableModuleLogic
except ImportError:  # slicer-core (MRML without the application): the same logic runs on a bare scene
    ScriptedLoadableModuleLogic = object  # type: ignore[assignment,misc]

__all__ = ["SyntheticImagingLogic", "CaseNodes", "geometryFromVolumeNode"]

#: Node attribute names recording where a node came from (not set on reader-study nodes, which stay blind).
ATTRIBUTE_CASE_ID = "SyntheticImaging.CaseId"
ATTRIBUTE_DATASET = "SyntheticImaging.Dataset"
ATTRIBUTE_CHANNEL = "SyntheticImaging.Channel"
#: Marks the table and plot nodes made from an evaluation (replaced when results are shown again).
ATTRIBUTE_RESULT = "SyntheticImaging.Result"
#: CT brain window (width, level) in HU.
CT_WINDOW = (80.0, 40.0)
#: Name and colour (RGB 0..1) of the adherence check's prediction overlay: cyan, apart from every label colour.
PREDICTION_SEGMENT_NAME = "reference segmenter prediction"
PREDICTION_COLOR = (0.1, 0.9, 1.0)
#: The checks the module runs by default (adherence shares the utility check's reference segmenter).
MODULE_CHECKS = ("utility", "adherence", "fidelity", "privacy")


@dataclasses.dataclass
class CaseNodes:
    """The nodes showing one case: a scalar volume per channel, the segmentation (None without a label) and, for a
    synthetic case of an evaluation, the reference segmenter's prediction (adherence check) as a second
    segmentation."""

    caseId: str
    volumes: dict[str, Any]
    segmentation: Any | None = None
    prediction: Any | None = None

    @property
    def referenceVolume(self) -> Any:
        """The first channel's volume (the grid of the segmentation)."""
        return next(iter(self.volumes.values()))

    def nodes(self) -> list[Any]:
        """All the nodes."""
        return [*self.volumes.values(), *[n for n in (self.segmentation, self.prediction) if n is not None]]


def _matrix(vtkMatrix: vtk.vtkMatrix4x4) -> np.ndarray:
    return slicer.util.arrayFromVTKMatrix(vtkMatrix)


def _toWorld(node: Any) -> np.ndarray:
    """4x4 from the node's own coordinates to world (identity without a parent transform)."""
    parent = node.GetParentTransformNode()
    if parent is None:
        return np.eye(4)
    if not parent.IsTransformToWorldLinear():
        raise GeometryError(f"{node.GetName()!r} is under a non-linear transform", where=node.GetName(),
                            fix="harden the transform (Data module: right-click the node > Harden transform)")
    m = vtk.vtkMatrix4x4()
    parent.GetMatrixTransformToWorld(m)
    return _matrix(m)


def _ijkToWorld(volumeNode: Any) -> np.ndarray:
    m = vtk.vtkMatrix4x4()
    volumeNode.GetIJKToRASMatrix(m)
    return _toWorld(volumeNode) @ _matrix(m)


def geometryFromVolumeNode(volumeNode: Any) -> Geometry:
    """The library geometry (LPS) of a volume node's voxel grid in world coordinates (a linear parent transform is
    applied; a non-linear or shearing one is refused: nothing is resampled silently)."""
    ijkToWorld = _ijkToWorld(volumeNode)
    axes = ijkToWorld[:3, :3] / np.linalg.norm(ijkToWorld[:3, :3], axis=0)[None, :]
    if not np.allclose(axes.T @ axes, np.eye(3), atol=1e-4):
        raise GeometryError(f"{volumeNode.GetName()!r}: its voxel axes are not orthogonal (sheared by a transform)",
                            where=volumeNode.GetName(), fix="harden and resample the volume first")
    return Geometry.from_ijk_to_ras(ijkToWorld)


def _safeId(name: str) -> str:
    # case ids become folder names
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "case"


def _ids(segmentationNode: Any) -> list[str]:
    ids = vtk.vtkStringArray()
    segmentationNode.GetSegmentation().GetSegmentIDs(ids)
    return [ids.GetValue(i) for i in range(ids.GetNumberOfValues())]


def _robustWindow(volumeNode: Any, array: np.ndarray, modality: Modality) -> None:
    # One fixed rule for every case (also in the reader study: real and synthetic must look alike on screen)
    display = volumeNode.GetDisplayNode()
    if display is None:
        return
    display.SetAutoWindowLevel(False)
    if modality == Modality.CT:
        display.SetWindowLevel(*CT_WINDOW)
        return
    values = array[array != 0]
    if values.size == 0:
        values = array.ravel()
    lo, hi = (float(v) for v in np.percentile(values, [1.0, 99.5]))
    display.SetWindowLevel(max(hi - lo, 1e-6), (hi + lo) / 2)


class SyntheticImagingLogic(ScriptedLoadableModuleLogic):
    """Everything the module does, callable without its panel (see the module docstring for console use)."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        self.lastSyntheticDataset: Path | None = None
        self.lastEvaluation: Path | None = None

    def getParameterNode(self) -> Any:
        """The module's parameter node, wrapped (see :mod:`.parameters`)."""
        from .parameters import SyntheticImagingParameterNode

        return SyntheticImagingParameterNode(super().getParameterNode())

    # -- MRML -> Case ------------------------------------------------------------------------------------------
    @staticmethod
    def nodesGeometryProblems(volumeNodes: Sequence[Any], segmentationNode: Any | None = None) -> list[str]:
        """What keeps these nodes from forming one case (empty when they do): channels on different grids, a
        segmentation not aligned with them, different transforms. Nothing is ever resampled to hide these."""
        problems: list[str] = []
        volumes = list(volumeNodes)
        if not volumes:
            return ["no volume selected"]
        ref = volumes[0]
        try:
            refGeometry = geometryFromVolumeNode(ref)
        except GeometryError as err:
            return [str(err)]
        refShape = slicer.util.arrayFromVolume(ref).shape
        for node in volumes[1:]:
            try:
                diffs = geometryFromVolumeNode(node).differences(refGeometry)
            except GeometryError as err:
                problems.append(str(err))
                continue
            shape = slicer.util.arrayFromVolume(node).shape
            if shape != refShape:
                diffs.insert(0, f"shape (z,y,x) {shape} vs {refShape}")
            if diffs:
                problems.append(f"{node.GetName()!r} is not on the grid of {ref.GetName()!r}: " + "; ".join(diffs))
        if segmentationNode is None:
            return problems
        if segmentationNode.IsA("vtkMRMLLabelMapVolumeNode"):  # a labelmap must share the grid exactly
            return problems + SyntheticImagingLogic.nodesGeometryProblems([ref, segmentationNode])
        try:
            segToRef = np.linalg.inv(_ijkToWorld(ref)) @ _toWorld(segmentationNode)
        except GeometryError as err:
            return problems + [str(err)]
        for segmentId in _ids(segmentationNode):
            image = segmentationNode.GetBinaryLabelmapInternalRepresentation(segmentId)
            if image is None:
                continue  # no labelmap yet (e.g. a closed surface): it is made on the reference grid
            m = vtk.vtkMatrix4x4()
            image.GetImageToWorldMatrix(m)
            rel = segToRef @ _matrix(m)  # segment voxel index -> reference voxel index
            if not (np.allclose(rel[:3, :3], np.eye(3), atol=1e-3)
                    and np.allclose(rel[:3, 3], np.round(rel[:3, 3]), atol=1e-3)):
                name = segmentationNode.GetSegmentation().GetSegment(segmentId).GetName()
                problems.append(f"segment {name!r} of {segmentationNode.GetName()!r} is not on the voxel grid of "
                                f"{ref.GetName()!r} (different spacing, orientation or a sub-voxel shift); "
                                "fix: Segment Editor > Specify geometry > source volume, or resample")
        return problems

    def caseFromNodes(self, volumeNodes: Any, segmentationNode: Any | None = None, *, caseId: str | None = None,
                      task: str | None = None, channelNames: Sequence[str] | None = None,
                      modality: Modality | str | None = None, lesionKind: LesionKind | str | None = None) -> Case:
        """One library case from scene nodes.

        Args:
            volumeNodes: a scalar volume node or a list of them, one per channel, all on one voxel grid.
            segmentationNode: a segmentation node (segment *i* becomes label value *i + 1*; a later segment wins
                where segments overlap) or a labelmap volume node, or None.
            caseId: the case id (default: from the segmentation's or first volume's name).
            task: task preset: names the channels and gives modality, lesion kind and label names.
            channelNames: channel names (default: the task's when the count matches, else the node names).
            modality: MR or CT (default: the task's, else guessed from intensities).
            lesionKind: tumor or hemorrhage (default: the task's, else tumor).

        Raises:
            GeometryError: the nodes are not on one grid (see :meth:`nodesGeometryProblems`).
        """
        volumes = [volumeNodes] if hasattr(volumeNodes, "GetClassName") else list(volumeNodes)
        for node in volumes:
            if node.IsA("vtkMRMLLabelMapVolumeNode") or not node.IsA("vtkMRMLScalarVolumeNode"):
                raise InputError(f"{node.GetName()!r} is not a scalar image volume", where=node.GetName(),
                                 fix="pick image volumes as channels and the label as the segmentation")
            if node.GetImageData() is None or node.GetImageData().GetNumberOfScalarComponents() != 1:
                raise InputError(f"{node.GetName()!r} has no single-component image data", where=node.GetName())
        problems = self.nodesGeometryProblems(volumes, segmentationNode)
        if problems:
            raise GeometryError("; ".join(problems), where=caseId or (volumes[0].GetName() if volumes else None),
                                fix="put all channels and the segmentation on one voxel grid first")
        preset = get_task(task) if task else None
        if channelNames is None:
            channelNames = (list(preset.channels) if preset and len(preset.channels) == len(volumes)
                            else [n.GetName() for n in volumes])
        if len(set(channelNames)) != len(volumes):
            raise InputError(f"need {len(volumes)} distinct channel names, got {list(channelNames)}")
        ref = volumes[0]
        channels = {name: np.array(slicer.util.arrayFromVolume(node), dtype=np.float32)
                    for name, node in zip(channelNames, volumes)}
        first = next(iter(channels.values()))
        modality = Modality(modality) if modality else (preset.modality if preset else infer_modality(first))
        lesionKind = LesionKind(lesionKind) if lesionKind else (preset.lesion_kind if preset else LesionKind.TUMOR)
        label, table, segmentNames = self._labelFromNode(segmentationNode, ref, preset)
        source = segmentationNode if segmentationNode is not None else ref
        metadata: dict[str, Any] = {"source": "3D Slicer scene", "nodes": [n.GetName() for n in volumes]}
        if segmentNames:
            metadata["segments"] = segmentNames
        case = Case(case_id=_safeId(caseId or source.GetName()), channels=channels,
                    geometry=geometryFromVolumeNode(ref), modality=modality, lesion_kind=lesionKind, label=label,
                    label_table=table, metadata=metadata)
        return case.validate()

    @staticmethod
    def _labelFromNode(node: Any | None, ref: Any, preset: Any | None) -> tuple[np.ndarray | None, LabelTable,
                                                                                   list[str]]:
        default = preset.label_table if preset else LabelTable({1: "tumor"})
        if node is None:
            return None, default, []
        if node.IsA("vtkMRMLLabelMapVolumeNode"):
            label = np.rint(slicer.util.arrayFromVolume(node)).astype(np.int16)
            values = [int(v) for v in np.unique(label) if v != 0]
            colors = node.GetDisplayNode().GetColorNode() if node.GetDisplayNode() is not None else None
            names = {v: (colors.GetColorName(v) if colors is not None else "") or f"label {v}" for v in values}
            if values == [1] and len(default.names) == 1:
                names = dict(default.names)
            return label, LabelTable(names), [names[v] for v in values]
        shape = slicer.util.arrayFromVolume(ref).shape
        label = np.zeros(shape, dtype=np.int16)
        names: dict[int, str] = {}
        segmentation = node.GetSegmentation()
        for i, segmentId in enumerate(_ids(node)):
            mask = slicer.util.arrayFromSegmentBinaryLabelmap(node, segmentId, ref)
            label[mask > 0] = i + 1
            names[i + 1] = segmentation.GetSegment(segmentId).GetName()
        segmentNames = list(names.values())
        if len(names) == 1 and len(default.names) == 1:
            names = dict(default.names)  # one drawn lesion is the task's lesion ("tumor"), whatever its name
        return label, LabelTable(names), segmentNames

    # -- Case -> MRML ------------------------------------------------------------------------------------------
    def caseToNodes(self, case: Case, *, name: str | None = None, showSurface: bool = True,
                    withLabel: bool = True, provenance: bool = True) -> CaseNodes:
        """Scene nodes showing a case: one scalar volume per channel (on the case's grid) and a segmentation with
        one named segment per label value.

        Args:
            case: the case.
            name: node name prefix (default: the case id).
            showSurface: also build the segments' closed surfaces (3D view).
            withLabel: add the segmentation.
            provenance: record case id and channel as node attributes (off for the blinded reader study).
        """
        prefix = name or case.case_id
        ijkToRAS = case.geometry.ijk_to_ras()
        volumes: dict[str, Any] = {}
        for channel, array in case.channels.items():
            node = slicer.util.addVolumeFromArray(np.ascontiguousarray(array, dtype=np.float32), ijkToRAS=ijkToRAS,
                                                  name=f"{prefix} {channel}" if len(case.channels) > 1 or
                                                  provenance else prefix,
                                                  nodeClassName="vtkMRMLScalarVolumeNode")
            _robustWindow(node, array, case.modality)
            if provenance:
                node.SetAttribute(ATTRIBUTE_CASE_ID, case.case_id)
                node.SetAttribute(ATTRIBUTE_CHANNEL, channel)
                if case.metadata.get("dataset"):
                    node.SetAttribute(ATTRIBUTE_DATASET, str(case.metadata["dataset"]))
            volumes[channel] = node
        nodes = CaseNodes(case.case_id, volumes)
        if withLabel and case.label is not None:
            nodes.segmentation = self._segmentationFromLabel(case, nodes.referenceVolume, f"{prefix} segmentation",
                                                             showSurface)
            if provenance:
                nodes.segmentation.SetAttribute(ATTRIBUTE_CASE_ID, case.case_id)
        return nodes

    def _segmentationFromLabel(self, case: Case, reference: Any, name: str, showSurface: bool) -> Any:
        node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
        node.CreateDefaultDisplayNodes()
        node.SetReferenceImageGeometryParameterFromVolumeNode(reference)
        segmentation = node.GetSegmentation()
        for value, labelName in case.label_table.names.items():
            color = DEFAULT_COLORS.get(labelName)
            segmentId = (segmentation.AddEmptySegment(labelName, labelName, color) if color
                         else segmentation.AddEmptySegment(labelName, labelName))
            mask = (case.label == value).astype(np.uint8)
            slicer.util.updateSegmentBinaryLabelmapFromArray(mask, node, segmentId, reference)
        if showSurface:
            node.CreateClosedSurfaceRepresentation()
        return node

    def casesToNodes(self, cases: Sequence[Case] | Dataset, **kwargs: Any) -> list[CaseNodes]:
        """:meth:`caseToNodes` for each case."""
        return [self.caseToNodes(case, **kwargs) for case in cases]

    def loadDatasetCase(self, dataset: str | Path, caseId: str | None = None, *, index: int = 0,
                        **kwargs: Any) -> CaseNodes:
        """One case of a dataset folder as nodes (by id, else by position)."""
        ds = load_dataset(dataset)
        case = ds.subset([caseId])[0] if caseId else ds[index]
        case.metadata.setdefault("dataset", str(dataset))
        return self.caseToNodes(case, **kwargs)

    def removeCaseNodes(self, caseNodes: CaseNodes | None) -> None:
        """Remove a case's nodes from the scene."""
        for node in (caseNodes.nodes() if caseNodes else []):
            if node is not None and node.GetScene() is not None:
                slicer.mrmlScene.RemoveNode(node)

    # -- adherence: a synthetic case with its label and the reference segmenter's prediction -------------------
    def predictionToSegmentation(self, path: str | Path, name: str, *, color: Sequence[float] = PREDICTION_COLOR,
                                 showSurface: bool = False) -> Any:
        """A segmentation node with one segment (:data:`PREDICTION_SEGMENT_NAME`) from a 0/1 mask file, on the
        file's own grid: the adherence check saves predictions on its check grid, which keeps the physical
        position, so the mask overlays the case as loaded from its dataset."""
        from SyntheticImagingLib.io import read_image

        mask, geometry = read_image(path)
        grid = slicer.util.addVolumeFromArray((mask > 0).astype(np.uint8), ijkToRAS=geometry.ijk_to_ras(),
                                              name=f"{name} grid", nodeClassName="vtkMRMLLabelMapVolumeNode")
        try:
            node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
            node.CreateDefaultDisplayNodes()
            node.SetReferenceImageGeometryParameterFromVolumeNode(grid)
            segmentId = node.GetSegmentation().AddEmptySegment("prediction", PREDICTION_SEGMENT_NAME,
                                                               [float(c) for c in color])
            slicer.util.updateSegmentBinaryLabelmapFromArray((mask > 0).astype(np.uint8), node, segmentId, grid)
        finally:
            slicer.mrmlScene.RemoveNode(grid)
        if showSurface:
            node.CreateClosedSurfaceRepresentation()
        return node

    @staticmethod
    def styleAdherenceOverlay(caseNodes: CaseNodes, *, outlineThickness: int = 3) -> None:
        """Label filled (and outlined) in its colours, the prediction as a thick outline only, both in the slice
        views: where they disagree, the label's fill shows outside the prediction's outline or the outline
        encloses unfilled tissue."""
        for node, fill in ((caseNodes.segmentation, True), (caseNodes.prediction, False)):
            if node is None:
                continue
            display = node.GetDisplayNode()
            if display is None:
                node.CreateDefaultDisplayNodes()
                display = node.GetDisplayNode()
            display.SetVisibility(True)
            display.SetVisibility2DFill(fill)
            display.SetVisibility2DOutline(True)
            display.SetOpacity2DOutline(1.0)
            if fill:
                display.SetOpacity2DFill(0.5)
            else:
                display.SetSliceIntersectionThickness(outlineThickness)

    def loadAdherenceCase(self, evaluation: str | Path, caseId: str | None = None, *,
                          dataset: str | Path | None = None, showSurface: bool = False) -> CaseNodes:
        """A synthetic case of an evaluation with its label and, as a second segmentation, the reference
        segmenter's prediction saved by the adherence check, styled by :meth:`styleAdherenceOverlay`.

        Args:
            evaluation: the evaluation folder (``report.json`` with the adherence check).
            caseId: the synthetic case (default: the first of the adherence per-case table).
            dataset: the synthetic dataset folder (default: the one the report names).
            showSurface: also build closed surfaces (3D view).

        Raises:
            InputError: the evaluation has no adherence predictions, or none for ``caseId``, or no dataset.
        """
        folder = Path(evaluation)
        report = resultsLib.load_report(folder)
        predictions = resultsLib.adherence_predictions(report)
        if not predictions:
            raise InputError(f"{folder} holds no prediction of the adherence check", where=str(folder),
                             fix="run the checks with 'adherence' selected")
        caseId = caseId or next(iter(predictions))
        if caseId not in predictions:
            raise InputError(f"no adherence prediction for case {caseId!r}", where=str(folder),
                             fix=f"pick one of {list(predictions)[:10]}")
        dataset = dataset or resultsLib.dataset_roots(report).get("synthetic")
        if not dataset:
            raise InputError("the report does not say where the synthetic set is", where=str(folder),
                             fix="give the synthetic dataset folder")
        nodes = self.loadDatasetCase(dataset, caseId, showSurface=showSurface)
        try:
            nodes.prediction = self.predictionToSegmentation(folder / predictions[caseId],
                                                             f"{caseId} {PREDICTION_SEGMENT_NAME}",
                                                             showSurface=showSurface)
        except Exception:
            self.removeCaseNodes(nodes)
            raise
        nodes.prediction.SetAttribute(ATTRIBUTE_CASE_ID, caseId)
        self.styleAdherenceOverlay(nodes)
        return nodes

    @staticmethod
    def adherenceCaseIds(evaluation: str | Path | Mapping[str, Any]) -> list[str]:
        """The synthetic cases of an evaluation whose adherence prediction was saved, in the per-case table's order."""
        report = evaluation if isinstance(evaluation, Mapping) else resultsLib.load_report(evaluation)
        return list(resultsLib.adherence_predictions(report))

    @staticmethod
    def adherenceRow(evaluation: str | Path | Mapping[str, Any], caseId: str) -> dict[str, Any] | None:
        """The adherence check's per-case row of a synthetic case (Dice, detection, volume error...)."""
        report = evaluation if isinstance(evaluation, Mapping) else resultsLib.load_report(evaluation)
        result = resultsLib.check_results(report).get("adherence", {})
        rows = resultsLib.table_rows((result.get("tables") or {}).get("per_case")) or []
        return next((r for r in rows if str(r.get("case_id")) == caseId), None)

    # -- datasets ------------------------------------------------------------------------------------------------
    @staticmethod
    def describeDataset(path: str | Path) -> dict[str, Any]:
        """What a dataset folder holds (reads its first case only)."""
        return load_dataset(path).describe()

    @staticmethod
    def datasetProblems(path: str | Path, progress: Callable[[int, int, str], bool] | None = None) -> list[str]:
        """Load every case of a dataset and return what is wrong with each (geometry, labels, unreadable files).
        ``progress(done, total, case_id)`` may return False to stop early."""
        from SyntheticImagingLib.errors import SyntheticImagingError

        ds = load_dataset(path)
        problems = []
        for i, caseId in enumerate(ds.case_ids):
            if progress is not None and progress(i, len(ds), caseId) is False:
                problems.append("(check stopped before the end)")
                break
            try:
                ds[i]
            except SyntheticImagingError as err:
                problems.append(str(err))
        return problems

    def casesFromInput(self, data: Any, task: str | None = None) -> list[Case]:
        """Cases from a list of :class:`CaseNodes`, of ``(volumeNodes, segmentationNode)`` pairs, or of cases."""
        cases: list[Case] = []
        for item in data:
            if isinstance(item, Case):
                cases.append(item)
            elif isinstance(item, CaseNodes):
                cases.append(self.caseFromNodes(list(item.volumes.values()), item.segmentation, caseId=item.caseId,
                                                task=task, channelNames=list(item.volumes)))
            else:
                volumes, segmentation = item
                cases.append(self.caseFromNodes(volumes, segmentation, task=task))
        ids = [c.case_id for c in cases]
        for i, case in enumerate(cases):
            if ids.count(case.case_id) > 1:  # node names repeat easily; folder names must not
                cases[i] = case.replace(case_id=f"{case.case_id}_{i + 1}")
        return cases

    def writeDataset(self, data: Any, outDir: str | Path, *, task: str | None = None,
                     labelFormat: str = "seg.nrrd", overwrite: bool = False,
                     progress: Callable[[int, str], None] | None = None) -> Path:
        """Write scene cases (see :meth:`casesFromInput`) or a dataset folder as a dataset folder with
        ``dataset.json`` (NIfTI images, labels as ``labelFormat``); ``progress(cases written, case id)``."""
        cases = load_dataset(data) if isinstance(data, (str, Path)) else self.casesFromInput(data, task)
        return write_dataset(cases, outDir, label_format=labelFormat, overwrite=overwrite, progress=progress,
                             info={"source": "3D Slicer SyntheticImaging module"})

    def _datasetPath(self, data: Any, task: str | None, workDir: Path, name: str) -> Path:
        """A dataset folder for the CLI: a path as it is, scene cases written under ``workDir``."""
        if data is None or isinstance(data, (str, Path)):
            return Path(data) if data is not None else None  # type: ignore[return-value]
        return self.writeDataset(data, workDir / f"{name}-{_stamp()}", task=task)

    # -- background jobs (the CLI) -----------------------------------------------------------------------------
    @staticmethod
    def cliJob(command: str, options: Mapping[str, Any] | None = None, positional: Sequence[str] = (), *,
               logDir: str | Path | None = None, onEvent: Callable[[JobEvent], None] | None = None) -> BackgroundJob:
        """An (unstarted) CLI job; its log goes to ``logDir/<command>-<time>.log`` (beside, never inside, the
        output folder, which the CLI wants new or empty)."""
        logPath = Path(logDir) / f"{command}-{_stamp()}.log" if logDir else None
        return BackgroundJob(cli_command(command, options, positional), log_path=logPath, on_event=onEvent,
                             name=command)

    def runCli(self, command: str, options: Mapping[str, Any] | None = None, positional: Sequence[str] = (), *,
               logDir: str | Path | None = None, onEvent: Callable[[JobEvent], None] | None = None) -> JobOutcome:
        """Run one CLI call to the end (the console's blocking form), printing progress at most once a second.

        Raises:
            JobError: the job failed (its message and log path are in the error).
        """
        last = [0.0, ""]

        def show(event: JobEvent) -> None:
            if onEvent is not None:
                onEvent(event)
            if event.kind == "progress":
                now = time.monotonic()
                if now - last[0] >= 1.0 or event.stage != last[1] or event.step == event.total:
                    last[:] = [now, event.stage]
                    logging.info(format_status(event))
            elif event.kind == "log" and event.message.strip():
                logging.debug(event.message)

        return self.cliJob(command, options, positional, logDir=logDir, onEvent=show).start().wait().check()

    @staticmethod
    def lesionOptions(*, lesionVolumeMl: float | tuple[float, float] | None = None, lesionCount: int | None = None,
                      location: Any | None = None, subtypes: Sequence[str] | None = None) -> dict[str, Any]:
        """CLI options of the lesion controls. ``location`` is a markups point list (its first point) or an
        ``(R, A, S)`` point in Slicer's world coordinates; the CLI takes LPS millimetres."""
        options: dict[str, Any] = {}
        if lesionVolumeMl is not None:
            low, high = (lesionVolumeMl, lesionVolumeMl) if isinstance(lesionVolumeMl, (int, float)) else lesionVolumeMl
            options["lesion_volume"] = f"{float(low):g}:{float(high):g}"
        if lesionCount is not None:
            options["lesion_count"] = int(lesionCount)
        if location is not None:
            if hasattr(location, "GetNumberOfControlPoints"):
                if location.GetNumberOfControlPoints() < 1:
                    raise InputError(f"the point list {location.GetName()!r} has no point",
                                     fix="place a point where the lesion should be, or pick no location")
                ras = [0.0, 0.0, 0.0]
                location.GetNthControlPointPositionWorld(0, ras)
            else:
                ras = [float(v) for v in location]
            options["location"] = f"{-ras[0]:g},{-ras[1]:g},{ras[2]:g}"  # RAS -> LPS
        if subtypes:
            options["subtypes"] = list(subtypes)
        return options

    def train(self, data: Any, *, task: str, family: str, outDir: str | Path, steps: int | None = None,
              batchSize: int | None = None, device: str = "auto", resume: bool = False) -> Path:
        """Train (or, for training-free families, prepare) a generator; returns its checkpoint folder.

        Args:
            data: a dataset folder, or scene cases (a list of :class:`CaseNodes` or ``(volumes, segmentation)``).
            task: ``"brain-tumor-mri"`` or ``"head-hemorrhage-ct"``.
            family: generator family (e.g. ``"label-to-image"``).
            outDir: checkpoint folder to write.
            steps, batchSize, device, resume: training settings (None: the family's defaults).
        """
        outDir = Path(outDir)
        dataPath = self._datasetPath(data, task, outDir.parent, "training-data")
        self.runCli("train", {"data": dataPath, "task": task, "generator": family, "out": outDir, "steps": steps,
                              "batch_size": batchSize, "device": device, "resume": resume},
                    logDir=outDir.parent / "logs")
        return outDir

    def synthesize(self, generator: str | Path, *, task: str, n: int, seed: int = 0, data: Any = None,
                   outDir: str | Path | None = None, lesionVolumeMl: float | tuple[float, float] | None = None,
                   lesionCount: int | None = None, location: Any | None = None, subtypes: Sequence[str] | None = None,
                   load: bool = True, showSurface: bool = True, device: str = "auto") -> list[CaseNodes]:
        """Synthesize ``n`` labelled cases and load them as nodes (``load=False``: only write them).

        Args:
            generator: a checkpoint folder, or a family name (then ``data`` gives its reference cases).
            task: the task preset.
            n, seed: how many cases, reproducibly.
            data: real cases for training-free families (dataset folder or scene cases).
            outDir: the synthetic dataset folder (default: a new temporary folder); kept in
                ``self.lastSyntheticDataset``.
            lesionVolumeMl, lesionCount, location, subtypes: lesion controls (see :meth:`lesionOptions`).
            device: where a trained generator's network runs (``auto``: the GPU when present, bf16 where native).
        """
        outDir = Path(outDir) if outDir is not None else Path(tempfile.mkdtemp(prefix="SyntheticImaging-")) / "synth"
        dataPath = self._datasetPath(data, task, outDir.parent, "reference-data")
        lesion = self.lesionOptions(lesionVolumeMl=lesionVolumeMl, lesionCount=lesionCount, location=location,
                                    subtypes=subtypes)
        options = {"generator": generator, "data": dataPath, "task": task, "n": int(n), "seed": int(seed),
                   "out": outDir, "label_format": "seg.nrrd", "device": device, **lesion}
        self.runCli("synthesize", options, logDir=outDir.parent / "logs")
        self.lastSyntheticDataset = outDir
        if not load:
            return []
        dataset = load_dataset(outDir)
        return [self.caseToNodes(case.replace(metadata={**case.metadata, "dataset": str(outDir)}),
                                 showSurface=showSurface) for case in dataset]

    def evaluate(self, realTrain: Any, realTest: Any, synthetic: Any, *, outDir: str | Path,
                 checks: Sequence[str] = MODULE_CHECKS, profile: str = "quick",
                 device: str = "auto", task: str | None = None, plots: bool = True) -> dict[str, Any]:
        """Run the checks and return their tables as table nodes (name -> node); with ``plots`` also adds the
        plot chart nodes (Dice per regime with CIs, DCR histograms) to the scene. The adherence check's
        per-case table is ``"adherence per_case"``; :meth:`loadAdherenceCase` shows a case with its prediction.

        ``realTrain``, ``realTest`` and ``synthetic`` are dataset folders or scene cases (see :meth:`train`).
        """
        outDir = Path(outDir)
        work = outDir.parent
        options = {"real_train": self._datasetPath(realTrain, task, work, "real-train"),
                   "real_test": self._datasetPath(realTest, task, work, "real-test"),
                   "synthetic": self._datasetPath(synthetic, task, work, "synthetic"),
                   "out": outDir, "checks": list(checks), "profile": profile, "device": device}
        self.runCli("evaluate", options, logDir=work / "logs")
        self.lastEvaluation = outDir
        tables = self.resultsToTables(outDir)
        if plots:
            self.resultsToPlots(tables)
        return tables

    def rankGenerators(self, realTrain: Any, realTest: Any, syntheticSets: Mapping[str, Any] | Sequence[Any], *,
                       outDir: str | Path, checks: Sequence[str] = MODULE_CHECKS, profile: str = "quick",
                       device: str = "auto", task: str | None = None) -> dict[str, Any]:
        """Evaluate several generators' synthetic sets against one real split and rank them (the library's
        ``rank_generators``, through the CLI's ``evaluate`` with several ``--synthetic`` sets).

        Args:
            realTrain, realTest: dataset folders or scene cases (see :meth:`train`).
            syntheticSets: generator name -> its synthetic set (folder or scene cases), or a list of folders
                (named by folder). A set's folder name is its generator name in the ranking.
            outDir: the ranking folder (``ranking.csv``/``.json``/``.png`` and one report folder per generator).
            checks, profile, device, task: as :meth:`evaluate`.

        Returns:
            Table nodes: ``"ranking"`` (one row per generator, best first) and, per generator, its tables as
            ``"<generator> <table>"`` (e.g. ``"gan adherence per_case"``).
        """
        outDir = Path(outDir)
        work = outDir.parent
        items = list(syntheticSets.items()) if isinstance(syntheticSets, Mapping) else [
            (Path(s).name, s) for s in syntheticSets]
        if len(items) < 2:
            raise InputError("ranking needs two or more synthetic sets", fix="use evaluate() for one set")
        paths = []
        for name, data in items:
            if isinstance(data, (str, Path)) and (Path(data).name == name or not isinstance(syntheticSets, Mapping)):
                paths.append(Path(data))
            else:  # the CLI names a generator by its folder: write the set under its name
                paths.append(self._namedDataset(data, task, work / f"synthetic-sets-{_stamp()}" / _safeId(name)))
        options = {"real_train": self._datasetPath(realTrain, task, work, "real-train"),
                   "real_test": self._datasetPath(realTest, task, work, "real-test"),
                   "synthetic": paths, "out": outDir, "checks": list(checks), "profile": profile,
                   "device": device}
        self.runCli("evaluate", options, logDir=work / "logs")
        self.lastEvaluation = outDir
        return self.rankingToTables(outDir)

    def _namedDataset(self, data: Any, task: str | None, target: Path) -> Path:
        # a copy, not a link: the CLI resolves links before it takes the folder name
        return self.writeDataset(data, target, task=task)

    def rankingToTables(self, ranking: str | Path) -> dict[str, Any]:
        """Table nodes of a ranking folder: ``"ranking"`` first, then each generator's report tables named
        ``"<generator> <table>"``."""
        folder = Path(ranking)
        rows = resultsLib.csv_tables(folder).get("ranking")
        if not rows:
            raise InputError(f"{folder} holds no ranking.csv", where=str(folder),
                             fix="rank two or more synthetic sets first (rankGenerators)")
        nodes = {"ranking": self.tableFromRows("SyntheticImaging ranking", rows)}
        for row in rows:
            name = str(row.get("generator", ""))
            if name and (folder / name / "report.json").exists():
                tables = resultsLib.report_tables(resultsLib.load_report(folder / name))
                nodes.update({f"{name} {table}": self.tableFromRows(f"SyntheticImaging {name} {table}", tableRows)
                              for table, tableRows in tables.items()})
        for node in nodes.values():
            node.SetAttribute(ATTRIBUTE_RESULT, "table")
        return nodes

    def exportDicom(self, synthetic: Any, outDir: str | Path, *, patientPrefix: str | None = None,
                    addToDatabase: bool = True, task: str | None = None) -> Path:
        """Export a synthetic set (folder or scene cases) as DICOM studies (image series + SEG, marked synthetic);
        optionally import them into Slicer's DICOM database."""
        outDir = Path(outDir)
        source = self._datasetPath(synthetic, task, outDir.parent, "export-input")
        self.runCli("export-dicom", {"input": source, "out": outDir, "patient_prefix": patientPrefix or None},
                    logDir=outDir.parent / "logs")
        if addToDatabase:
            self.importIntoDicomDatabase(outDir)
        return outDir

    @staticmethod
    def importIntoDicomDatabase(folder: str | Path) -> None:
        """Add a folder of DICOM files to Slicer's DICOM database (they are indexed, not copied)."""
        from DICOMLib import DICOMUtils

        if slicer.dicomDatabase is None or not slicer.dicomDatabase.isOpen:
            raise RuntimeError("Slicer's DICOM database is not open: open the DICOM module once to create it")
        DICOMUtils.importDicom(str(folder))

    def exportFiles(self, synthetic: Any, outDir: str | Path, *, labelFormat: str = "seg.nrrd",
                    task: str | None = None, progress: Callable[[int, str], None] | None = None) -> Path:
        """Write a synthetic set (folder or scene cases) as NIfTI images with NIfTI or ``.seg.nrrd`` labels."""
        return self.writeDataset(synthetic, outDir, task=task, labelFormat=labelFormat, progress=progress)

    # -- results -> tables and plots ---------------------------------------------------------------------------
    def tableFromRows(self, name: str, rows: Sequence[Mapping[str, Any]], tableNode: Any | None = None) -> Any:
        """A table node holding ``rows`` (number columns as doubles, others as text)."""
        rows = [dict(r) for r in rows]
        node = tableNode or slicer.mrmlScene.AddNewNodeByClass("vtkMRMLTableNode", name)
        node.SetUseColumnNameAsColumnHeader(True)
        table = node.GetTable()
        while table.GetNumberOfColumns():
            table.RemoveColumn(0)
        numeric = set(resultsLib.numeric_columns(rows))
        columns: list[str] = []
        for row in rows:
            columns += [c for c in row if c not in columns]
        for column in columns:
            array = vtk.vtkDoubleArray() if column in numeric else vtk.vtkStringArray()
            array.SetName(str(column))
            for row in rows:
                value = row.get(column)
                if column in numeric:
                    array.InsertNextValue(math.nan if value is None else float(value))
                else:
                    array.InsertNextValue("" if value is None else
                                          f"{value:.4g}" if isinstance(value, float) else str(value))
            table.AddColumn(array)
        node.Modified()
        return node

    def resultsToTables(self, evaluation: str | Path | Mapping[str, Any]) -> dict[str, Any]:
        """Table nodes of an evaluation (its folder or its report dict): ``"summary"`` (one row per headline
        number) and one per check table. Falls back to the folder's CSV files when the report has no tables."""
        if isinstance(evaluation, Mapping):
            tables = resultsLib.report_tables(evaluation)
        else:
            folder = Path(evaluation)
            tables = resultsLib.report_tables(resultsLib.load_report(folder)) if (folder / "report.json").exists() \
                else {}
            if len(tables) <= 1:
                tables.update({k: v for k, v in resultsLib.csv_tables(folder).items() if k not in tables})
        nodes = {name: self.tableFromRows(f"SyntheticImaging {name}", rows) for name, rows in tables.items()}
        for node in nodes.values():
            node.SetAttribute(ATTRIBUTE_RESULT, "table")
        return nodes

    @staticmethod
    def removeResultNodes() -> None:
        """Remove the table and plot nodes made from earlier evaluations."""
        for className in ("vtkMRMLPlotChartNode", "vtkMRMLPlotSeriesNode", "vtkMRMLTableNode"):
            for node in list(slicer.util.getNodesByClass(className)):
                if node.GetAttribute(ATTRIBUTE_RESULT):
                    slicer.mrmlScene.RemoveNode(node)

    def tableRows(self, tableNode: Any) -> list[dict[str, Any]]:
        """Rows of a table node (numbers as floats)."""
        table = tableNode.GetTable()
        out = []
        for r in range(table.GetNumberOfRows()):
            row = {}
            for c in range(table.GetNumberOfColumns()):
                column = table.GetColumn(c)
                row[column.GetName()] = (column.GetValue(r) if column.IsA("vtkDataArray") else
                                         str(column.GetValue(r)))
            out.append(row)
        return out

    def resultsToPlots(self, tables: Mapping[str, Any]) -> dict[str, Any]:
        """Plot chart nodes for an evaluation's tables (table nodes or row lists): Dice per training regime with
        its confidence interval, and histograms of the distances to the closest training record."""
        rows = {name: (self.tableRows(t) if hasattr(t, "GetTable") else list(t)) for name, t in tables.items()}
        return {spec.name: self.chartFromSpec(spec) for spec in resultsLib.plot_specs(rows)}

    def chartFromSpec(self, spec: resultsLib.PlotSpec) -> Any:
        """A plot chart node (with its series and data table) for a plot specification."""
        scene = slicer.mrmlScene
        data = self.tableFromRows(f"SyntheticImaging {spec.name} data", spec.rows)
        chart = scene.AddNewNodeByClass("vtkMRMLPlotChartNode", f"SyntheticImaging {spec.name}")
        data.SetAttribute(ATTRIBUTE_RESULT, "plot data")
        chart.SetAttribute(ATTRIBUTE_RESULT, "chart")
        chart.SetTitle(spec.title)
        chart.SetXAxisTitle(spec.x_title)
        chart.SetYAxisTitle(spec.y_title)
        kinds = {"bar": slicer.vtkMRMLPlotSeriesNode.PlotTypeBar, "line": slicer.vtkMRMLPlotSeriesNode.PlotTypeLine,
                 "scatter": slicer.vtkMRMLPlotSeriesNode.PlotTypeScatter}
        for series in spec.series:
            node = scene.AddNewNodeByClass("vtkMRMLPlotSeriesNode", series.label or series.y)
            node.SetAttribute(ATTRIBUTE_RESULT, "series")
            node.SetAndObserveTableNodeID(data.GetID())
            node.SetXColumnName(spec.x)
            node.SetYColumnName(series.y)
            if spec.labels:
                node.SetLabelColumnName(spec.labels)
            node.SetPlotType(kinds[series.kind])
            if series.kind == "scatter":
                node.SetLineStyle(slicer.vtkMRMLPlotSeriesNode.LineStyleNone)
                node.SetMarkerStyle(slicer.vtkMRMLPlotSeriesNode.MarkerStyleSquare)
            chart.AddAndObservePlotSeriesNodeID(node.GetID())
        return chart

    @staticmethod
    def nearestPair(evaluation: str | Path | Mapping[str, Any], syntheticCaseId: str | None = None
                    ) -> resultsLib.NearestPair | None:
        """The training case closest to a synthetic case, from the privacy check (default: the closest pair of
        all, the one most at risk of being a copy)."""
        report = evaluation if isinstance(evaluation, Mapping) else resultsLib.load_report(evaluation)
        pairs = resultsLib.nearest_pairs(report)
        if syntheticCaseId is not None:
            pairs = [p for p in pairs if p.synthetic_id == syntheticCaseId]
        return pairs[0] if pairs else None

    def loadAlignedCopy(self, evaluation: str | Path, syntheticCaseId: str) -> tuple[CaseNodes, resultsLib.AlignedCopy
                                                                                    ] | None:
        """A synthetic case the privacy check calls a copy, as the check compared it: mirrored if it matched that
        way and registered onto the training patient it copies (saved on that patient's grid, which keeps the
        physical position, so it lies over the patient as loaded from the training set). None when the evaluation
        saved no aligned copy of this case."""
        from SyntheticImagingLib.io import read_image

        folder = Path(evaluation)
        copy = resultsLib.aligned_copies(resultsLib.load_report(folder)).get(syntheticCaseId)
        if copy is None:
            return None
        image, geometry = read_image(folder / copy.image)
        label = read_image(folder / copy.label)[0] > 0 if copy.label else None
        case = Case(case_id=f"{syntheticCaseId} on {copy.training_id}", channels={"aligned": image.astype(np.float32)},
                    geometry=geometry, label=None if label is None else label.astype(np.int16))
        return self.caseToNodes(case, showSurface=False), copy

    @staticmethod
    def datasetRoots(evaluation: str | Path | Mapping[str, Any]) -> dict[str, str]:
        """The dataset folders an evaluation compared (``real_train``, ``real_test``, ``synthetic``)."""
        report = evaluation if isinstance(evaluation, Mapping) else resultsLib.load_report(evaluation)
        return resultsLib.dataset_roots(report)

    # -- reader study ------------------------------------------------------------------------------------------
    @staticmethod
    def readerStudyCase(dataset: str | Path, caseId: str, like: Case | None = None) -> Case:
        """A case for the reader study, on the grid of ``like`` (a synthetic case) so resolution and field of view
        do not give the answer away: resampled to its spacing, cropped or padded around the head to its shape."""
        from SyntheticImagingLib.preprocessing import crop_or_pad, resample_case

        case = load_dataset(dataset).subset([caseId])[0]
        if like is None or (case.shape == like.shape and not case.geometry.differences(like.geometry)):
            return case
        return crop_or_pad(resample_case(case, like.geometry.spacing), like.shape)

    # -- views (need the Slicer application) ---------------------------------------------------------------------
    @staticmethod
    def showCase(caseNodes: CaseNodes) -> None:
        """Show a case in the slice views (segmentation overlaid) and its segments in 3D."""
        from . import views

        views.showCase(caseNodes)

    @staticmethod
    def showAdherenceCase(caseNodes: CaseNodes) -> None:
        """Show a case from :meth:`loadAdherenceCase`: label filled, the segmenter's prediction outlined, the
        slices at the lesion."""
        from . import views

        views.showAdherenceCase(caseNodes)


def _stamp() -> str:
    return datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
