"""Read DICOM image series folders (the same path training data and import use).

pydicom reads the headers to check the folder is one consistent series (one SeriesInstanceUID, no missing
slices, uniform spacing, one slice size and pixel spacing, a supported transfer syntax in every file); SimpleITK
then reads the pixels of the slices in order (applying Rescale Slope/Intercept, so CT comes out in HU).

:func:`read_dicom_case` wraps a series as a :class:`~SyntheticImagingLib.cases.Case` without keeping any
identifying value of the source (no names, ids, dates, UIDs, descriptions or paths in the metadata).
"""

from __future__ import annotations

import os
import struct
import uuid
from collections import defaultdict
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.errors import BytesLengthException, InvalidDicomError

from ..cases import HEMORRHAGE_LABELS, TUMOR_LABELS, Case, Geometry, LesionKind, Modality
from ..errors import InputError, SyntheticImagingError, UnreadableFileError
from .images import from_sitk
from .orientation import to_canonical

__all__ = ["read_dicom_series", "read_dicom_case", "SUPPORTED_TRANSFER_SYNTAXES"]

SUPPORTED_TRANSFER_SYNTAXES = {
    "1.2.840.10008.1.2": "Implicit VR Little Endian",
    "1.2.840.10008.1.2.1": "Explicit VR Little Endian",
    "1.2.840.10008.1.2.1.99": "Deflated Explicit VR Little Endian",
    "1.2.840.10008.1.2.2": "Explicit VR Big Endian",
    "1.2.840.10008.1.2.4.50": "JPEG Baseline",
    "1.2.840.10008.1.2.4.57": "JPEG Lossless",
    "1.2.840.10008.1.2.4.70": "JPEG Lossless SV1",
    "1.2.840.10008.1.2.4.80": "JPEG-LS Lossless",
    "1.2.840.10008.1.2.4.81": "JPEG-LS Near-Lossless",
    "1.2.840.10008.1.2.4.90": "JPEG 2000 Lossless",
    "1.2.840.10008.1.2.4.91": "JPEG 2000",
    "1.2.840.10008.1.2.5": "RLE Lossless",
}


#: What pydicom raises for malformed files or values (besides its own InvalidDicomError).
_PARSE_ERRORS = (InvalidDicomError, BytesLengthException, ValueError, TypeError, AttributeError, KeyError,
                 IndexError, OverflowError, NotImplementedError, struct.error)


def _headers(folder: Path) -> tuple[list[tuple[Path, pydicom.Dataset]], int]:
    """Headers of the image files of ``folder`` and the number of DICOM files that are not 3D-placeable images."""
    out: list[tuple[Path, pydicom.Dataset]] = []
    unplaced = 0
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        if f.name.startswith(".") or f.name.upper() == "DICOMDIR":
            continue
        try:
            ds = pydicom.dcmread(f, stop_before_pixels=True)
        except (*_PARSE_ERRORS, OSError, EOFError):
            continue  # not a DICOM file (README, thumbnails): skipped, as DICOM browsers do
        if "SeriesInstanceUID" in ds and "ImagePositionPatient" in ds and "ImageOrientationPatient" in ds:
            out.append((f, ds))
        elif "SOPClassUID" in ds:
            unplaced += 1  # SEG, SR, presentation states, or images without a position (secondary capture)
    return out, unplaced


def _read_series(folder: str | os.PathLike[str]) -> tuple[np.ndarray, Geometry, list[pydicom.Dataset]]:
    """Checked read of one series: array ``[z, y, x]``, geometry, and the slice headers in array order."""
    try:
        return _read_series_unguarded(folder)
    except SyntheticImagingError:
        raise
    except _PARSE_ERRORS as err:
        # pydicom decodes values lazily: a corrupt value surfaces when read, as one of many exception types
        raise UnreadableFileError(f"a DICOM header is corrupt or holds an invalid value ({type(err).__name__}: "
                                  f"{str(err)[:160]})", where=str(folder),
                                  fix="re-export the series from the scanner or PACS") from None


