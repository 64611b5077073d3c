"""The module's parameter node: every setting of the panel, typed, saved with the scene.

Widgets in ``Resources/UI/SyntheticImaging.ui`` name their parameter in the dynamic property
``SlicerParameterName``; ``connectGui`` binds them both ways. The few settings whose widget has no connector
(generator family, hemorrhage subtypes, the list of scene cases) are read and written by the widget itself.
"""

# No "from __future__ import annotations": parameterNodeWrapper reads the annotations as objects.
from pathlib import Path
from typing import Annotated

from slicer import vtkMRMLMarkupsFiducialNode, vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode
from slicer.parameterNodeWrapper import Choice, Default, FloatRange, RangeBounds, WithinRange, parameterNodeWrapper

from SyntheticImagingLib.lesions.controls import HEMORRHAGE_SUBTYPES
from SyntheticImagingLib.tasks import TASKS

__all__ = ["SyntheticImagingParameterNode", "CHECKS", "PROFILES", "DEVICES", "LABEL_FORMATS", "isSet"]

#: The checks and profiles the CLI's ``evaluate`` accepts (importing the checks themselves would load torch).
CHECKS = ("utility", "adherence", "fidelity", "privacy")
PROFILES = ("quick", "full")
DEVICES = ("auto", "cpu", "cuda")
#: Label file formats of the NIfTI/segmentation export.
LABEL_FORMATS = ("seg.nrrd", "nii.gz")
_MAX_SEED = 2**31 - 1


def isSet(path: Path | str | None) -> bool:
    """A path parameter holds a path (an unset ``Path`` parameter reads as ``Path(".")``)."""
    return path is not None and str(path) not in ("", ".")


@parameterNodeWrapper
class SyntheticImagingParameterNode:
    """Settings of the SyntheticImaging module.

    Data: ``task`` (what is synthesized), ``datasetPath`` (real labelled cases, a folder or ``dataset.json``),
    ``sceneCaseVolumes``/``sceneCaseChannelCounts``/``sceneCaseSegmentations`` (real cases picked from the scene:
    the volumes of case *i* are the next ``sceneCaseChannelCounts[i]`` entries of ``sceneCaseVolumes``),
    ``outputDirectory`` (where every run writes its own sub-folder).
    Generator: ``generatorFamily``, training settings, or ``checkpointPath`` with ``useCheckpoint``.
    Synthesize: count, seed and the lesion controls; ``syntheticDataset`` is the synthetic set the checks,
    exports and reader study use (the last one synthesized, or one picked).
    Checks, Export, Reader study: as named.
    """

    outputDirectory: Path
    task: Annotated[str, Choice(list(TASKS))] = "brain-tumor-mri"
    datasetPath: Path
    sceneCaseVolumes: list[vtkMRMLScalarVolumeNode]
    sceneCaseChannelCounts: list[int]
    sceneCaseSegmentations: list[vtkMRMLSegmentationNode]

    generatorFamily: str = "label-to-image"
    trainSteps: Annotated[int, WithinRange(1, 10_000_000)] = 2000
    batchSize: Annotated[int, WithinRange(1, 256)] = 2
    device: Annotated[str, Choice(list(DEVICES))] = "auto"
    resume: bool = False
    checkpointPath: Path
    useCheckpoint: bool = False

    numberOfCases: Annotated[int, WithinRange(1, 100_000)] = 4
    seed: Annotated[int, WithinRange(0, _MAX_SEED)] = 0
    # Default() inside Annotated: Slicer's range connector validates 0 against RangeBounds when it has none
    lesionVolumeMl: Annotated[FloatRange, RangeBounds(0.1, 500.0), Default(FloatRange(10.0, 60.0))]
    lesionCount: Annotated[int, WithinRange(0, 20)] = 1
    lesionLocation: vtkMRMLMarkupsFiducialNode
    subtypes: str = HEMORRHAGE_SUBTYPES[0]
    syntheticDataset: Path

    checkUtility: bool = True
    checkAdherence: bool = True
    checkFidelity: bool = True
    checkPrivacy: bool = True
    profile: Annotated[str, Choice(list(PROFILES))] = "quick"
    realTestPath: Path
    evaluationDirectory: Path

    exportDirectory: Path
    patientPrefix: str = "SYNTH"
    addToDicomDatabase: bool = True
    labelFormat: Annotated[str, Choice(list(LABEL_FORMATS))] = "seg.nrrd"

    readerName: str = ""
    readerCasesPerClass: Annotated[int, WithinRange(1, 1000)] = 10
    readerSeed: Annotated[int, WithinRange(0, _MAX_SEED)] = 0
