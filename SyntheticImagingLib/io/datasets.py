"""Datasets: a folder of case folders, or an MSD/MONAI-style ``dataset.json`` datalist.

A :class:`Dataset` is a lazy sequence of :class:`~SyntheticImagingLib.cases.Case`: it holds file paths and
loads a case when indexed, so a dataset of hundreds of volumes costs no memory until used. Synthetic datasets
are written back in the same form (:func:`write_dataset`) with a ``dataset.json``, so they feed straight back in.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..cases import TUMOR_LABELS, Case, Geometry, LabelTable, LesionKind, Modality
from ..errors import DatasetError, GeometryError, InputError, LabelError
from ..label_roles import CONVENTIONS, convention_table
from .atomic import atomic_dir, write_json
from .images import IMAGE_SUFFIXES, read_image, write_image
from .orientation import SOURCE_ORIENTATION_KEY, to_canonical, to_source_orientation
from .seg_nrrd import read_seg_nrrd, write_seg_nrrd

__all__ = ["DatasetLayout", "CaseEntry", "Dataset", "load_dataset", "write_dataset", "load_case", "infer_modality",
           "LAYOUTS"]

#: Name tokens of label files (``GT_W``, ``OTMultiClass``, ``seg``, ``label``, ``truth``...).
_LABEL_HINTS = ("label", "labels", "seg", "segmentation", "gt", "ot", "otmulticlass", "truth", "groundtruth",
                "annotation", "annotations", "mask")
#: Name tokens of an anatomy (brain or head) mask beside the images: the generators condition on it.
_MASK_HINTS = ("brainmask", "headmask", "brain", "head", "skullstrip", "skull", "roi")


def _tokens(path: Path) -> list[str]:
    import re

    stem = _stem(path).lower()
    return [t for t in re.split(r"[^a-z0-9]+", stem) if t] + [stem.replace("_", "").replace("-", "")]


def _is_anatomy_mask(path: Path) -> bool:
    """``brainmask``, ``brain_mask``, ``head-mask``, ``*_mask*`` with brain/head: the anatomy, not a lesion label."""
    tokens = _tokens(path)
    joined = tokens[-1]
    return "mask" in joined and any(h in joined for h in _MASK_HINTS)


def _is_label_like(path: Path) -> bool:
    tokens = _tokens(path)
    return any(t in _LABEL_HINTS for t in tokens[:-1]) or any(tokens[-1].startswith(h) for h in ("otmulticlass",
                                                                                                  "gt", "seg"))


@dataclasses.dataclass(frozen=True, kw_only=True)
class DatasetLayout:
    """How image and label files are found inside a case folder.

    Args:
        channels: channel name -> glob pattern of its file inside a case folder (e.g. ``{"FLAIR": "FLAIR.*"}``).
            Empty: every image file that is not a label is a channel, named by its file stem.
        label: glob pattern of the label file (``.seg.nrrd`` or any image format), or None for no label.
        modality: the modality if known (otherwise inferred from intensities).
        lesion_kind: what the labels mark.
        label_table: names of label values (default: ``{1: "tumor"}``).
        mask: glob pattern of the anatomy (brain/head) mask, ``"auto"`` (``brainmask``, ``brain_mask``,
            ``*head*mask*``...) or None for none.
    """

    channels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    label: str | None = "*label*"
    mask: str | None = "auto"
    modality: Modality | None = None
    lesion_kind: LesionKind = LesionKind.TUMOR
    label_table: LabelTable = TUMOR_LABELS


#: Named layouts (``--layout`` in the CLI).
LAYOUTS: dict[str, DatasetLayout] = {
    "brats": DatasetLayout(channels={"FLAIR": "FLAIR.*", "T1": "T1.*"}, label="GT_W.*", modality=Modality.MR),
    "brats2013": DatasetLayout(channels={"Flair": "Flair*", "T1c": "T1c*"}, label="OTMultiClass*",
                               mask="brainmask*", modality=Modality.MR, label_table=CONVENTIONS["brats2013"]),
    "auto": DatasetLayout(),
}


@dataclasses.dataclass(frozen=True)
class CaseEntry:
    """Where one case's files are."""

    case_id: str
    images: dict[str, Path]
    label: Path | None
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)
    mask: Path | None = None


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".seg.nrrd",) + IMAGE_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _is_image(path: Path) -> bool:
    return path.is_file() and path.name.endswith(IMAGE_SUFFIXES) and not path.name.startswith(".")