def _read_series_unguarded(folder: str | os.PathLike[str]) -> tuple[np.ndarray, Geometry, list[pydicom.Dataset]]:
    folder = Path(folder)
    where = str(folder)
    if not folder.is_dir():
        raise UnreadableFileError("DICOM folder not found", where=where)
    headers, unplaced = _headers(folder)
    if not headers:
        if unplaced:
            raise InputError(f"the folder holds {unplaced} DICOM file(s) but no image with a position in space "
                             "(Image Position/Orientation Patient)", where=where,
                             fix="point at a CT or MR image series folder, not a segmentation, report or "
                                 "secondary-capture folder")
        raise UnreadableFileError("no DICOM image file found in the folder", where=where,
                                  fix="point at the folder that holds the .dcm files of one series")
    series: dict[str, list[tuple[Path, pydicom.Dataset]]] = defaultdict(list)
    for f, ds in headers:
        series[str(ds.SeriesInstanceUID)].append((f, ds))
    if len(series) > 1:
        # series number and modality say which is which without showing descriptions (they may hold PHI)
        desc = ", ".join(f"series {getattr(v[0][1], 'SeriesNumber', '?')} ({getattr(v[0][1], 'Modality', '?')}, "
                         f"{len(v)} files)" for v in series.values())
        raise InputError(f"the folder mixes {len(series)} series: {desc}", where=where,
                         fix="put each series in its own folder and load one at a time")
    files = next(iter(series.values()))
    syntaxes = {str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "") or "1.2.840.10008.1.2")
                for _, ds in files}
    unsupported = sorted(syntaxes - set(SUPPORTED_TRANSFER_SYNTAXES))
    if unsupported:
        names = ", ".join(f"{u} ({pydicom.uid.UID(u).name})" for u in unsupported)
        raise InputError(f"transfer syntax {names} is not supported", where=where,
                         fix="convert the series to Explicit VR Little Endian (e.g. dcmdjpeg, gdcmconv --raw)")
    sizes = {(int(getattr(ds, "Rows", 0)), int(getattr(ds, "Columns", 0))) for _, ds in files}
    if len(sizes) > 1:
        raise InputError(f"slices have different sizes {sorted(sizes)}", where=where,
                         fix="load a series whose slices all have one size")
    pixel_spacings = {tuple(np.round(np.asarray(getattr(ds, "PixelSpacing", (1, 1)), float), 4)) for _, ds in files}
    if len(pixel_spacings) > 1:
        raise InputError(f"slices have different pixel spacings {sorted(pixel_spacings)}", where=where,
                         fix="load a series whose slices share one pixel spacing")
    orientations = {tuple(np.round(np.asarray(ds.ImageOrientationPatient, float), 4)) for _, ds in files}
    if len(orientations) > 1:
        raise InputError("slices have different orientations", where=where,
                         fix="load a series whose slices are parallel (not a localizer/multi-plane series)")
    row, col = np.asarray(files[0][1].ImageOrientationPatient, float).reshape(2, 3)
    normal = np.cross(row, col)
    positions = np.array([np.dot(normal, np.asarray(ds.ImagePositionPatient, float)) for _, ds in files])
    order = np.argsort(positions, kind="stable")
    files = [files[i] for i in order]
    positions = positions[order]
    if len(files) < 2:
        raise InputError("the series has a single slice: a 3D volume needs several", where=where)
    gaps = np.diff(positions)
    if np.any(gaps < 1e-3):
        raise InputError("two slices share one position (duplicated slices or several acquisitions)",
                         where=where, fix="remove the duplicated files or split the acquisitions")
    step = float(np.median(gaps))
    if np.any(np.abs(gaps - step) > 0.01 * step + 1e-3):
        missing = int(np.round(gaps / step).sum() - len(gaps))
        what = f"{missing} slice(s) appear to be missing" if missing > 0 else "slice spacing is inconsistent"
        raise InputError(f"{what} (gaps between {gaps.min():.3f} and {gaps.max():.3f} mm)", where=where,
                         fix="re-export the complete series with uniform slice spacing")
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames([str(f) for f, _ in files])
    try:
        image = reader.Execute()
    except RuntimeError as err:
        raise UnreadableFileError(f"pixel data cannot be read ({str(err).strip().splitlines()[-1][:200]})",
                                  where=where, fix="re-export the series; a file may be truncated") from None
    array, geometry = from_sitk(image, where=where)
    # SimpleITK takes the spacing between slices from positions; keep the checked median to be exact
    geometry = Geometry((geometry.spacing[0], geometry.spacing[1], step), geometry.origin, geometry.direction)
    return array, geometry, [ds for _, ds in files]


