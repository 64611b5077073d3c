"""MRML nodes <-> library cases: scalar volumes and a segmentation on one voxel grid become a
:class:`SyntheticImagingLib.cases.Case` (geometry from the nodes, nothing resampled), and a case becomes nodes.

Works on a bare MRML scene (slicer-core) as well as in the Slicer application.
"""

from __future__ import annotations

import dataclasses
import datetime
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import slicer
import vtk

from SyntheticImagingLib.cases import Case, Geometry, LabelTable, LesionKind, Modality
from SyntheticImagingLib.errors import GeometryError, InputError
from SyntheticImagingLib.io import load_dataset, write_dataset
from SyntheticImagingLib.io.datasets import Dataset, infer_modality
from SyntheticImagingLib.io.orientation import to_canonical
from SyntheticImagingLib.io.seg_nrrd import DEFAULT_COLORS
from SyntheticImagingLib.label_roles import role_for_name
from SyntheticImagingLib.tasks import get_task, task_for_data

__all__ = ["CaseNodes", "CaseNodesLogic", "geometryFromVolumeNode", "safeId", "stamp", "segmentationDisplay",
           "channelNamesFromNodes", "segmentLabelValues", "ATTRIBUTE_CASE_ID", "ATTRIBUTE_DATASET",
           "ATTRIBUTE_CHANNEL", "ATTRIBUTE_LABEL_VALUES", "CT_WINDOW"]

#: Node attribute names recording where a node came from (not set on reader-study nodes, which stay blind).
ATTRIBUTE_CASE_ID = "SyntheticImaging.CaseId"
ATTRIBUTE_DATASET = "SyntheticImaging.Dataset"
ATTRIBUTE_CHANNEL = "SyntheticImaging.Channel"
#: Set (to ``"segment"``) on segmentations whose segments' label values are the case's label values.
ATTRIBUTE_LABEL_VALUES = "SyntheticImaging.LabelValues"
#: CT brain window (width, level) in HU.
CT_WINDOW = (80.0, 40.0)


def segmentationDisplay(node: Any) -> Any:
    """The display node of a segmentation node, made when it has none (nodes built by scripts may lack one)."""
    if node.GetDisplayNode() is None:
        node.CreateDefaultDisplayNodes()
    return node.GetDisplayNode()


def stamp() -> str:
    """A date-time stamp for new run folders (the CLI wants its output folder new or empty)."""
    return datetime.datetime.now().strftime("%Y%m%d-%H%M%S")

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


def safeId(name: str) -> str:
    # case ids become folder names
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "case"


def _ids(segmentationNode: Any) -> list[str]:
    ids = vtk.vtkStringArray()
    segmentationNode.GetSegmentation().GetSegmentIDs(ids)
    return [ids.GetValue(i) for i in range(ids.GetNumberOfValues())]


def segmentLabelValues(segmentationNode: Any) -> list[int]:
    """The label value of each segment (in segment order), as a labelmap exported from Slicer numbers them:
    segment *i* is value *i + 1*; but a segmentation read from a file (``.seg.nrrd``, a labelmap loaded as a
    segmentation) or made by this module keeps its segments' stored label values (e.g. 1, 2, 4) when they are
    distinct and positive."""
    segmentation = segmentationNode.GetSegmentation()
    ids = _ids(segmentationNode)
    byIndex = list(range(1, len(ids) + 1))
    storage = segmentationNode.GetStorageNode()
    stored = (segmentationNode.GetAttribute(ATTRIBUTE_LABEL_VALUES) == "segment"
              or (storage is not None and bool(storage.GetFileName())))
    if not stored:
        return byIndex
    values = [int(segmentation.GetSegment(i).GetLabelValue()) for i in ids]
    return values if all(v > 0 for v in values) and len(set(values)) == len(values) else byIndex


def channelNamesFromNodes(volumeNodes: Sequence[Any]) -> list[str]:
    """The channel names of volume nodes: the channel a node of this module records, else the node's name without
    the words every name starts with (``"case_0 FLAIR"``, ``"case_0 T1"`` -> ``"FLAIR"``, ``"T1"``), so the cases of
    one scene share their channel names."""
    recorded = [node.GetAttribute(ATTRIBUTE_CHANNEL) or "" for node in volumeNodes]
    if all(recorded) and len(set(recorded)) == len(recorded):
        return recorded
    words = [node.GetName().split() or [node.GetName()] for node in volumeNodes]
    start = 0
    while (len(words) > 1 and all(len(w) > start + 1 for w in words)
           and len({w[start] for w in words}) == 1):
        start += 1
    return [" ".join(w[start:]) for w in words]


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