def infer_modality(array: np.ndarray) -> Modality:
    """Guess MR or CT from intensities: CT is in HU (air near -1000, or a stripped brain in 0..100 HU).

    Example:
        >>> infer_modality(np.full((4, 4, 4), -1000.0))
        <Modality.CT: 'CT'>
    """
    a = np.asarray(array, dtype=np.float32)
    if a.size == 0:
        return Modality.MR
    if float(a.min()) < -200 and np.mean(a < -200) > 0.01:
        return Modality.CT
    fg = a[a != 0]
    if fg.size and float(np.percentile(fg, 99.5)) < 150 and float(np.percentile(fg, 50)) > 5:
        return Modality.CT  # skull-stripped HU: brain 20-45 HU
    return Modality.MR


def read_label(path: Path) -> tuple[np.ndarray, Geometry, LabelTable | None]:
    """A label file as an integer map; ``.seg.nrrd`` files bring their segment names."""
    if path.name.endswith(".seg.nrrd"):
        return read_seg_nrrd(path)
    array, geometry = read_image(path)
    return array, geometry, None


def _check_same_grid(case_id: str, ref_name: str, ref: tuple[tuple[int, ...], Geometry],
                     name: str, other: tuple[tuple[int, ...], Geometry]) -> None:
    diffs = other[1].differences(ref[1])
    if other[0] != ref[0]:
        diffs.insert(0, f"shape (z,y,x) {other[0]} vs {ref[0]}")
    if diffs:
        raise GeometryError(
            f"{name} is not on the same grid as {ref_name}: " + "; ".join(diffs),
            where=case_id, fix=f"resample {name} onto {ref_name} (e.g. in Slicer: Resample Image (BRAINS)) or "
            "pick the matching file; nothing is resampled silently")


def load_case(entry: CaseEntry, *, modality: Modality | None = None, lesion_kind: LesionKind = LesionKind.TUMOR,
              label_table: LabelTable | None = None, require_label: bool = False) -> Case:
    """Load one case from its files, checking that all channels and the label share one grid.

    The case comes in the library's canonical orientation (LPS, see :mod:`.orientation`); the file's own
    orientation is kept in ``metadata["source_orientation"]`` so :func:`write_dataset` writes it back that way.
    """
    channels: dict[str, np.ndarray] = {}
    grids: dict[str, tuple[tuple[int, ...], Geometry]] = {}
    for name, path in entry.images.items():
        array, geometry = read_image(path)
        channels[name] = array.astype(np.float32, copy=False)
        grids[f"channel {name!r} ({path.name})"] = (array.shape, geometry)
    if not channels:
        raise DatasetError("no image file found for this case", where=entry.case_id,
                           fix="check the channel name patterns (--channels) against the files in the case folder")
    (ref_name, ref), *others = grids.items()
    for name, grid in others:
        _check_same_grid(entry.case_id, ref_name, ref, name, grid)
    label = None
    table = label_table or TUMOR_LABELS
    if entry.label is not None:
        label, lgeom, file_table = read_label(entry.label)
        _check_same_grid(entry.case_id, ref_name, ref, f"the label ({entry.label.name})", (label.shape, lgeom))
        if file_table is not None and label_table is None:
            table = file_table
        elif label_table is None:
            values = [int(v) for v in np.unique(label) if v != 0]
            if values and values != [1]:
                table = LabelTable({v: f"label {v}" for v in values})
    elif require_label:
        raise LabelError("no label file found for this case", where=entry.case_id,
                         fix="add the label file, or set the label pattern (--label-pattern) to match it")
    brain = None
    if entry.mask is not None:
        mask, mgeom = read_image(entry.mask)
        _check_same_grid(entry.case_id, ref_name, ref, f"the anatomy mask ({entry.mask.name})", (mask.shape, mgeom))
        brain = np.asarray(mask) > 0
        if not brain.any():
            raise InputError(f"the anatomy mask {entry.mask.name} is empty", where=entry.case_id,
                             fix="use the case's brain/head mask, or remove the empty file")
    if modality is None:
        modality = infer_modality(next(iter(channels.values())))
    metadata = {k: v for k, v in entry.metadata.items() if k != SOURCE_ORIENTATION_KEY}  # the files tell it
    case = Case(case_id=entry.case_id, channels=channels, geometry=ref[1], modality=modality,
                lesion_kind=lesion_kind, label=label, label_table=table, brain_mask=brain, metadata=metadata)
    return to_canonical(case).validate(require_label=require_label)