def read_dicom_series(folder: str | os.PathLike[str]) -> tuple[np.ndarray, Geometry]:
    """Read the one image series in ``folder`` as a 3D array and geometry.

    Args:
        folder: folder holding the files of one series (searched recursively; non-DICOM files are skipped).

    Returns:
        the voxel array ``[z, y, x]`` (modality rescale applied, e.g. CT in HU) and its geometry.

    Raises:
        UnreadableFileError: no DICOM image in the folder, or a corrupt file.
        InputError: several series, missing slices, inconsistent spacing, size or orientation, unsupported
            transfer syntax.
    """
    array, geometry, _ = _read_series(folder)
    return array, geometry


def _real_world_mapping(headers: list[pydicom.Dataset]) -> tuple[float, float] | None:
    """The one linear Real World Value Mapping all slices share (as the exporter writes for float MR), if any."""
    found = set()
    for ds in headers:
        if float(getattr(ds, "RescaleSlope", 1) or 1) != 1 or float(getattr(ds, "RescaleIntercept", 0) or 0) != 0:
            return None  # a modality rescale was applied already; do not scale twice
        items = [i for i in ds.get("RealWorldValueMappingSequence", [])
                 if "RealWorldValueSlope" in i and "RealWorldValueIntercept" in i]
        if len(items) != 1:
            return None
        found.add((float(items[0].RealWorldValueSlope), float(items[0].RealWorldValueIntercept)))
    return found.pop() if len(found) == 1 else None


def read_dicom_case(folder: str | os.PathLike[str], *, case_id: str | None = None,
                    lesion_kind: LesionKind | str = "tumor", channel: str | None = None) -> Case:
    """Read one MR or CT series folder as an unlabelled :class:`Case`, keeping nothing that identifies it.

    Args:
        folder: the series folder.
        case_id: id of the case; by default a random, non-identifying ``dicom-<12 hex digits>``.
        lesion_kind: what a later label will mark (picks the default label table).
        channel: channel name; default the modality (``"MR"`` or ``"CT"``).

    Returns:
        the case: CT in HU; MR as stored, or in the units of a linear Real World Value Mapping that every slice
        shares (how the exporter stores non-integer MR), in the canonical orientation (LPS, see
        :mod:`.orientation`); ``metadata`` only holds the format, the modality and the series' own orientation
        (``source_orientation``: its code and direction cosines).

    Raises:
        InputError: a modality other than MR or CT, or any problem :func:`read_dicom_series` reports.
        UnreadableFileError: no readable image.
    """
    array, geometry, headers = _read_series(folder)
    modality = str(getattr(headers[0], "Modality", "") or "").upper()
    if modality not in (Modality.MR.value, Modality.CT.value):
        raise InputError(f"modality {modality or '(missing)'} is not supported; MR and CT series are",
                         where=str(folder), fix="load an MR or CT image series")
    data = array.astype(np.float32)
    if modality == Modality.MR.value and (mapping := _real_world_mapping(headers)) is not None:
        slope, intercept = mapping
        data = (array.astype(np.float64) * slope + intercept).astype(np.float32)
    kind = LesionKind(lesion_kind)
    return to_canonical(Case(
        case_id=case_id or f"dicom-{uuid.uuid4().hex[:12]}",
        channels={channel or modality: data},
        geometry=geometry,
        modality=Modality(modality),
        lesion_kind=kind,
        label=None,
        label_table=HEMORRHAGE_LABELS if kind is LesionKind.HEMORRHAGE else TUMOR_LABELS,
        metadata={"source_format": "dicom", "modality": modality},
    ))
