"""Bring cases onto a check profile's grid once, for every check of an evaluation.

Each case is resampled to ``profile.spacing``, cropped or padded to ``profile.shape`` around the head, and its
intensities normalised per case with :class:`~SyntheticImagingLib.preprocessing.IntensityMap` (so real and
synthetic cases are compared in the same units whatever their scanner scale); CT cases, already in HU, also get
a brain-window channel (:data:`BRAIN_WINDOW_HU`) so that blood stands out for the segmenter and the encoder.
The label is binarised (lesion vs not) because the utility segmenter answers "where is the lesion", whatever the
sub-region labels of a set.

Preparing a full-resolution BraTS case costs about a second; an optional on-disk cache keyed by the case's
content fingerprint makes repeated evaluations of the same data free.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from ..cases import Case, Geometry, LabelTable, Modality
from ..io.atomic import atomic_file
from ..preprocessing import IntensityMap, crop_or_pad, foreground_mask, resample_case
from ..progress import ProgressCallback, Reporter, as_reporter
from .base import Profile

__all__ = ["prepare_case", "prepare_cases", "case_fingerprint", "cases_fingerprint", "LESION_LABELS",
           "PREPARE_VERSION", "BRAIN_WINDOW_HU"]

#: Label table of prepared cases: one "lesion" label.
LESION_LABELS = LabelTable({1: "lesion"})

#: Bumped whenever preparation changes, so old cache files are not reused.
PREPARE_VERSION = "2"

#: CT cases get a second channel in this HU window (the usual brain window, W80/L40).
BRAIN_WINDOW_HU = (0.0, 80.0)


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


def _cache_key(source_fp: str, profile: Profile) -> str:
    text = json.dumps([PREPARE_VERSION, source_fp, list(profile.spacing), list(profile.shape)])
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def _save(path: Path, case: Case) -> None:
    arrays: dict[str, np.ndarray] = {f"channel:{k}": v for k, v in case.channels.items()}
    if case.label is not None:
        arrays["label"] = case.label
    if case.brain_mask is not None:
        arrays["brain_mask"] = case.brain_mask
    meta = {"geometry": case.geometry.to_dict(), "modality": case.modality.value,
            "lesion_kind": case.lesion_kind.value, "channels": case.channel_names,
            "prepared": case.metadata.get("prepared", {})}
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
                label_table=LESION_LABELS, brain_mask=brain, metadata=metadata)


def _window(hu: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    low, high = window
    return (np.clip((hu - low) / (high - low), 0.0, 1.0) * 2.0 - 1.0).astype(np.float32)


def prepare_case(case: Case, profile: Profile, *, source_fingerprint: str | None = None) -> Case:
    """One case on the profile grid, normalised, with a binary lesion label and a head mask.

    Args:
        case: the case in physical units at any resolution.
        profile: grid spacing and shape to use.
        source_fingerprint: :func:`case_fingerprint` of ``case`` if already computed.
    """
    case.validate()
    fp = source_fingerprint or case_fingerprint(case)
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
    label = None if out.label is None else (out.label > 0).astype(np.int16)
    prepared: dict[str, Any] = {
        "profile": profile.name, "spacing": list(profile.spacing), "shape": list(profile.shape),
        "source_spacing": list(case.geometry.spacing), "source_shape": list(case.shape),
        "source_fingerprint": fp, "source_labels": case.label_table.to_dict(), "intensity_map": imap.to_dict(),
        "version": PREPARE_VERSION,
    }
    return out.replace(label=label, label_table=LESION_LABELS, brain_mask=head,
                       metadata={**case.metadata, "prepared": prepared})


def prepare_cases(cases: Iterable[Case], profile: Profile, *, cache_dir: str | os.PathLike[str] | None = None,
                  progress: Reporter | ProgressCallback | None = None, stage: str = "prepare") -> list[Case]:
    """Prepare every case once (see :func:`prepare_case`), reading and filling an optional on-disk cache.

    Cases are consumed one at a time, so a lazy :class:`~SyntheticImagingLib.io.datasets.Dataset` of
    full-resolution volumes never has more than one of them in memory.

    Args:
        cases: the cases (a list or a lazy dataset).
        profile: grid spacing and shape.
        cache_dir: folder for prepared ``.npz`` files keyed by content fingerprint and grid (None: no cache).
        progress: progress + cancel.
        stage: the progress stage name.
    """
    reporter = as_reporter(progress)
    total = len(cases) if hasattr(cases, "__len__") else None  # type: ignore[arg-type]
    cache = Path(cache_dir) if cache_dir is not None else None
    out: list[Case] = []
    for i, case in enumerate(cases):
        fp = case_fingerprint(case)
        prepared = None
        path = cache / f"{_cache_key(fp, profile)}.npz" if cache is not None else None
        if path is not None and path.exists():
            prepared = _load(path, case)
        if prepared is None:
            prepared = prepare_case(case, profile, source_fingerprint=fp)
            if path is not None:
                _save(path, prepared)
        out.append(prepared)
        reporter.report(stage, i + 1, total, case.case_id)
    return out
