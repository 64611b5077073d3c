"""Bring cases onto a check profile's grid once, for every check of an evaluation.

Each case is resampled to ``profile.spacing``, cropped or padded to ``profile.shape`` around the head, and its
intensities normalised per case with :class:`~SyntheticImagingLib.preprocessing.IntensityMap` (so real and
synthetic cases are compared in the same units whatever their scanner scale); CT cases, already in HU, also get
a brain-window channel (:data:`BRAIN_WINDOW_HU`) so that blood stands out for the segmenter and the encoder.
Labels: a set whose label table has one label (whole tumour, one hemorrhage label) is binarised (lesion vs not),
so the utility segmenter answers "where is the lesion". When the real training set has several labels (tumour
sub-regions, hemorrhage subtypes), every set keeps them, mapped onto that one shared table (the real training
set's own values and names, see :func:`label_mapping`), so the checks score each label and each BraTS region; a
set whose labels cannot be matched to the real ones is refused with a :class:`~SyntheticImagingLib.errors.LabelError`
naming both tables.

Preparing a full-resolution BraTS case costs about a second; an optional on-disk cache keyed by the case's
content fingerprint makes repeated evaluations of the same data free.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..cases import Case, Geometry, LabelTable, LesionKind, Modality
from ..errors import LabelError
from ..io.atomic import atomic_file
from ..io.datasets import Dataset
from ..label_roles import LabelRoles, match_roles, normalize_name
from ..preprocessing import IntensityMap, crop_or_pad, foreground_mask, resample_case
from ..progress import ProgressCallback, Reporter, as_reporter
from .base import Profile

__all__ = ["prepare_case", "prepare_cases", "case_fingerprint", "cases_fingerprint", "LESION_LABELS",
           "PREPARE_VERSION", "BRAIN_WINDOW_HU", "shared_label_table", "label_mapping", "is_multi_label"]

#: Label table of prepared cases: one "lesion" label.
LESION_LABELS = LabelTable({1: "lesion"})

#: Bumped whenever preparation changes, so old cache files are not reused.
PREPARE_VERSION = "3"

#: CT cases get a second channel in this HU window (the usual brain window, W80/L40).
BRAIN_WINDOW_HU = (0.0, 80.0)


def is_multi_label(table: LabelTable | None) -> bool:
    """Whether prepared cases with this shared table keep several labels (else they are binarised).

    Args:
        table: the shared label table (None: binarise).
    """
    return table is not None and len(table.values) > 1


def shared_label_table(cases: Sequence[Case] | Dataset) -> LabelTable | None:
    """The label table every prepared set is mapped onto: the real training set's own values and names.

    A lazy dataset gives its table without loading a case when it has one; otherwise the first labelled case's
    table is used (every other case is matched to it by :func:`label_mapping` during preparation).

    Args:
        cases: the real training cases (a list or a dataset).

    Returns:
        The table, or None when no case is labelled.
    """
    if isinstance(cases, Dataset) and cases.label_table is not None:
        return cases.label_table
    for case in cases:
        if case.label is not None:
            return case.label_table
    return None


def _tables_text(table: LabelTable) -> str:
    return "{" + ", ".join(f"{v}: {n!r}" for v, n in table.names.items()) + "}"


def label_mapping(source: LabelTable, target: LabelTable, kind: LesionKind | str = LesionKind.TUMOR, *,
                  where: str | None = None) -> dict[int, int]:
    """Value of ``source`` -> value of ``target`` for the same label: same name first (case, spelling and
    punctuation folded), then same role (:func:`~SyntheticImagingLib.label_roles.match_roles`, so ``"ET"``
    matches ``"enhancing tumour"``).

    Args:
        source: a case's label table.
        target: the shared table (the real training set's).
        kind: lesion kind the roles belong to.
        where: the case or set, for the error message.

    Raises:
        LabelError: a label of ``source`` with no counterpart in ``target``, two labels on one, or a label of
            ``target`` missing from ``source``; the message names both tables.

    Example:
        >>> label_mapping(LabelTable({1: "NCR", 2: "ED", 3: "ET"}),
        ...               LabelTable({1: "necrosis", 2: "edema", 4: "enhancing tumor"}))
        {1: 1, 2: 2, 3: 4}
    """
    if source == target:
        return {v: v for v in target.values}
    out: dict[int, int] = {}
    by_name = {normalize_name(n): v for v, n in target.names.items()}
    for value, name in source.names.items():
        if normalize_name(name) in by_name:
            out[value] = by_name[normalize_name(name)]
    rest = [v for v in source.values if v not in out]
    if rest:
        src_roles: LabelRoles | None
        dst_roles: LabelRoles | None
        try:
            src_roles, dst_roles = match_roles(source, LesionKind(kind)), match_roles(target, LesionKind(kind))
        except LabelError:
            src_roles = dst_roles = None
        if src_roles is not None and dst_roles is not None:
            for value in rest:
                role = src_roles.role_of(value)
                if dst_roles.has(role):
                    out[value] = dst_roles.value_of(role)
    unmatched = [f"{v} {source.names[v]!r}" for v in source.values if v not in out]
    missing = [f"{v} {target.names[v]!r}" for v in target.values if v not in out.values()]
    twice = len(set(out.values())) != len(out)
    if unmatched or missing or twice:
        problems = []
        if unmatched:
            problems.append(f"no real label for {', '.join(unmatched)}")
        if missing:
            problems.append(f"no label for the real {', '.join(missing)}")
        if twice:
            problems.append("two labels match one real label")
        raise LabelError(
            f"the labels {_tables_text(source)} do not match the real training labels {_tables_text(target)} "
            f"({'; '.join(problems)})", where=where,
            fix="give every set the same labels (names or roles such as necrosis, edema, enhancing tumour): "
                "synthesize with the real data's label table (tasks.task_for_data(real cases)), or name the "
                "labels of the set in its dataset.json")
    return dict(sorted(out.items()))


def case_fingerprint(case: Case) -> str:
    """Hash of a case's content (arrays, geometry, modality, label table), independent of its id.

    Args:
        case: the case.
    """
    h = hashlib.blake2b(digest_size=16)
    h.update(json.dumps({"geometry": case.geometry.to_dict(), "modality": case.modality.value,
                         "lesion_kind": case.lesion_kind.value, "labels": case.label_table.to_dict(),
                         "shape": list(case.shape), "channels": case.channel_names}, sort_keys=True).encode())
    for array in (*case.channels.values(), case.label, case.brain_mask):
        if array is not None:
            h.update(str(array.dtype).encode())
            h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()


def cases_fingerprint(cases: Iterable[Case]) -> str:
    """Hash of an ordered set of cases (ids and contents): identifies the data a model was trained on.

    Args:
        cases: the cases.
    """
    h = hashlib.blake2b(digest_size=8)
    for case in cases:
        h.update(case.case_id.encode())
        h.update(case.metadata.get("prepared", {}).get("source_fingerprint", "").encode())
        h.update(case_fingerprint(case).encode())
    return h.hexdigest()


def _cache_key(source_fp: str, profile: Profile, labels: LabelTable | None = None) -> str:
    key: list[Any] = [PREPARE_VERSION, source_fp, list(profile.spacing), list(profile.shape)]
    if is_multi_label(labels):
        key.append(labels.to_dict())  # type: ignore[union-attr]
    text = json.dumps(key)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def _save(path: Path, case: Case) -> None:
    arrays: dict[str, np.ndarray] = {f"channel:{k}": v for k, v in case.channels.items()}
    if case.label is not None:
        arrays["label"] = case.label
    if case.brain_mask is not None:
        arrays["brain_mask"] = case.brain_mask
    meta = {"geometry": case.geometry.to_dict(), "modality": case.modality.value,
            "lesion_kind": case.lesion_kind.value, "channels": case.channel_names,
            "label_table": case.label_table.to_dict(), "prepared": case.metadata.get("prepared", {})}
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    with atomic_file(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)  # type: ignore[arg-type]  # numpy's stub matches **arrays against allow_pickle


def _load(path: Path, source: Case) -> Case | None:
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(data["meta"].tobytes().decode())
            channels = {k: data[f"channel:{k}"] for k in meta["channels"]}
            label = data["label"] if "label" in data.files else None
            brain = data["brain_mask"] if "brain_mask" in data.files else None
    except (OSError, ValueError, KeyError, json.JSONDecodeError):
        return None  # a broken cache file is rebuilt, never trusted
    metadata = {**source.metadata, "prepared": meta["prepared"]}
    return Case(case_id=source.case_id, channels=channels, geometry=Geometry.from_dict(meta["geometry"]),
                modality=meta["modality"], lesion_kind=meta["lesion_kind"], label=label,
                label_table=LabelTable.from_dict(meta.get("label_table") or LESION_LABELS.to_dict()),
                brain_mask=brain, metadata=metadata)


def _window(hu: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    low, high = window
    return (np.clip((hu - low) / (high - low), 0.0, 1.0) * 2.0 - 1.0).astype(np.float32)


def _map_label(label: np.ndarray, mapping: dict[int, int], where: str) -> np.ndarray:
    out = np.zeros(label.shape, np.int16)
    for src, dst in mapping.items():
        out[label == src] = dst
    stray = (label != 0) & ~np.isin(label, list(mapping))
    if stray.any():
        values = sorted(int(v) for v in np.unique(label[stray]))
        raise LabelError(f"label values {values} are not in the case's label table {sorted(mapping)}", where=where,
                         fix="name every label value in the dataset's label table (dataset.json 'labels')")
    return out


def prepare_case(case: Case, profile: Profile, *, source_fingerprint: str | None = None,
                 labels: LabelTable | None = None) -> Case:
    """One case on the profile grid, normalised, with its label and a head mask.

    Args:
        case: the case in physical units at any resolution.
        profile: grid spacing and shape to use.
        source_fingerprint: :func:`case_fingerprint` of ``case`` if already computed.
        labels: the shared label table (:func:`shared_label_table` of the real training set). With several
            labels the case's values are mapped onto it (:func:`label_mapping`); with one label or None the label
            is binarised (:data:`LESION_LABELS`).

    Raises:
        LabelError: the case's labels do not match ``labels`` (both tables are named).
    """
    case.validate()
    fp = source_fingerprint or case_fingerprint(case)
    mapping = label_mapping(case.label_table, labels, case.lesion_kind, where=case.case_id) \
        if labels is not None and is_multi_label(labels) and case.label is not None else None
    out = crop_or_pad(resample_case(case, profile.spacing), profile.shape)
    head = foreground_mask(out)  # before normalisation: MR background is exactly 0 here
    imap = IntensityMap.fit(out)
    extra = {}
    if out.modality == Modality.CT:
        # A brain window beside the whole-range HU map, as radiologists read it and ICH segmenters are fed: blood
        # (50-90 HU) against brain (~30 HU) is a small step in the full-range map, a large one here.
        extra = {f"{name} {BRAIN_WINDOW_HU[0]:g}-{BRAIN_WINDOW_HU[1]:g} HU": _window(a, BRAIN_WINDOW_HU)
                 for name, a in out.channels.items()}
    out = imap.forward(out)
    if extra:
        out = out.replace(channels={**out.channels, **extra})
    table = labels if mapping is not None else LESION_LABELS
    if out.label is None:
        label = None
    elif mapping is not None:
        label = _map_label(out.label, mapping, case.case_id)
    else:
        label = (out.label > 0).astype(np.int16)
    prepared: dict[str, Any] = {
        "profile": profile.name, "spacing": list(profile.spacing), "shape": list(profile.shape),
        "source_spacing": list(case.geometry.spacing), "source_shape": list(case.shape),
        "source_fingerprint": fp, "source_labels": case.label_table.to_dict(), "intensity_map": imap.to_dict(),
        "version": PREPARE_VERSION,
    }
    if mapping is not None:
        prepared["label_mapping"] = {str(k): v for k, v in mapping.items()}
    return out.replace(label=label, label_table=table, brain_mask=head,
                       metadata={**case.metadata, "prepared": prepared})


def prepare_cases(cases: Iterable[Case], profile: Profile, *, cache_dir: str | os.PathLike[str] | None = None,
                  progress: Reporter | ProgressCallback | None = None, stage: str = "prepare",
                  labels: LabelTable | None = None) -> list[Case]:
    """Prepare every case once (see :func:`prepare_case`), reading and filling an optional on-disk cache.

    Cases are consumed one at a time, so a lazy :class:`~SyntheticImagingLib.io.datasets.Dataset` of
    full-resolution volumes never has more than one of them in memory.

    Args:
        cases: the cases (a list or a lazy dataset).
        profile: grid spacing and shape.
        cache_dir: folder for prepared ``.npz`` files keyed by content fingerprint and grid (None: no cache).
        progress: progress + cancel.
        stage: the progress stage name.
        labels: the shared label table (see :func:`prepare_case`; None or one label: binary labels).

    Raises:
        LabelError: a case whose labels do not match ``labels`` (named with its set, from ``stage``).
    """
    reporter = as_reporter(progress)
    total = len(cases) if hasattr(cases, "__len__") else None  # type: ignore[arg-type]
    cache = Path(cache_dir) if cache_dir is not None else None
    out: list[Case] = []
    for i, case in enumerate(cases):
        fp = case_fingerprint(case)
        prepared = None
        path = cache / f"{_cache_key(fp, profile, labels)}.npz" if cache is not None else None
        if path is not None and path.exists():
            prepared = _load(path, case)
        if prepared is None:
            try:
                prepared = prepare_case(case, profile, source_fingerprint=fp, labels=labels)
            except LabelError as err:
                if err.where != case.case_id or not stage.startswith("prepare:"):
                    raise
                raise LabelError(err.problem, where=f"{stage.split(':', 1)[1]} case {case.case_id}",
                                 fix=err.fix) from None
            if path is not None:
                _save(path, prepared)
        out.append(prepared)
        reporter.report(stage, i + 1, total, case.case_id)
    return out