class CaseNodesLogic:
    """Scene nodes <-> cases (the part of the module logic that knows MRML)."""

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
            return problems + CaseNodesLogic.nodesGeometryProblems([ref, segmentationNode])
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
            segmentationNode: a segmentation node (the label table is its segment names, the values
                :func:`segmentLabelValues`; a later segment wins where segments overlap) or a labelmap volume
                node, or None.
            caseId: the case id (default: from the segmentation's or first volume's name).
            task: task preset: gives modality, lesion kind and the name of a lone segment whose name means
                nothing (channels and labels stay the nodes').
            channelNames: channel names (default: :func:`channelNamesFromNodes`, the volume nodes' names).
            modality: MR or CT (default: the task's, else guessed from intensities).
            lesionKind: tumor or hemorrhage (default: the task's, else tumor).

        The case is in the library's canonical orientation (LPS, ``SyntheticImagingLib.io.orientation``): a
        sagittal or RAS-ordered volume is permuted/flipped (never resampled) and its own voxel order is kept in
        ``metadata["source_orientation"]``.

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
            channelNames = channelNamesFromNodes(volumes)
        if len(set(channelNames)) != len(volumes):
            raise InputError(f"need {len(volumes)} distinct channel names, got {list(channelNames)}")
        ref = volumes[0]
        channels = {name: np.array(slicer.util.arrayFromVolume(node), dtype=np.float32)
                    for name, node in zip(channelNames, volumes)}
        first = next(iter(channels.values()))
        modality = Modality(modality) if modality else (preset.modality if preset else infer_modality(first))
        lesionKind = LesionKind(lesionKind) if lesionKind else (preset.lesion_kind if preset else LesionKind.TUMOR)
        label, table, segmentNames = self._labelFromNode(segmentationNode, ref, preset, lesionKind)
        source = segmentationNode if segmentationNode is not None else ref
        metadata: dict[str, Any] = {"source": "3D Slicer scene", "nodes": [n.GetName() for n in volumes]}
        if segmentNames:
            metadata["segments"] = segmentNames
        case = Case(case_id=safeId(caseId or source.GetName()), channels=channels,
                    geometry=geometryFromVolumeNode(ref), modality=modality, lesion_kind=lesionKind, label=label,
                    label_table=table, metadata=metadata)
        # the library's one orientation (LPS); writeDataset writes the node's own voxel order back
        return to_canonical(case).validate()

    @staticmethod
    def _labelFromNode(node: Any | None, ref: Any, preset: Any | None, lesionKind: LesionKind
                       ) -> tuple[np.ndarray | None, LabelTable, list[str]]:
        default = preset.label_table if preset else LabelTable({1: "tumor"})
        if node is None:
            return None, default, []

        def lone(names: dict[int, str]) -> dict[int, str]:
            # one lesion whose name means nothing ("Segment_1") is the task's lesion ("tumor"); a named one stays
            if len(names) == 1 and len(default.names) == 1 and role_for_name(next(iter(names.values())),
                                                                              lesionKind) is None:
                return {value: next(iter(default.names.values())) for value in names}
            return names

        if node.IsA("vtkMRMLLabelMapVolumeNode"):
            label = np.rint(slicer.util.arrayFromVolume(node)).astype(np.int16)
            values = [int(v) for v in np.unique(label) if v != 0]
            colors = node.GetDisplayNode().GetColorNode() if node.GetDisplayNode() is not None else None
            names = {v: (colors.GetColorName(v) if colors is not None else "") or f"label {v}" for v in values}
            segmentNames = [names[v] for v in values]
            return label, LabelTable(lone(names)), segmentNames
        shape = slicer.util.arrayFromVolume(ref).shape
        label = np.zeros(shape, dtype=np.int16)
        names: dict[int, str] = {}
        segmentation = node.GetSegmentation()
        for segmentId, value in zip(_ids(node), segmentLabelValues(node)):
            mask = slicer.util.arrayFromSegmentBinaryLabelmap(node, segmentId, ref)
            label[mask > 0] = value
            names[value] = segmentation.GetSegment(segmentId).GetName()
        segmentNames = list(names.values())
        return label, LabelTable(lone(names)), segmentNames

    # -- Case -> MRML ------------------------------------------------------------------------------------------
    def caseToNodes(self, case: Case, *, name: str | None = None, showSurface: bool = True,
                    withLabel: bool = True, provenance: bool = True) -> CaseNodes:
        """Scene nodes showing a case: one scalar volume per channel (on the case's grid) and a segmentation with
        one segment per label value, named as the label table and keeping its label value (one shared layer).

        Args:
            case: the case.
            name: node name prefix (default: the case id).
            showSurface: also build the segments' closed surfaces (3D view).
            withLabel: add the segmentation.
            provenance: record case id and channel as node attributes (off for the blinded reader study).

        The nodes hold the case's arrays as they are (canonical for a library case); their IJK-to-RAS matrix comes
        from the case geometry, so every voxel shows at its physical place whatever the voxel order.
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
        assert case.label is not None
        node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
        node.CreateDefaultDisplayNodes()
        node.SetReferenceImageGeometryParameterFromVolumeNode(reference)
        node.SetAttribute(ATTRIBUTE_LABEL_VALUES, "segment")
        segmentation = node.GetSegmentation()
        # one empty segment per label (id = name), then the label map imported into them as one shared layer:
        # segment ids[v - 1] gets the voxels of value v and keeps v as its label value (as a .seg.nrrd stores it)
        ids = vtk.vtkStringArray()
        ids.SetNumberOfValues(max(case.label_table.values, default=0))
        for value, labelName in case.label_table.names.items():
            ids.SetValue(value - 1, segmentation.AddEmptySegment(labelName, labelName))
        labelmap = slicer.util.addVolumeFromArray(np.ascontiguousarray(case.label, dtype=np.int16),
                                                  ijkToRAS=case.geometry.ijk_to_ras(), name=f"{name} values",
                                                  nodeClassName="vtkMRMLLabelMapVolumeNode")
        try:
            imported = slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(labelmap, node, ids)
        finally:
            slicer.mrmlScene.RemoveNode(labelmap)
        if not imported:
            raise InputError("the label map could not be turned into segments", where=case.case_id)
        for value, labelName in case.label_table.names.items():
            segment = segmentation.GetSegment(ids.GetValue(value - 1))
            segment.SetName(labelName)
            if labelName in DEFAULT_COLORS:
                segment.SetColor(*DEFAULT_COLORS[labelName])
        if showSurface:
            node.CreateClosedSurfaceRepresentation()
        return node

    def casesToNodes(self, cases: Sequence[Case] | Dataset, **kwargs: Any) -> list[CaseNodes]:
        """:meth:`caseToNodes` for each case."""
        return [self.caseToNodes(case, **kwargs) for case in cases]

    @staticmethod
    def readDatasetCase(dataset: str | Path, caseId: str | None = None, *, index: int = 0) -> Case:
        """One case of a dataset folder (by id, else by position), read from its files: no scene, so the panel
        runs it in a worker thread."""
        ds = load_dataset(dataset)
        case = ds.subset([caseId])[0] if caseId else ds[index]
        case.metadata.setdefault("dataset", str(dataset))
        return case

    def loadDatasetCase(self, dataset: str | Path, caseId: str | None = None, *, index: int = 0,
                        **kwargs: Any) -> CaseNodes:
        """One case of a dataset folder as nodes (by id, else by position)."""
        return self.caseToNodes(self.readDatasetCase(dataset, caseId, index=index), **kwargs)

    def removeCaseNodes(self, caseNodes: CaseNodes | None) -> None:
        """Remove a case's nodes from the scene."""
        for node in (caseNodes.nodes() if caseNodes else []):
            if node is not None and node.GetScene() is not None:
                slicer.mrmlScene.RemoveNode(node)

    def casesFromInput(self, data: Any, task: str | None = None) -> list[Case]:
        """Cases from a list of :class:`CaseNodes`, of ``(volumeNodes, segmentationNode)`` pairs, or of cases.

        Args:
            data: the cases or their nodes.
            task: task preset; given, the cases must form a task of it (:func:`~SyntheticImagingLib.tasks.
                task_for_data`): one set of channel names, segment names that name label roles.

        Raises:
            LabelError: segment names that match no label role (the message names them and how to map them).
            InputError: cases with different channels.
        """
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
        if task and cases:
            task_for_data(cases, task=task)
        return cases

    def writeDataset(self, data: Any, outDir: str | Path, *, task: str | None = None,
                     labelFormat: str = "seg.nrrd", overwrite: bool = False,
                     progress: Callable[[int, str], None] | None = None) -> Path:
        """Write scene cases (see :meth:`casesFromInput`) or a dataset folder as a dataset folder with
        ``dataset.json`` (NIfTI images, labels as ``labelFormat``); ``progress(cases written, case id)``."""
        cases = load_dataset(data) if isinstance(data, (str, Path)) else self.casesFromInput(data, task)
        return write_dataset(cases, outDir, label_format=labelFormat, overwrite=overwrite, progress=progress,
                             info={"source": "3D Slicer SyntheticImaging module"})

