"""Task presets: what a synthesis task works on (modality, channels, lesion kind, model grid)."""

from __future__ import annotations

import dataclasses

from .cases import TUMOR_LABELS, LabelTable, LesionKind, Modality
from .errors import InputError
from .lesions.controls import HEMORRHAGE_SUBTYPE_VALUES

#: Labels of the head-CT task: the hemorrhage subtypes and perihematomal edema at their fixed values.
HEMORRHAGE_SUBTYPE_LABELS = LabelTable({v: n for n, v in HEMORRHAGE_SUBTYPE_VALUES.items()})

__all__ = ["TaskPreset", "TASKS", "get_task", "HEMORRHAGE_SUBTYPE_LABELS"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class TaskPreset:
    """Settings shared by the generators and checks of one task.

    Args:
        name: the preset's name (``--task``).
        modality: MR or CT.
        lesion_kind: tumour or hemorrhage.
        channels: expected image channels, in order.
        spacing: model grid spacing in mm (x, y, z).
        shape: model grid shape (z, y, x) around the brain.
        label_table: label names.
    """

    name: str
    modality: Modality
    lesion_kind: LesionKind
    channels: tuple[str, ...]
    spacing: tuple[float, float, float]
    shape: tuple[int, int, int]
    label_table: LabelTable


TASKS: dict[str, TaskPreset] = {
    "brain-tumor-mri": TaskPreset(name="brain-tumor-mri", modality=Modality.MR, lesion_kind=LesionKind.TUMOR,
                                  channels=("FLAIR", "T1"), spacing=(2.0, 2.0, 2.0), shape=(80, 96, 80),
                                  label_table=TUMOR_LABELS),
    "head-hemorrhage-ct": TaskPreset(name="head-hemorrhage-ct", modality=Modality.CT,
                                     lesion_kind=LesionKind.HEMORRHAGE, channels=("CT",), spacing=(2.0, 2.0, 2.0),
                                     shape=(96, 112, 96), label_table=HEMORRHAGE_SUBTYPE_LABELS),
}


def get_task(name: str) -> TaskPreset:
    """The preset called ``name``."""
    try:
        return TASKS[name]
    except KeyError:
        raise InputError(f"unknown task {name!r}", fix=f"use one of {sorted(TASKS)}") from None