class Dataset(Sequence[Case]):
    """A lazy, ordered collection of cases (loaded when indexed).

    Args:
        entries: where each case's files are.
        modality: modality of all cases (None: inferred per case).
        lesion_kind: what the labels mark.
        label_table: label names (None: from ``.seg.nrrd`` files, else ``{1: "tumor"}``).
        root: the dataset folder.
        info: extra ``dataset.json`` content (e.g. the generator that made a synthetic set).
    """

    def __init__(self, entries: Sequence[CaseEntry], *, modality: Modality | None = None,
                 lesion_kind: LesionKind = LesionKind.TUMOR, label_table: LabelTable | None = None,
                 root: Path | None = None, info: Mapping[str, Any] | None = None) -> None:
        self.entries = list(entries)
        self.modality = Modality(modality) if modality is not None else None
        self.lesion_kind = LesionKind(lesion_kind)
        self.label_table = label_table
        self.root = root
        self.info = dict(info or {})

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> Case:  # type: ignore[override]
        return load_case(self.entries[index], modality=self.modality, lesion_kind=self.lesion_kind,
                         label_table=self.label_table)

    def __iter__(self) -> Iterator[Case]:
        for i in range(len(self)):
            yield self[i]

    @property
    def case_ids(self) -> list[str]:
        """Case identifiers in order."""
        return [e.case_id for e in self.entries]

    def subset(self, case_ids: Iterable[str]) -> Dataset:
        """The cases with these ids (a split by case, never by patch)."""
        wanted = list(case_ids)
        by_id = {e.case_id: e for e in self.entries}
        missing = [c for c in wanted if c not in by_id]
        if missing:
            raise DatasetError(f"case ids not in the dataset: {missing}", where=str(self.root or "dataset"))
        return Dataset([by_id[c] for c in wanted], modality=self.modality, lesion_kind=self.lesion_kind,
                       label_table=self.label_table, root=self.root, info=self.info)

    def fingerprint(self) -> str:
        """Short hash of the case ids and file sizes (identifies the training data in model cards)."""
        h = hashlib.sha256()
        for e in self.entries:
            h.update(e.case_id.encode())
            for p in [*e.images.values(), *([e.label] if e.label else []), *([e.mask] if e.mask else [])]:
                h.update(str(p.stat().st_size).encode())
        return h.hexdigest()[:16]

    def describe(self) -> dict[str, Any]:
        """What the dataset holds, without loading all voxels (the first case is read for geometry)."""
        out: dict[str, Any] = {"root": str(self.root) if self.root else None, "cases": len(self),
                               "case_ids": self.case_ids, "lesion_kind": self.lesion_kind.value,
                               "fingerprint": self.fingerprint()}
        if self.entries:
            first = self[0]
            out.update(modality=first.modality.value, channels=first.channel_names, shape_zyx=list(first.shape),
                       spacing=list(first.geometry.spacing), labels=first.label_table.to_dict(),
                       labelled=sum(e.label is not None for e in self.entries))
        out.update({k: v for k, v in self.info.items() if k in ("generator", "synthetic", "created")})
        return out


def _inside(root: Path, path: Path, allow_outside_root: bool, where: str) -> Path:
    resolved = (root / path).resolve()
    if not allow_outside_root and not resolved.is_relative_to(root.resolve()):
        raise DatasetError(f"path {str(path)!r} points outside the dataset folder", where=where,
                           fix="move the file into the dataset folder, or allow outside paths "
                           "(allow_outside_root=True, --allow-outside-root) if you trust this dataset.json")
    return resolved


