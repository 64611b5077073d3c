"""Training data: cases preprocessed once to the model grid, cached, and served as deterministic batches.

Preprocessing (:func:`prepare_case`) is the same for every trainable family: keep the task's channels, resample to
the grid spacing (:func:`~SyntheticImagingLib.preprocessing.resample_case`), crop or pad around the brain
(:func:`~SyntheticImagingLib.preprocessing.crop_or_pad`), find the brain mask, and map intensities to network
units with a per-case :class:`~SyntheticImagingLib.preprocessing.IntensityMap`. Resampling full-resolution volumes
is the slow part, so :func:`prepare_cases` caches each result as an ``.npz`` keyed by the case's files (or
voxels) and the grid settings: a second run, a resumed run or another family on the same grid resamples nothing.
The cache holds patient-derived images; it lives in a user cache folder, never in a model folder.

Batches are a pure function of ``(seed, step, rank)`` (:class:`TrainingData`): the sample order is a seeded
permutation per epoch and each sample's augmentation is seeded by its position in that stream, so a resumed run
sees exactly the batches an uninterrupted run would, with no sampler state to save.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from ..cases import Case, Geometry, Modality
from ..errors import InputError, LabelError
from ..io.atomic import atomic_file
from ..io.orientation import CANONICAL_ORIENTATION, left_right_axis
from ..preprocessing import IntensityMap, crop_or_pad, foreground_mask, resample_case
from ..progress import ProgressCallback, Reporter, as_reporter
from ..tasks import TaskPreset

__all__ = ["GridSettings", "PreparedCase", "prepare_case", "prepare_cases", "default_cache_dir", "TrainingData",
           "one_hot_label", "data_fingerprint", "save_masks", "load_masks", "CACHE_VERSION"]

#: Bump when preprocessing changes, so old cache entries are not reused (2: intensity offsets of z-scored MR).
CACHE_VERSION = 2


@dataclasses.dataclass(frozen=True, kw_only=True)
class GridSettings:
    """The model grid and what is put on it.

    Args:
        spacing: grid spacing in mm (x, y, z).
        shape: grid shape (z, y, x).
        channels: image channels, in order.
        modality: MR or CT (decides the intensity map).
        label_values: label values the models know (one-hot channels, in order).
    """

    spacing: tuple[float, float, float]
    shape: tuple[int, int, int]
    channels: tuple[str, ...]
    modality: Modality
    label_values: tuple[int, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "spacing", tuple(float(s) for s in self.spacing))
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))
        object.__setattr__(self, "channels", tuple(self.channels))
        object.__setattr__(self, "modality", Modality(self.modality))
        object.__setattr__(self, "label_values", tuple(int(v) for v in self.label_values))
        if len(self.spacing) != 3 or min(self.spacing) <= 0 or len(self.shape) != 3 or min(self.shape) < 1:
            raise InputError(f"grid needs 3 positive spacings (mm) and 3 sizes, got {self.spacing} / {self.shape}")

    @classmethod
    def from_task(cls, task: TaskPreset, *, spacing: Sequence[float] | None = None,
                  shape: Sequence[int] | None = None) -> GridSettings:
        """The task's grid, with optional spacing/shape overrides (e.g. a coarse grid for CPU tests)."""
        # three values each: checked by __post_init__, with a clear message
        return cls(spacing=cast("tuple[float, float, float]", tuple(spacing or task.spacing)),
                   shape=cast("tuple[int, int, int]", tuple(shape or task.shape)), channels=task.channels,
                   modality=task.modality, label_values=tuple(task.label_table.values))

    def to_dict(self) -> dict[str, Any]:
        """JSON form (model cards, cache keys)."""
        return {"spacing": list(self.spacing), "shape": list(self.shape), "channels": list(self.channels),
                "modality": self.modality.value, "label_values": list(self.label_values)}

    def key(self) -> str:
        """Short hash identifying these settings and the preprocessing version."""
        text = json.dumps({**self.to_dict(), "cache_version": CACHE_VERSION}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclasses.dataclass(frozen=True, kw_only=True)
class PreparedCase:
    """One case on the model grid, in network units.

    Args:
        case_id: the source case id.
        image: ``[C, z, y, x]`` float32 (MR: ``[-1, 2]``, background -1; CT: ``[-1, 1]``).
        label: ``[z, y, x]`` int16 label map.
        brain: ``[z, y, x]`` bool brain mask (contains every lesion voxel).
        geometry: the grid's geometry (physical placement of this case on the model grid).
        intensity: the case's intensity map (network units <-> physical units).
        source_spacing: spacing (mm, x y z) of the source case before resampling.
        source_key: identity of the source (files or voxels) and grid settings; the cache key.
    """

    case_id: str
    image: np.ndarray
    label: np.ndarray
    brain: np.ndarray
    geometry: Geometry
    intensity: IntensityMap
    source_spacing: tuple[float, float, float] = (0.0, 0.0, 0.0)
    source_key: str = ""


def default_cache_dir() -> Path:
    """``$SYNTHETIC_IMAGING_CACHE`` or ``~/.cache/SyntheticImaging``, subfolder ``preprocessed``."""
    root = os.environ.get("SYNTHETIC_IMAGING_CACHE") or Path.home() / ".cache" / "SyntheticImaging"
    return Path(root) / "preprocessed"


def _brain_mask(case: Case) -> np.ndarray:
    if case.brain_mask is not None:
        return np.asarray(case.brain_mask, dtype=bool)
    try:
        from ..anatomy import brain_mask
    except ImportError:  # anatomy masks are optional: the head/non-zero foreground is a usable fallback
        return foreground_mask(case)
    return brain_mask(case)


def prepare_case(case: Case, settings: GridSettings) -> PreparedCase:
    """Put one case on the model grid (no cache; see :func:`prepare_cases`).

    Args:
        case: a labelled case (a missing label is treated as "no lesion").
        settings: the model grid.

    Raises:
        InputError: a channel is missing, the modality differs, or label values are unknown to the model.
    """
    missing = [c for c in settings.channels if c not in case.channels]
    if missing:
        raise InputError(f"channels {missing} are missing (the case has {case.channel_names})", where=case.case_id,
                         fix="load the dataset with channel names matching the task (e.g. --layout brats)")
    if case.modality != settings.modality:
        raise InputError(f"the case is {case.modality.value}, the task expects {settings.modality.value}",
                         where=case.case_id, fix="pick the task that matches the data (--task)")
    source_spacing = case.geometry.spacing
    case = case.replace(channels={c: case.channels[c] for c in settings.channels})
    case = crop_or_pad(resample_case(case, settings.spacing), settings.shape)
    label = np.zeros(case.shape, np.int16) if case.label is None else case.label.astype(np.int16)
    unknown = sorted(set(np.unique(label).tolist()) - {0} - set(settings.label_values))
    if unknown:
        raise LabelError(f"label values {unknown} are not among the model's label values {settings.label_values}",
                         where=case.case_id, fix="merge the label values into the task's labels (e.g. whole tumour "
                         "= 1) before training")
    brain = _brain_mask(case) | (label > 0)
    case = case.replace(label=label, brain_mask=brain)
    intensity = IntensityMap.fit(case)
    image = np.stack([intensity.forward_array(case.channels[c], c) for c in settings.channels])
    return PreparedCase(case_id=case.case_id, image=image.astype(np.float32), label=label, brain=brain,
                        geometry=case.geometry, intensity=intensity, source_spacing=source_spacing)


def _case_key(case: Case | None, entry: Any, settings: GridSettings) -> str:
    h = hashlib.sha256(settings.key().encode())
    if entry is not None:  # a dataset entry: its files identify it without reading voxels
        h.update(f"{entry.case_id}|{CANONICAL_ORIENTATION}".encode())  # loaded canonical (not in older caches)
        for p in [*entry.images.values(), *([entry.label] if entry.label else [])]:
            st = Path(p).stat()
            h.update(f"{Path(p).resolve()}|{st.st_size}|{st.st_mtime_ns}".encode())
    else:
        assert case is not None
        h.update(case.case_id.encode())
        h.update(json.dumps(case.geometry.to_dict()).encode())
        for name in case.channel_names:
            h.update(name.encode())
            h.update(np.ascontiguousarray(case.channels[name]).tobytes())
        for extra in (case.label, case.brain_mask):
            h.update(b"-" if extra is None else np.ascontiguousarray(extra).tobytes())
    return h.hexdigest()[:20]


def _cache_path(cache_dir: Path, settings: GridSettings, case_id: str, key: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", case_id)[:64]
    return cache_dir / settings.key() / f"{safe}-{key}.npz"


def _write_cache(path: Path, p: PreparedCase) -> None:
    meta = json.dumps({"case_id": p.case_id, "geometry": p.geometry.to_dict(), "intensity": p.intensity.to_dict(),
                       "source_spacing": list(p.source_spacing), "source_key": p.source_key})
    buf = io.BytesIO()
    np.savez(buf, image=p.image, label=p.label, brain=p.brain.astype(np.uint8), meta=np.array(meta))
    with atomic_file(path) as tmp:
        tmp.write_bytes(buf.getvalue())


def _read_cache(path: Path) -> PreparedCase | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            return PreparedCase(case_id=meta["case_id"], image=z["image"].astype(np.float32),
                                label=z["label"].astype(np.int16), brain=z["brain"].astype(bool),
                                geometry=Geometry.from_dict(meta["geometry"]),
                                intensity=IntensityMap.from_dict(meta["intensity"]),
                                source_spacing=tuple(meta["source_spacing"]), source_key=meta["source_key"])
    except (OSError, ValueError, KeyError, json.JSONDecodeError):
        return None  # a damaged entry is recomputed (and overwritten)


def prepare_cases(cases: Sequence[Case], settings: GridSettings, *, cache_dir: str | os.PathLike[str] | None = None,
                  progress: Reporter | ProgressCallback | None = None, stage: str = "prepare") -> list[PreparedCase]:
    """Preprocess cases to the model grid, reusing cached results.

    Args:
        cases: a :class:`~SyntheticImagingLib.io.datasets.Dataset` (cached by file identity: cached cases are not
            even read) or a sequence of in-memory cases (cached by voxel content).
        settings: the model grid.
        cache_dir: cache folder (None: no cache).
        progress: reporter or callback (stage ``prepare``).
        stage: the progress stage name.

    Returns:
        the prepared cases, in order.
    """
    reporter = as_reporter(progress)
    entries = getattr(cases, "entries", None)
    cache = Path(cache_dir) if cache_dir is not None else None
    out: list[PreparedCase] = []
    hits = 0
    for i in range(len(cases)):
        entry = entries[i] if entries is not None else None
        case = None if entry is not None else cases[i]
        case_id = entry.case_id if entry is not None else case.case_id  # type: ignore[union-attr]
        key = _case_key(case, entry, settings)
        path = None
        if cache is not None:
            path = _cache_path(cache, settings, case_id, key)
            cached = _read_cache(path) if path.exists() else None
            if cached is not None:
                out.append(cached)
                hits += 1
                reporter.report(stage, i + 1, len(cases), f"{case_id} (cached)")
                continue
        prepared = dataclasses.replace(prepare_case(case if case is not None else cases[i], settings),
                                       source_key=key)
        if path is not None:
            _write_cache(path, prepared)
        out.append(prepared)
        reporter.report(stage, i + 1, len(cases), prepared.case_id)
    return out


def data_fingerprint(cases: Sequence[Case], prepared: Sequence[PreparedCase],
                     settings: GridSettings) -> dict[str, Any]:
    """The model card's description of the training data (identifiers and hashes only, no patient data).

    Args:
        cases: the source dataset or cases (a dataset's own fingerprint is recorded when it has one).
        prepared: the prepared cases.
        settings: the model grid.
    """
    ids = [p.case_id for p in prepared]
    spacings = np.asarray([p.source_spacing for p in prepared], dtype=float)
    fingerprint = getattr(cases, "fingerprint", None)
    return {
        "count": len(prepared),
        "case_ids_sha256": hashlib.sha256("\n".join(ids).encode()).hexdigest(),
        "content_sha256": hashlib.sha256("\n".join(p.source_key for p in prepared).encode()).hexdigest(),
        "dataset_fingerprint": fingerprint() if callable(fingerprint) else None,
        "modality": settings.modality.value,
        "channels": list(settings.channels),
        "source_spacing_median": np.median(spacings, axis=0).round(4).tolist() if len(spacings) else None,
        "grid": settings.to_dict(),
        "lesion_cases": int(sum(bool((p.label > 0).any()) for p in prepared)),
    }


def save_masks(path: str | os.PathLike[str], masks: Sequence[tuple[np.ndarray, Geometry]]) -> dict[str, Any]:
    """Store masks (uint8, compressed) with their geometries; returns a model-card entry with the SHA-256.

    Only masks (anatomy backgrounds, lesion shapes) go into model folders, never images.
    """
    path = Path(path)
    arrays = {f"mask_{i:05d}": np.asarray(m, dtype=np.uint8) for i, (m, _) in enumerate(masks)}
    geoms = json.dumps([g.to_dict() for _, g in masks])
    buf = io.BytesIO()
    np.savez_compressed(buf, geometries=np.array(geoms), **arrays)  # type: ignore[arg-type]  # numpy's stub matches **arrays against allow_pickle
    with atomic_file(path) as tmp:
        tmp.write_bytes(buf.getvalue())
    return {"file": path.name, "count": len(masks), "sha256": hashlib.sha256(buf.getvalue()).hexdigest(),
            "contents": "uint8 masks on the model grid with their geometries (no images)"}


def load_masks(directory: str | os.PathLike[str], entry: dict[str, Any], *,
               as_bool: bool = True) -> list[tuple[np.ndarray, Geometry]]:
    """Read masks saved by :func:`save_masks`, checking the card's SHA-256 (no pickle); ``as_bool=False`` keeps
    the stored uint8 codes (anatomy maps)."""
    from ..errors import CheckpointError

    name = str(entry.get("file", ""))
    path = Path(directory) / name
    if not name or Path(name).name != name or not path.is_file():
        raise CheckpointError(f"mask file {name!r} named by the model card is missing", where=str(directory),
                              fix="copy the whole generator folder")
    data = path.read_bytes()
    if entry.get("sha256") and hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise CheckpointError("the mask file changed after its model card was written", where=str(path),
                              fix="restore the original file, or retrain")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            geoms = [Geometry.from_dict(g) for g in json.loads(str(z["geometries"]))]
            masks = [z[f"mask_{i:05d}"].astype(bool if as_bool else np.uint8) for i in range(len(geoms))]
    except (ValueError, KeyError, OSError, json.JSONDecodeError) as err:
        raise CheckpointError(f"mask file cannot be read ({err})", where=str(path)) from None
    return list(zip(masks, geoms))


def one_hot_label(label: torch.Tensor, values: Sequence[int]) -> torch.Tensor:
    """``[B, 1, ...]`` integer labels -> ``[B, len(values), ...]`` float one-hot (background not a channel)."""
    return torch.cat([(label == v).float() for v in values], dim=1)


class TrainingData(torch.utils.data.Dataset):
    """Prepared cases as a torch dataset, plus deterministic, resumable batches with light augmentation.

    ``dataset[i]`` gives case ``i`` as ``(image [C,z,y,x] float32, label [1,z,y,x] int64, brain [1,z,y,x]
    float32)`` unaugmented. :meth:`batch` gives the batch of a training step: the order of cases is a seeded
    permutation per epoch, and each sample's augmentation (left-right flip, small per-channel gain, and a patch
    crop when ``patch_size`` is smaller than the grid, centred on the lesion half of the time) is seeded by its
    position in that stream. The flip mirrors the patient's left and right: it flips the array axis that the case
    geometry says runs left-right, the last one (``x``) on cases in the library's canonical LPS orientation
    (:mod:`SyntheticImagingLib.io.orientation`), however the source files stored them.

    Args:
        cases: prepared cases.
        seed: seeds the order and the augmentation.
        augment: apply the flip and gain.
        patch_size: crop size ``(z, y, x)`` (None: whole volumes).
        lesion_focus: probability that a patch is centred on a lesion voxel.
    """

    def __init__(self, cases: Sequence[PreparedCase], *, seed: int = 0, augment: bool = True,
                 patch_size: Sequence[int] | None = None, lesion_focus: float = 0.5) -> None:
        if not cases:
            raise InputError("no training case", fix="give a dataset with at least one labelled case")
        self.cases = list(cases)
        self.seed = int(seed)
        self.augment = augment
        shape = self.cases[0].image.shape[1:]
        self.patch_size = tuple(int(s) for s in patch_size) if patch_size is not None else tuple(shape)
        if any(p > s for p, s in zip(self.patch_size, shape)):
            raise InputError(f"patch size {self.patch_size} is larger than the grid {tuple(shape)}")
        self.lesion_focus = float(lesion_focus)

    def __len__(self) -> int:
        return len(self.cases)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        c = self.cases[index]
        return (torch.from_numpy(c.image), torch.from_numpy(c.label.astype(np.int64))[None],
                torch.from_numpy(c.brain.astype(np.float32))[None])

    def case_index(self, position: int) -> int:
        """Which case sits at ``position`` of the sample stream (seeded permutation per epoch)."""
        n = len(self.cases)
        epoch, offset = divmod(int(position), n)
        return int(np.random.default_rng([self.seed, epoch]).permutation(n)[offset])

    def sample(self, position: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The (augmented) sample at ``position`` of the stream: image, label, brain (numpy, channel-first)."""
        c = self.cases[self.case_index(position)]
        rng = np.random.default_rng([self.seed, 1, int(position)])
        image, label, brain = c.image, c.label[None], c.brain[None]
        shape = np.asarray(label.shape[1:])
        size = np.asarray(self.patch_size)
        if np.any(size < shape):
            lesion = np.argwhere(c.label > 0)
            if len(lesion) and rng.random() < self.lesion_focus:
                centre = lesion[rng.integers(len(lesion))]
                start = np.clip(centre - size // 2, 0, shape - size)
            else:
                start = np.array([rng.integers(0, s - p + 1) for s, p in zip(shape, size)])
            sl = (slice(None),) + tuple(slice(int(a), int(a + p)) for a, p in zip(start, size))
            image, label, brain = image[sl], label[sl], brain[sl]
        if self.augment:
            if rng.random() < 0.5:  # left-right flip in physical space: heads are nearly symmetric
                # the patient's left-right array axis, from the geometry: the last one (x) on canonical (LPS) cases
                axis = left_right_axis(c.geometry) - 3  # of [z, y, x] -> of [C, z, y, x]
                image, label, brain = (np.flip(a, axis=axis) for a in (image, label, brain))
            gain = rng.uniform(0.9, 1.1, size=(image.shape[0], 1, 1, 1)).astype(np.float32)
            image = (image + 1.0) * gain - 1.0  # scale around the background value (-1)
        return (np.ascontiguousarray(image, dtype=np.float32), np.ascontiguousarray(label, dtype=np.int64),
                np.ascontiguousarray(brain, dtype=np.float32))

    def batch(self, step: int, batch_size: int, *, rank: int = 0, world_size: int = 1) -> dict[str, torch.Tensor]:
        """The batch of training ``step`` for ``rank``: ``{"image", "label", "brain", "position"}`` tensors.

        Every rank takes its own ``batch_size`` samples of the step's ``batch_size * world_size``.
        """
        first = (int(step) * world_size + rank) * batch_size
        samples = [self.sample(first + j) for j in range(batch_size)]
        return {"image": torch.from_numpy(np.stack([s[0] for s in samples])),
                "label": torch.from_numpy(np.stack([s[1] for s in samples])),
                "brain": torch.from_numpy(np.stack([s[2] for s in samples])),
                "position": torch.arange(first, first + batch_size)}
