"""Tasks: what a synthesis task works on (modality, channels, lesion kind, label table, model grid).

The two presets are defaults and named conventions, not limits: :func:`task_for_data` takes the channels and the
label table from the user's cases (any number of channels, any label values and names, matched to roles by
name, see :mod:`.label_roles`) and keeps the preset's modality, lesion kind and grid.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from .cases import TUMOR_LABELS, Case, LabelTable, LesionKind, Modality
from .errors import InputError, LabelError
from .label_roles import LabelRoles, match_roles, parse_label_map
from .lesions.controls import HEMORRHAGE_SUBTYPE_VALUES

#: Labels of the head-CT task: the hemorrhage subtypes and perihematomal edema at their fixed values.
HEMORRHAGE_SUBTYPE_LABELS = LabelTable({v: n for n, v in HEMORRHAGE_SUBTYPE_VALUES.items()})

__all__ = ["TaskPreset", "TASKS", "get_task", "task_for_data", "task_for_cases", "HEMORRHAGE_SUBTYPE_LABELS"]


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
        label_table: label values and names (the user's, kept as they are in every output).
        label_map: role = value overrides for names no synonym matches (see :func:`~.label_roles.match_roles`).
    """

    name: str
    modality: Modality
    lesion_kind: LesionKind
    channels: tuple[str, ...]
    spacing: tuple[float, float, float]
    shape: tuple[int, int, int]
    label_table: LabelTable
    label_map: Mapping[str, int] = dataclasses.field(default_factory=dict)

    @property
    def roles(self) -> LabelRoles:
        """The role of each label value (necrosis, edema, subdural hemorrhage, ...)."""
        return match_roles(self.label_table, self.lesion_kind, label_map=self.label_map)

    @property
    def is_preset(self) -> bool:
        """Whether this is one of :data:`TASKS` unchanged."""
        return TASKS.get(self.name) == self

    def to_dict(self) -> dict[str, Any]:
        """JSON form (model cards keep it, so a generator trained on a user's table reloads with it)."""
        return {"name": self.name, "modality": self.modality.value, "lesion_kind": self.lesion_kind.value,
                "channels": list(self.channels), "spacing": list(self.spacing), "shape": list(self.shape),
                "labels": self.label_table.to_dict(), "label_map": dict(self.label_map)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TaskPreset:
        """Inverse of :meth:`to_dict`."""
        return cls(name=str(d["name"]), modality=Modality(d["modality"]), lesion_kind=LesionKind(d["lesion_kind"]),
                   channels=tuple(str(c) for c in d["channels"]),
                   spacing=tuple(float(v) for v in d["spacing"]),  # type: ignore[arg-type]
                   shape=tuple(int(v) for v in d["shape"]),  # type: ignore[arg-type]
                   label_table=LabelTable.from_dict(d["labels"]), label_map=dict(d.get("label_map", {})))


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


def _base_for(cases: list[Case]) -> TaskPreset:
    modality = cases[0].modality
    return TASKS["head-hemorrhage-ct" if modality == Modality.CT else "brain-tumor-mri"]


def task_for_data(cases: Iterable[Case], *, task: str | TaskPreset | None = None,
                  label_map: str | Mapping[str, int] | None = None,
                  labels: LabelTable | None = None) -> TaskPreset:
    """The task of a user's cases: the preset's modality, lesion kind and grid; the cases' channels and labels.

    A dataset that already matches its preset (BraTS 2018 FLAIR + T1 with one tumour label) gets the preset
    itself, so presets keep working unchanged.

    Args:
        cases: the real cases (their first one gives channels; all labelled ones give the label table).
        task: the preset (name or object) to start from; None: by modality (CT: ``head-hemorrhage-ct``).
        label_map: role = value overrides (``"edema=2,enhancing=4"``) for labels whose names mean nothing.
        labels: a label table to use instead of the cases' own (e.g. a named convention for unnamed files).

    Raises:
        InputError: no cases, or cases with different channels.
        LabelError: labels that cannot be matched to roles (the message lists them and how to map them).

    Example:
        >>> import numpy as np
        >>> from .cases import Geometry
        >>> c = Case("a", {"Flair": np.ones((2, 2, 2)), "T1c": np.ones((2, 2, 2))}, Geometry(),
        ...          label=np.array([[[0, 1], [2, 4]]] * 2), label_table=LabelTable({1: "NCR", 2: "ED", 4: "ET"}))
        >>> t = task_for_data([c])
        >>> t.channels, t.roles.role_of(4)
        (('Flair', 'T1c'), 'enhancing tumor')
    """
    cases = list(cases)
    if not cases:
        raise InputError("no cases to take the task from", fix="pass the real cases (--data)")
    base = task if isinstance(task, TaskPreset) else (get_task(task) if task else _base_for(cases))
    channels = tuple(cases[0].channel_names)
    for case in cases[1:]:
        if tuple(case.channel_names) != channels:
            raise InputError(f"cases have different channels: {list(channels)} in {cases[0].case_id}, "
                             f"{case.channel_names} in {case.case_id}", where=case.case_id,
                             fix="give every case the same channel files (names and order)")
    table = labels
    if table is None:
        names: dict[int, str] = {}
        for case in cases:
            if case.label is not None:
                for value, name in case.label_table.names.items():
                    if names.setdefault(value, name) != name:
                        raise LabelError(f"label value {value} is {names[value]!r} in one case and {name!r} in "
                                         f"{case.case_id}", where=case.case_id,
                                         fix="use one label table for the whole dataset")
        table = LabelTable(names) if names else base.label_table
    kind = base.lesion_kind
    mapping = parse_label_map(label_map) if not isinstance(label_map, Mapping) else dict(label_map)
    if tuple(base.channels) == channels and base.label_table == table and not mapping and kind == base.lesion_kind:
        return base
    candidate = dataclasses.replace(base, channels=channels, label_table=table, label_map=mapping, lesion_kind=kind)
    candidate.roles  # noqa: B018  (raises a clear LabelError now rather than in the middle of training)
    return candidate


def task_for_cases(cases: Iterable[Case], *, task: str | TaskPreset | None = None,
                   label_map: str | Mapping[str, int] | None = None) -> TaskPreset:
    """:func:`task_for_data` for what the API and training get: a lazy dataset is read through its first case and
    its label table (no other volume is loaded); a list of cases is read whole.

    Args:
        cases: a :class:`~SyntheticImagingLib.io.datasets.Dataset` or a list of cases.
        task: the preset (name or object) to start from; None: by modality.
        label_map: role = value overrides.
    """
    if hasattr(cases, "entries") and hasattr(cases, "label_table"):  # a lazy Dataset
        dataset: Any = cases
        if not len(dataset):
            raise InputError("the dataset has no cases", fix="check the dataset folder (--data)")
        return task_for_data([dataset[0]], task=task, label_map=label_map, labels=dataset.label_table)
    return task_for_data(cases, task=task, label_map=label_map)