def _from_json(path: Path, layout: DatasetLayout, allow_outside_root: bool, section: str) -> Dataset:
    where = str(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DatasetError(f"dataset.json cannot be parsed ({err})", where=where,
                           fix="repair the JSON (e.g. check it with `python -m json.tool`)") from None
    if isinstance(data, dict) and "channel_names" in data and not isinstance(data.get(section), list):
        return _from_nnunet(path, data, layout)
    if not isinstance(data, dict) or not isinstance(data.get(section), list):
        raise DatasetError(f"dataset.json has no list {section!r} of cases", where=where,
                           fix='use the MSD/MONAI form: {"training": [{"image": ..., "label": ...}, ...]}')
    root = path.parent
    own = data.get("synthetic_imaging", {}) if isinstance(data.get("synthetic_imaging"), dict) else {}
    channel_names = own.get("channel_names")
    if channel_names is None and isinstance(data.get("modality"), dict):
        channel_names = [str(v) for _, v in sorted(data["modality"].items(), key=lambda kv: int(kv[0]))]
    entries = []
    for i, item in enumerate(data[section]):
        if not isinstance(item, dict) or "image" not in item:
            raise DatasetError(f"entry {i} of {section!r} has no 'image'", where=where)
        images = item["image"] if isinstance(item["image"], list) else [item["image"]]
        if not all(isinstance(p, str) for p in images):
            raise DatasetError(f"entry {i}: 'image' must be a path or a list of paths", where=where)
        names = list(channel_names) if channel_names and len(channel_names) == len(images) else (
            [_stem(Path(p)) for p in images] if len(images) > 1 else ["image"])
        paths = {n: _inside(root, Path(p), allow_outside_root, where) for n, p in zip(names, images)}
        label = item.get("label")
        label_path = _inside(root, Path(label), allow_outside_root, where) if isinstance(label, str) else None
        mask = item.get("mask", item.get("brain_mask"))
        mask_path = _inside(root, Path(mask), allow_outside_root, where) if isinstance(mask, str) else None
        for p in [*paths.values(), *([label_path] if label_path else []), *([mask_path] if mask_path else [])]:
            if not p.exists():
                raise DatasetError(f"entry {i} names a file that does not exist: {p}", where=where,
                                   fix="correct the path in dataset.json (paths are relative to its folder)")
        case_id = str(item.get("id") or _stem(Path(images[0])))
        entries.append(CaseEntry(case_id, paths, label_path, dict(item.get("metadata", {})), mask=mask_path))
    try:
        labels = own.get("label_table") or data.get("labels")
        table = _label_table(labels) if isinstance(labels, dict) else layout.label_table
        modality = own.get("modality") or layout.modality
        return Dataset(entries, modality=modality, lesion_kind=own.get("lesion_kind", layout.lesion_kind),
                       label_table=table, root=root, info=data)
    except (ValueError, TypeError) as err:
        raise DatasetError(f"dataset.json has an invalid label table, modality or lesion kind ({err})", where=where,
                           fix='labels as {"1": "tumor"}, modality MR or CT, lesion_kind tumor or hemorrhage') from None


def _label_table(labels: Mapping[str, Any]) -> LabelTable:
    """MSD ``{"1": "edema"}`` or nnU-Net v2 ``{"edema": 1}`` labels (nnU-Net region lists are skipped)."""
    if all(isinstance(v, str) for v in labels.values()):
        return LabelTable.from_dict(labels)
    return LabelTable({int(v): str(k) for k, v in labels.items() if isinstance(v, int) and not isinstance(v, bool)})


def _from_nnunet(path: Path, data: Mapping[str, Any], layout: DatasetLayout) -> Dataset:
    """An nnU-Net v2 raw dataset: ``imagesTr/<case>_<XXXX><ending>``, ``labelsTr/<case><ending>``."""
    root, where = path.parent, str(path)
    ending = str(data.get("file_ending", ".nii.gz"))
    try:
        channels = {int(k): str(v) for k, v in dict(data["channel_names"]).items()}
    except (TypeError, ValueError) as err:
        raise DatasetError(f"dataset.json 'channel_names' is not {{\"0\": \"name\", ...}} ({err})",
                           where=where) from None
    images_dir, labels_dir = root / "imagesTr", root / "labelsTr"
    if not images_dir.is_dir():
        raise DatasetError("nnU-Net dataset without an imagesTr folder", where=str(root),
                           fix="keep dataset.json beside imagesTr/ and labelsTr/ as nnU-Net v2 lays them out")
    cases = sorted({p.name[: -len(ending) - 5] for p in images_dir.iterdir() if p.name.endswith(f"_0000{ending}")})
    entries = []
    for case_id in cases:
        images = {}
        for index, name in sorted(channels.items()):
            f = images_dir / f"{case_id}_{index:04d}{ending}"
            if not f.exists():
                raise DatasetError(f"channel {name!r} of case {case_id} is missing ({f.name})", where=str(images_dir),
                                   fix="every case needs one file per channel_names entry")
            images[name] = f
        label = labels_dir / f"{case_id}{ending}"
        entries.append(CaseEntry(case_id, images, label if label.exists() else None))
    if not entries:
        raise DatasetError(f"no <case>_0000{ending} file in imagesTr", where=str(images_dir))
    labels = data.get("labels")
    table = _label_table(labels) if isinstance(labels, dict) else layout.label_table
    return Dataset(entries, modality=layout.modality, lesion_kind=layout.lesion_kind, label_table=table, root=root,
                   info=dict(data))


def _from_folder(root: Path, layout: DatasetLayout) -> Dataset:
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    entries = []
    for folder in folders:
        files = sorted(p for p in folder.iterdir() if _is_image(p))
        mask = None
        if layout.mask:
            masks = ([p for p in files if _is_anatomy_mask(p)] if layout.mask == "auto"
                     else [p for p in files if fnmatch.fnmatch(p.name.lower(), layout.mask.lower())])
            if len(masks) > 1:
                raise DatasetError(f"several files look like the brain/head mask: {[p.name for p in masks]}",
                                   where=str(folder), fix="keep one anatomy mask per case folder")
            mask = masks[0] if masks else None
            files = [p for p in files if p != mask]
        label = None
        if layout.label:
            matches = [p for p in files if fnmatch.fnmatch(p.name.lower(), layout.label.lower())]
            if layout.label == "*label*" and not matches:  # auto layout: other usual label names
                matches = [p for p in files if _is_label_like(p)]
            if len(matches) > 1:
                raise DatasetError(f"several files match the label pattern {layout.label!r}: "
                                   f"{[p.name for p in matches]}", where=str(folder),
                                   fix="make the label pattern match exactly one file (--label-pattern)")
            label = matches[0] if matches else None
        images: dict[str, Path] = {}
        if layout.channels:
            for name, pattern in layout.channels.items():
                matches = [p for p in files if fnmatch.fnmatch(p.name, pattern) and p != label]
                if len(matches) != 1:
                    raise DatasetError(
                        f"channel {name!r}: pattern {pattern!r} matches {len(matches)} files "
                        f"({[p.name for p in matches]}) in a folder of {[p.name for p in files]}",
                        where=str(folder), fix="make each channel pattern match exactly one file (--channels)")
                images[name] = matches[0]
        else:
            images = {_stem(p): p for p in files if p != label}
        if not images:
            continue  # not a case folder
        entries.append(CaseEntry(folder.name, images, label, mask=mask))
    if not entries:
        raise DatasetError("no case folder with image files found", where=str(root),
                           fix="give a folder of case folders (one per case) or a dataset.json")
    return Dataset(entries, modality=layout.modality, lesion_kind=layout.lesion_kind,
                   label_table=None if layout.label_table is TUMOR_LABELS else layout.label_table, root=root)


def load_dataset(path: str | os.PathLike[str], *, layout: DatasetLayout | str | None = None,
                 allow_outside_root: bool = False, section: str = "training",
                 labels: LabelTable | str | None = None) -> Dataset:
    """Open a dataset: a ``dataset.json``, a folder holding one, or a folder of case folders.

    Args:
        path: the dataset.
        layout: file patterns (a :class:`DatasetLayout` or a name from :data:`LAYOUTS`); default: automatic.
        allow_outside_root: let ``dataset.json`` name files outside its folder (off: a hostile datalist cannot
            make the tool read elsewhere).
        section: which list of ``dataset.json`` to read (``training``, ``test``, ...).
        labels: the label table to use instead of the files' own names: a :class:`LabelTable` or a named
            convention of :data:`~SyntheticImagingLib.label_roles.CONVENTIONS` (``brats2013`` for an unnamed
            1..4 label file). Its values must be the files' values.

    Example:
        >>> ds = load_dataset("../shared/data/brats2018", layout="brats")  # doctest: +SKIP
        >>> ds[0].channel_names  # doctest: +SKIP
        ['FLAIR', 'T1']
    """
    path = Path(path)
    if isinstance(layout, str):
        if layout not in LAYOUTS:
            raise InputError(f"unknown layout {layout!r}", fix=f"use one of {sorted(LAYOUTS)}")
        layout = LAYOUTS[layout]
    layout = layout or LAYOUTS["auto"]
    if not path.exists():
        raise DatasetError("dataset not found", where=str(path), fix="check the path")
    if path.is_file():
        if path.suffix != ".json":
            raise DatasetError("a dataset is a folder or a dataset.json file", where=str(path))
        dataset = _from_json(path, layout, allow_outside_root, section)
    elif (path / "dataset.json").exists():
        dataset = _from_json(path / "dataset.json", layout, allow_outside_root, section)
    else:
        dataset = _from_folder(path, layout)
    if labels is not None:
        dataset.label_table = convention_table(labels) if isinstance(labels, str) else labels
    return dataset


def write_dataset(cases: Iterable[Case], out_dir: str | os.PathLike[str], *, label_format: str = "nii.gz",
                  image_format: str = "nii.gz", info: Mapping[str, Any] | None = None, overwrite: bool = False,
                  progress: Callable[[int, str], None] | None = None) -> Path:
    """Write cases as a dataset folder with a ``dataset.json`` (atomically: complete or absent).

    Args:
        cases: the cases (an iterable: they may be generated one at a time).
        out_dir: the dataset folder to create.
        label_format: ``"nii.gz"``, ``"nrrd"`` or ``"seg.nrrd"`` (Slicer segmentation with segment names).
        image_format: ``"nii.gz"``, ``"nrrd"`` or ``"mha"``.
        info: extra top-level ``dataset.json`` content (generator, settings...).
        overwrite: replace an existing folder.
        progress: called with (number of cases written, case id) after each case.

    A case read from files (``metadata["source_orientation"]``) is written back in the voxel order of its source
    files; other cases (e.g. synthetic ones on a model grid) as they are, in the canonical orientation. Either way
    the geometry is physical: every voxel is written where it is.
    """
    out_dir = Path(out_dir)
    entries: list[dict[str, Any]] = []
    first: Case | None = None
    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        for i, case in enumerate(cases):
            first = first or case
            case = to_source_orientation(case)
            folder = tmp / case.case_id
            folder.mkdir()
            images = []
            for name, array in case.channels.items():
                f = folder / f"{name}.{image_format}"
                write_image(f, array, case.geometry)
                images.append(f"{case.case_id}/{f.name}")
            entry: dict[str, Any] = {"id": case.case_id, "image": images}
            if case.label is not None:
                f = folder / f"label.{label_format}"
                if label_format == "seg.nrrd":
                    write_seg_nrrd(f, case.label, case.geometry, case.label_table)
                else:
                    write_image(f, case.label, case.geometry)
                entry["label"] = f"{case.case_id}/{f.name}"
            if case.metadata:
                entry["metadata"] = case.metadata
            entries.append(entry)
            if progress:
                progress(i + 1, case.case_id)
        if first is None:
            raise InputError("no case to write", where=str(out_dir))
        data: dict[str, Any] = {
            "name": out_dir.name,
            "modality": {str(i): n for i, n in enumerate(first.channel_names)},
            "labels": {"0": "background", **first.label_table.to_dict()},
            "numTraining": len(entries),
            "synthetic_imaging": {"modality": first.modality.value, "lesion_kind": first.lesion_kind.value,
                                  "channel_names": first.channel_names, "label_table": first.label_table.to_dict()},
            **dict(info or {}),
            "training": entries,
        }
        write_json(tmp / "dataset.json", data)
    return out_dir

