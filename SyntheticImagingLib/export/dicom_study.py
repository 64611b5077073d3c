"""Export synthetic cases as DICOM studies: image series + Segmentation, marked synthetic, with no PHI.

Layout of an export folder (no DICOMDIR)::

    OUT/index.json                                  every study of the folder
    OUT/<PatientID>/study-<n>/index.json            the study: series, files, UIDs, segments, intensity coding
    OUT/<PatientID>/study-<n>/series-001-MR-FLAIR/00001.dcm ...
    OUT/<PatientID>/study-<n>/series-003-SEG/00001.dcm

Each image channel is one single-frame series (MR Image Storage or CT Image Storage), the label map one
Segmentation (see :mod:`.dicom_seg`). A study folder is written under a temporary name and renamed when complete,
so it is complete or absent; with ``zip_output`` the study is delivered as ``study-<n>.zip`` instead, whose member
names are relative to the study folder (no absolute paths, no ``..``), so extracting it anywhere writes nothing
outside the chosen folder; :func:`safe_extract_zip` checks that before extracting.

Marking (PS3.3 C.12.1 / C.7.1.1, PS3.15): Synthetic Data = YES on every object; a Contributing Equipment item
with purpose "Synthesizing Equipment" (DCM 109100) naming this software and version; Image Type DERIVED\\SECONDARY
on images (the Segmentation IOD fixes its own as DERIVED\\PRIMARY); a Derivation Description naming generator,
checkpoint fingerprint and seed; Patient Identity Removed = YES with a De-identification Method; Burned In
Annotation = NO. Every UID is fresh (:mod:`.uids`); patient name and id follow the user's scheme or a generated
one; no value of any source file is copied.

Intensities:

* CT: stored int16 = round(HU) + 1024, Rescale Slope 1, Rescale Intercept -1024, Rescale Type HU. Integer HU
  round-trip exactly; fractional HU are rounded (error <= 0.5 HU).
* MR (the MR Image IOD has no rescale): integer-valued channels that fit 16 bits are stored as they are (exact).
  Other channels are scaled linearly to uint16 over their own min..max; the mapping back to the input units is a
  Real World Value Mapping item (slope, intercept), applied by :func:`~SyntheticImagingLib.io.dicom.read_dicom_case`.
  Precision: half a step, (max - min) / 131070 (e.g. 7.6e-6 of the range); the study index records the exact
  maximum error per series.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
import re
import shutil
import tempfile
import uuid
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import UID, ExplicitVRLittleEndian
from pydicom.valuerep import format_number_as_ds

from ..cases import Case, Geometry, Modality
from ..errors import DatasetError, GeometryError, InputError, ResourceError
from ..io.atomic import atomic_dir, atomic_file, os_error_to_resource_error, write_json
from .dicom_seg import build_segmentation
from .segment_codes import table_codings
from .uids import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME, is_project_uid, new_uid

__all__ = [
    "SOFTWARE_NAME",
    "MANUFACTURER",
    "INDEX_NAME",
    "MR_IMAGE_STORAGE",
    "CT_IMAGE_STORAGE",
    "CT_RESCALE_INTERCEPT",
    "IntensityCoding",
    "Provenance",
    "software_version",
    "encode_intensities",
    "export_dicom_study",
    "export_dicom_dataset",
    "safe_extract_zip",
]

SOFTWARE_NAME = "SyntheticImaging"
MANUFACTURER = "SyntheticImaging project"
#: Name of the index file of a study folder and of an export folder.
INDEX_NAME = "index.json"
MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
CT_RESCALE_INTERCEPT = -1024.0
_INDEX_FORMAT = "synthetic-imaging-dicom"
# worded so it stays true when a generator painted lesions into real (de-identified) anatomy
_DEIDENTIFICATION_METHOD = "Synthetic data; all identifiers and UIDs generated, none copied"
_SYNTHESIZING_EQUIPMENT = ("109100", "DCM", "Synthesizing Equipment")
_PREFIX_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")
# CT windows: brain, subdural (blood next to bone), bone
_CT_WINDOWS = ((40, 80, "BRAIN"), (75, 215, "SUBDURAL"), (600, 2800, "BONE"))

_GENERIC_KEYS = frozenset({"name", "version", "family", "fingerprint"})

ProgressCallback = Callable[[int, int, str], None]


def software_version() -> str:
    """This software's version: ``SyntheticImagingLib.__version__`` if the package defines it, else ``0.1.0``."""
    try:
        from .. import __version__  # type: ignore[attr-defined]
    except ImportError:
        return "0.1.0"
    return str(__version__)


# --------------------------------------------------------------------------------------------------------------
# provenance and identity


@dataclasses.dataclass(frozen=True)
class Provenance:
    """What made the synthetic images; written into every exported object.

    Args:
        generator_name: the generator (model family / method) that synthesized the case.
        generator_version: its version.
        checkpoint_fingerprint: fingerprint (hash) of the checkpoint's weights, or ``"none"``.
        seed: the random seed of the synthesis, or ``"unknown"``.
        software_version: version of this software.
    """

    generator_name: str
    generator_version: str
    checkpoint_fingerprint: str
    seed: str
    software_version: str

    def derivation_description(self) -> str:
        """Derivation Description text (ST, at most 1024 characters)."""
        text = (f"Synthetic image generated by {SOFTWARE_NAME} {self.software_version}; "
                f"generator {self.generator_name} {self.generator_version}; "
                f"checkpoint {self.checkpoint_fingerprint}; seed {self.seed}.")
        return text[:1024]

    def to_dict(self) -> dict[str, str]:
        """JSON form for the index."""
        return dataclasses.asdict(self)


def _provenance(case: Case, generator_name: str | None, generator_version: str | None,
                checkpoint_fingerprint: str | None, seed: int | str | None) -> Provenance:
    meta = case.metadata or {}
    gen = meta.get("generator")
    gen_map: Mapping[str, Any] = gen if isinstance(gen, Mapping) else {}

    def pick(explicit: Any, *keys: str, default: str) -> str:
        if explicit is not None:
            return str(explicit)
        for key in keys:
            for source in (gen_map, meta):
                if source is meta and key in _GENERIC_KEYS:
                    continue  # "name"/"version" at the top of a case's metadata may mean something else
                if source.get(key) not in (None, ""):
                    return str(source[key])
        return default

    name, version = generator_name, generator_version
    if isinstance(gen, str) and gen:
        # generators record themselves as "family/version" (Generator.name)
        family, _, gen_version = gen.rpartition("/") if "/" in gen else (gen, "", "")
        name = name if name is not None else family
        version = version if version is not None else (gen_version or None)
    return Provenance(
        generator_name=_clean_text(pick(name, "name", "generator_name", "family", default="unknown generator")),
        generator_version=_clean_text(pick(version, "version", "generator_version", default="unknown")),
        checkpoint_fingerprint=_clean_text(pick(checkpoint_fingerprint, "checkpoint_fingerprint", "fingerprint",
                                                "checkpoint_sha256", default="none")),
        seed=_clean_text(pick(seed, "seed", default="unknown")),
        software_version=software_version(),
    )


def _clean_text(text: str, limit: int = 256) -> str:
    # no backslash (the DICOM value separator) and no control characters in free text
    return re.sub(r"[\\\x00-\x1f\x7f]", " ", str(text)).strip()[:limit]


@dataclasses.dataclass(frozen=True)
class _Study:
    patient_name: str
    patient_id: str
    study_uid: str
    frame_of_reference_uid: str
    when: _dt.datetime
    provenance: Provenance
    description: str

    @property
    def date(self) -> str:
        return self.when.strftime("%Y%m%d")

    @property
    def time(self) -> str:
        return self.when.strftime("%H%M%S")


def _check_identity(patient_name: str, patient_id: str) -> None:
    if not patient_id or len(patient_id) > 64 or re.search(r"[\\\x00-\x1f\x7f]", patient_id):
        raise InputError(f"patient id {patient_id!r} is not a valid DICOM Patient ID",
                         fix="use 1 to 64 characters without backslash or control characters")
    groups = patient_name.split("=")
    if (not patient_name or len(groups) > 3 or any(len(g) > 64 for g in groups)
            or re.search(r"[\\\x00-\x1f\x7f]", patient_name)):
        raise InputError(f"patient name {patient_name!r} is not a valid DICOM Person Name",
                         fix="use up to 64 characters as Family^Given, without backslash")


def _safe_name(text: str, fallback: str | None = None) -> str:
    # folder names from our own values only, reduced to a portable alphabet (no separators, no "..")
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._")[:64]
    if not name:
        if fallback is None:
            raise InputError(f"{text!r} gives no usable folder name", fix="use letters and digits in the patient id")
        return fallback
    return name


# --------------------------------------------------------------------------------------------------------------
# intensities


@dataclasses.dataclass(frozen=True)
class IntensityCoding:
    """How one channel's float values are stored: ``value = stored * slope + intercept``.

    Args:
        dtype: stored integer type (``"uint16"`` or ``"int16"``).
        slope: multiplier back to the input units.
        intercept: offset back to the input units.
        exact: the round trip gives the input values exactly.
        max_abs_error: largest difference between input and decoded value of this channel.
        real_world_mapping: the mapping is written as a Real World Value Mapping (MR) rather than being the
            identity or a CT rescale.
    """

    dtype: str
    slope: float
    intercept: float
    exact: bool
    max_abs_error: float
    real_world_mapping: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON form for the index."""
        return dataclasses.asdict(self)


def encode_intensities(array: np.ndarray, modality: Modality | str) -> tuple[np.ndarray, IntensityCoding]:
    """Stored integer pixels of a float channel and the coding that maps them back.

    Args:
        array: channel ``[z, y, x]`` (finite values; CT in HU).
        modality: ``CT`` (HU with a -1024 intercept) or ``MR`` (exact if integral, else scaled to uint16).

    Raises:
        InputError: CT values outside what int16 with intercept -1024 holds (-33792..31743 HU).

    Example:
        >>> stored, coding = encode_intensities(np.array([[[-1000.0, 40.0]]]), "CT")
        >>> stored.tolist(), coding.intercept, coding.exact
        ([[[24, 1064]]], -1024.0, True)
    """
    a = np.asarray(array, dtype=np.float64)
    if Modality(modality) is Modality.CT:
        rounded = np.rint(a)
        stored = rounded - CT_RESCALE_INTERCEPT
        lo, hi = (float(stored.min()), float(stored.max())) if stored.size else (0.0, 0.0)
        if lo < -32768 or hi > 32767:
            raise InputError(f"CT values span {lo + CT_RESCALE_INTERCEPT:.0f}..{hi + CT_RESCALE_INTERCEPT:.0f} HU, "
                             "outside the -33792..31743 HU that 16-bit CT images hold",
                             fix="clip the image to a physical HU range (e.g. -1024..3071) before export")
        err = float(np.max(np.abs(rounded - a))) if a.size else 0.0
        return stored.astype(np.int16), IntensityCoding("int16", 1.0, CT_RESCALE_INTERCEPT, err == 0.0, err)
    lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
    if np.array_equal(a, np.rint(a)):
        if lo >= 0 and hi <= 65535:
            return a.astype(np.uint16), IntensityCoding("uint16", 1.0, 0.0, True, 0.0)
        if lo >= -32768 and hi <= 32767:
            return a.astype(np.int16), IntensityCoding("int16", 1.0, 0.0, True, 0.0)
    slope = (hi - lo) / 65535.0 if hi > lo else 1.0
    stored = np.clip(np.rint((a - lo) / slope), 0, 65535)
    err = float(np.max(np.abs(stored * slope + lo - a))) if a.size else 0.0
    return stored.astype(np.uint16), IntensityCoding("uint16", slope, lo, err == 0.0, err, real_world_mapping=True)


# --------------------------------------------------------------------------------------------------------------
# datasets


def _ds(value: float) -> str:
    return format_number_as_ds(float(value))


def _code_item(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def _contributing_equipment(study: _Study) -> DicomSequence:
    item = Dataset()
    item.PurposeOfReferenceCodeSequence = DicomSequence([_code_item(*_SYNTHESIZING_EQUIPMENT)])
    item.Manufacturer = MANUFACTURER
    item.ManufacturerModelName = SOFTWARE_NAME
    item.SoftwareVersions = study.provenance.software_version
    item.ContributionDateTime = study.when.strftime("%Y%m%d%H%M%S")
    item.ContributionDescription = _clean_text(
        f"Synthesized by generator {study.provenance.generator_name} {study.provenance.generator_version}", 1024)
    return DicomSequence([item])


def _mark_synthetic(ds: Dataset, study: _Study) -> None:
    """The marks every exported object carries (synthetic, no identity, who made it)."""
    ds.SyntheticData = "YES"
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = _DEIDENTIFICATION_METHOD
    ds.ContributingEquipmentSequence = _contributing_equipment(study)


def _file_meta(sop_class_uid: str, sop_instance_uid: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class_uid)
    meta.MediaStorageSOPInstanceUID = UID(sop_instance_uid)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = UID(IMPLEMENTATION_CLASS_UID)
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    return meta


def _check_orientation(geometry: Geometry) -> np.ndarray:
    d = geometry.direction_matrix
    if not np.allclose(d.T @ d, np.eye(3), atol=1e-4):
        raise GeometryError("the image grid is sheared (its direction matrix is not orthonormal); DICOM image "
                            "planes need perpendicular axes", fix="resample the case onto an orthogonal grid")
    return d


def _series_template(case: Case, study: _Study, *, channel: str, series_uid: str, series_number: int,
                     coding: IntensityCoding, stored: np.ndarray) -> Dataset:
    """Attributes shared by all slices of one image series (per-slice ones are added by the caller)."""
    g = case.geometry
    d = _check_orientation(g)
    ct = case.modality is Modality.CT
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.ImageType = ["DERIVED", "SECONDARY", "AXIAL" if ct else "OTHER"]
    ds.InstanceCreationDate = study.date
    ds.InstanceCreationTime = study.time
    ds.SOPClassUID = CT_IMAGE_STORAGE if ct else MR_IMAGE_STORAGE
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = study.date
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = study.time
    ds.AccessionNumber = ""
    ds.Modality = case.modality.value
    ds.Manufacturer = MANUFACTURER
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = study.description
    ds.SeriesDescription = _clean_text(f"Synthetic {channel}", 64)
    ds.ManufacturerModelName = SOFTWARE_NAME
    ds.DerivationDescription = study.provenance.derivation_description()
    ds.PatientName = study.patient_name
    ds.PatientID = study.patient_id
    ds.PatientBirthDate = ""
    ds.PatientSex = ""
    ds.BodyPartExamined = "HEAD"
    ds.SliceThickness = _ds(g.spacing[2])
    if not ct:
        ds.ScanningSequence = "RM"  # research mode: no real pulse sequence produced these images
        ds.SequenceVariant = "NONE"
        ds.ScanOptions = ""
        ds.MRAcquisitionType = ""
        ds.RepetitionTime = ""
        ds.EchoTime = ""
        ds.EchoTrainLength = ""
        ds.SpacingBetweenSlices = _ds(g.spacing[2])
    else:
        ds.KVP = ""
    ds.SoftwareVersions = study.provenance.software_version
    ds.PatientPosition = ""
    ds.StudyInstanceUID = study.study_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyID = "1"
    ds.SeriesNumber = series_number
    if ct:
        ds.AcquisitionNumber = ""
    ds.ImageOrientationPatient = [_ds(v) for v in (*d[:, 0], *d[:, 1])]
    ds.FrameOfReferenceUID = study.frame_of_reference_uid
    ds.PositionReferenceIndicator = ""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = int(stored.shape[1])
    ds.Columns = int(stored.shape[2])
    ds.PixelSpacing = [_ds(g.spacing[1]), _ds(g.spacing[0])]  # row spacing (y), then column spacing (x)
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1 if coding.dtype == "int16" else 0
    ds.BurnedInAnnotation = "NO"
    if ct:
        ds.WindowCenter = [_ds(c) for c, _, _ in _CT_WINDOWS]
        ds.WindowWidth = [_ds(w) for _, w, _ in _CT_WINDOWS]
        ds.WindowCenterWidthExplanation = [e for _, _, e in _CT_WINDOWS]
        ds.RescaleIntercept = _ds(coding.intercept)
        ds.RescaleSlope = _ds(coding.slope)
        ds.RescaleType = "HU"
    else:
        # a display window from a subsample: percentiles of the whole volume cost more than they change
        lo, hi = np.percentile(stored[:, ::4, ::4], [1, 99]) if stored.size else (0.0, 1.0)
        ds.WindowCenter = _ds(round((lo + hi) / 2, 3))
        ds.WindowWidth = _ds(max(round(hi - lo, 3), 1.0))
        if coding.real_world_mapping:
            ds.RealWorldValueMappingSequence = DicomSequence([_real_world_mapping(coding)])
    ds.LossyImageCompression = "00"
    _mark_synthetic(ds, study)
    return ds


def _real_world_mapping(coding: IntensityCoding) -> Dataset:
    item = Dataset()
    # US/SS is ambiguous in the dictionary; the stored pixels are unsigned here
    item.add(DataElement(0x00409216, "US", 0))  # Real World Value First Value Mapped
    item.add(DataElement(0x00409211, "US", 65535))  # Real World Value Last Value Mapped
    item.RealWorldValueIntercept = float(coding.intercept)
    item.RealWorldValueSlope = float(coding.slope)
    item.LUTExplanation = "Input intensity of the synthetic channel"
    item.LUTLabel = "SYNTH_INTENSITY"
    item.MeasurementUnitsCodeSequence = DicomSequence([_code_item("1", "UCUM", "no units")])
    return item


def _write_image_series(case: Case, channel: str, study: _Study, folder: Path, series_number: int
                        ) -> tuple[list[Dataset], dict[str, Any]]:
    """Write one channel as a single-frame image series; returns the slice headers and its index entry."""
    stored, coding = encode_intensities(case.channels[channel], case.modality)
    series_uid = new_uid()
    template = _series_template(case, study, channel=channel, series_uid=series_uid,
                                series_number=series_number, coding=coding, stored=stored)
    g = case.geometry
    d = g.direction_matrix
    normal = np.cross(d[:, 0], d[:, 1])
    folder.mkdir(parents=True, exist_ok=False)
    headers, files = [], []
    for k in range(stored.shape[0]):
        ds = Dataset()
        ds.update(template)  # shared elements; per-slice ones below are new elements, not edits of shared ones
        sop_uid = new_uid()
        position = np.asarray(g.origin) + k * g.spacing[2] * d[:, 2]
        ds.SOPInstanceUID = sop_uid
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [_ds(v) for v in position]
        ds.SliceLocation = _ds(float(np.dot(normal, position)))
        ds.file_meta = _file_meta(template.SOPClassUID, sop_uid)
        headers.append(ds)
        ds.PixelData = np.ascontiguousarray(stored[k]).tobytes()
        name = f"{k + 1:05d}.dcm"
        ds.save_as(folder / name, enforce_file_format=True)
        del ds.PixelData  # keep only headers in memory; the SEG needs geometry, not pixels
        files.append(name)
    entry = {
        "folder": folder.name,
        "kind": "image",
        "channel": channel,
        "modality": case.modality.value,
        "sop_class_uid": str(template.SOPClassUID),
        "series_instance_uid": series_uid,
        "series_number": series_number,
        "number_of_instances": len(files),
        "files": files,
        "intensity": coding.to_dict(),
    }
    return headers, entry


def _use_own_uids(ds: Dataset) -> None:
    """Replace instance UIDs a library made under its own root (e.g. Dimension Organization UID) by ours."""
    mapping: dict[str, str] = {}
    for elem in ds.iterall():
        if elem.VR != "UI" or not elem.value:
            continue
        values = list(elem.value) if isinstance(elem.value, list | pydicom.multival.MultiValue) else [elem.value]
        if all(is_project_uid(v) or UID(v).name != v for v in values):
            continue  # already ours, or a public registry UID (SOP class, transfer syntax, ...)
        new = [v if is_project_uid(v) or UID(v).name != v else mapping.setdefault(v, new_uid()) for v in values]
        elem.value = new if len(new) > 1 else new[0]


def _code_entry(code: Dataset) -> dict[str, str]:
    return {"code": str(code.CodeValue), "scheme": str(code.CodingSchemeDesignator), "meaning": str(code.CodeMeaning)}


def _write_segmentation(case: Case, study: _Study, source: Sequence[Dataset], source_entry: Mapping[str, Any],
                        folder: Path, series_number: int) -> dict[str, Any]:
    assert case.label is not None
    prov = study.provenance
    seg = build_segmentation(
        source, case.label, case.label_table, case.lesion_kind,
        series_instance_uid=new_uid(), sop_instance_uid=new_uid(), series_number=series_number,
        manufacturer=MANUFACTURER, software_name=SOFTWARE_NAME, software_version=prov.software_version,
        generator_name=prov.generator_name, generator_version=prov.generator_version,
        algorithm_parameters={"seed": prov.seed, "checkpoint": prov.checkpoint_fingerprint},
    )
    _mark_synthetic(seg, study)
    seg.SpecificCharacterSet = "ISO_IR 192"
    seg.BurnedInAnnotation = "NO"
    for frame in seg.get("PerFrameFunctionalGroupsSequence", []):
        for item in frame.get("DerivationImageSequence", []):
            item.DerivationDescription = prov.derivation_description()
    _use_own_uids(seg)
    seg.file_meta.ImplementationClassUID = UID(IMPLEMENTATION_CLASS_UID)
    seg.file_meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    folder.mkdir(parents=True, exist_ok=False)
    seg.save_as(folder / "00001.dcm", enforce_file_format=True)
    segments = []
    codings = table_codings(case.label_table, case.lesion_kind)
    for number, value in enumerate(case.label_table.values, start=1):
        item = seg.SegmentSequence[number - 1]
        segments.append({"segment_number": number, "label_value": value, "label": case.label_table.names[value],
                         "role": codings[value].role,
                         "category": _code_entry(item.SegmentedPropertyCategoryCodeSequence[0]),
                         "type": _code_entry(item.SegmentedPropertyTypeCodeSequence[0]),
                         "anatomic_region": _code_entry(item.AnatomicRegionSequence[0]),
                         "voxels": int(np.count_nonzero(case.label == value))})
    return {
        "folder": folder.name,
        "kind": "segmentation",
        "modality": "SEG",
        "sop_class_uid": str(seg.SOPClassUID),
        "series_instance_uid": str(seg.SeriesInstanceUID),
        "series_number": series_number,
        "number_of_instances": 1,
        "files": ["00001.dcm"],
        "referenced_series": source_entry["folder"],
        "referenced_series_instance_uid": source_entry["series_instance_uid"],
        "segments": segments,
    }


# --------------------------------------------------------------------------------------------------------------
# study assembly, index, zip


def _write_study(case: Case, study: _Study, folder: Path) -> dict[str, Any]:
    series_entries: list[dict[str, Any]] = []
    first_headers: list[Dataset] = []
    for number, channel in enumerate(case.channel_names, start=1):
        sub = folder / f"series-{number:03d}-{case.modality.value}-{_safe_name(channel, 'channel')}"
        headers, entry = _write_image_series(case, channel, study, sub, number)
        if not first_headers:
            first_headers = headers
        series_entries.append(entry)
    if case.label is not None:
        number = len(case.channel_names) + 1
        series_entries.append(_write_segmentation(case, study, first_headers, series_entries[0],
                                                  folder / f"series-{number:03d}-SEG", number))
    index = {
        "format": _INDEX_FORMAT + "-study",
        "version": 1,
        "synthetic": True,
        "patient_name": study.patient_name,
        "patient_id": study.patient_id,
        "study_instance_uid": study.study_uid,
        "frame_of_reference_uid": study.frame_of_reference_uid,
        "study_date": study.date,
        "case_id": case.case_id,
        "modality": case.modality.value,
        "lesion_kind": case.lesion_kind.value,
        "shape_zyx": list(case.shape),
        "geometry": case.geometry.to_dict(),
        "label_table": case.label_table.to_dict(),
        "provenance": study.provenance.to_dict(),
        "series": series_entries,
    }
    (folder / INDEX_NAME).write_text(json.dumps(index, indent=2) + "\n")
    return index


def _zip_folder(folder: Path, zip_path: Path) -> None:
    with atomic_file(zip_path) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(p for p in folder.rglob("*") if p.is_file()):
            # member names are relative POSIX paths built from our own sanitised names: no "/" root, no ".."
            zf.write(f, f.relative_to(folder).as_posix())


def safe_extract_zip(zip_path: str | os.PathLike[str], dest: str | os.PathLike[str]) -> Path:
    """Extract a zip into ``dest``, refusing any member that would land outside it (zip-slip) or is a link.

    Args:
        zip_path: the archive.
        dest: folder to extract into (created if needed).

    Raises:
        DatasetError: a member has an absolute path, a ``..`` component, a drive letter or is a symbolic link;
            nothing is extracted then.
    """
    dest = Path(dest).resolve()
    with zipfile.ZipFile(zip_path) as zf:
        members = zf.infolist()
        for m in members:
            name = m.filename
            is_link = (m.external_attr >> 16) & 0o170000 == 0o120000
            target = (dest / name).resolve()
            if (name.startswith(("/", "\\")) or ":" in name or ".." in Path(name).parts or ".." in name.split("\\")
                    or is_link or not target.is_relative_to(dest)):
                raise DatasetError(f"unsafe zip member {name!r}: it would be written outside the target folder",
                                   where=str(zip_path), fix="do not extract this archive; re-export the study")
        dest.mkdir(parents=True, exist_ok=True)
        zf.extractall(dest)
    return dest


def _read_root_index(out_dir: Path) -> dict[str, Any]:
    path = out_dir / INDEX_NAME
    if not path.exists():
        return {"format": _INDEX_FORMAT + "-export", "version": 1, "synthetic": True, "studies": []}
    try:
        index = json.loads(path.read_text())
        if not isinstance(index.get("studies"), list):
            raise ValueError("no 'studies' list")
    except (ValueError, OSError, AttributeError) as err:
        raise DatasetError(f"the export index cannot be read ({err})", where=str(path),
                           fix="export into a new folder, or delete the broken index.json") from None
    return index


def _add_to_root_index(out_dir: Path, entry: dict[str, Any]) -> None:
    index = _read_root_index(out_dir)
    index["studies"] = [s for s in index["studies"] if s.get("path") != entry["path"]] + [entry]
    write_json(out_dir / INDEX_NAME, index)


def export_dicom_study(
    case: Case,
    out_dir: str | os.PathLike[str],
    *,
    patient_name: str | None = None,
    patient_id: str | None = None,
    patient_prefix: str = "SYNTH",
    generator_name: str | None = None,
    generator_version: str | None = None,
    checkpoint_fingerprint: str | None = None,
    seed: int | str | None = None,
    zip_output: bool = False,
    overwrite: bool = False,
    update_index: bool = True,
) -> Path:
    """Export one case as a DICOM study under ``out_dir/<PatientID>/study-<n>``.

    Args:
        case: the synthetic case (MR: one series per channel; CT in HU); its label becomes a Segmentation.
        out_dir: root of the export (created if needed); its ``index.json`` lists the studies.
        patient_name: Patient's Name (``Family^Given``); default ``<prefix>^<id>`` (``<prefix>^<8 hex digits>``
            when the id is generated too).
        patient_id: Patient ID; default ``<prefix>-<8 random hex digits>``.
        patient_prefix: prefix of generated names and ids (letters, digits, ``_.-``; at most 32 characters).
        generator_name: generator named in Derivation Description, Contributing Equipment and the SEG's
            Algorithm Identification; default from ``case.metadata["generator"]`` (a name or a dict with
            ``name``/``version``/``checkpoint_fingerprint``/``seed``).
        generator_version: generator version (default from the metadata).
        checkpoint_fingerprint: checkpoint hash (default from the metadata, else ``"none"``).
        seed: synthesis seed (default from the metadata, else ``"unknown"``).
        zip_output: deliver the study as ``study-<n>.zip`` (members relative to the study folder) instead of a
            folder.
        overwrite: replace an existing study folder/zip of the same name.
        update_index: add the study to ``out_dir/index.json``.

    Returns:
        the study folder, or the zip file with ``zip_output``.

    Raises:
        InputError: invalid case (NaN, unknown label values), name, id or prefix; CT values out of range.
        GeometryError: a sheared grid.
        ResourceError: the output cannot be written (nothing partial is left).
    """
    case.validate()
    if not _PREFIX_RE.match(patient_prefix):
        raise InputError(f"patient prefix {patient_prefix!r} is not usable",
                         fix="use 1-32 letters, digits, '_', '.' or '-', starting with a letter or digit")
    if patient_id is None:
        suffix = uuid.uuid4().hex[:8].upper()
        patient_id = f"{patient_prefix}-{suffix}"
        patient_name = patient_name or f"{patient_prefix}^{suffix}"
    # two components (Family^Given): a single one reads as an ambiguous name to DICOM tools
    patient_name = patient_name or f"{patient_prefix}^{patient_id}"
    _check_identity(patient_name, patient_id)
    _check_orientation(case.geometry)
    out_dir = Path(out_dir)
    study_uid = new_uid()
    study = _Study(
        patient_name=patient_name, patient_id=patient_id, study_uid=study_uid, frame_of_reference_uid=new_uid(),
        when=_dt.datetime.now().replace(microsecond=0),
        provenance=_provenance(case, generator_name, generator_version, checkpoint_fingerprint, seed),
        description=f"Synthetic {case.modality.value} {case.lesion_kind.value} study",
    )
    patient_dir = out_dir / _safe_name(patient_id)
    # the study UID's last digits name the folder: fresh per study, so two exports never collide
    study_dir = patient_dir / f"study-{study_uid[-10:]}"
    created_patient_dir = not patient_dir.exists()
    try:
        if zip_output:
            result = study_dir.with_name(study_dir.name + ".zip")
            if result.exists() and not overwrite:
                raise ResourceError("the study zip exists", where=str(result), fix="pass overwrite=True")
            try:
                patient_dir.mkdir(parents=True, exist_ok=True)
                tmp_root = Path(tempfile.mkdtemp(prefix=".study.", suffix=".partial", dir=patient_dir))
            except OSError as err:
                raise os_error_to_resource_error(err, patient_dir) from err
            try:
                index = _write_study(case, study, tmp_root)
                _zip_folder(tmp_root, result)
            except OSError as err:
                raise os_error_to_resource_error(err, result) from err
            finally:
                shutil.rmtree(tmp_root, ignore_errors=True)
        else:
            result = study_dir
            with atomic_dir(study_dir, overwrite=overwrite) as tmp:
                try:
                    index = _write_study(case, study, tmp)
                except OSError as err:
                    raise os_error_to_resource_error(err, study_dir) from err
    except BaseException:
        if created_patient_dir and patient_dir.is_dir() and not any(patient_dir.iterdir()):
            patient_dir.rmdir()
        raise
    if update_index:
        _add_to_root_index(out_dir, _root_entry(index, result, out_dir))
    return result


def _root_entry(index: Mapping[str, Any], result: Path, out_dir: Path) -> dict[str, Any]:
    return {
        "path": result.relative_to(out_dir).as_posix(),
        "zip": result.suffix == ".zip",
        "patient_id": index["patient_id"],
        "patient_name": index["patient_name"],
        "study_instance_uid": index["study_instance_uid"],
        "case_id": index["case_id"],
        "modality": index["modality"],
        "lesion_kind": index["lesion_kind"],
        "series": [{"folder": s["folder"], "kind": s["kind"], "modality": s["modality"],
                    "number_of_instances": s["number_of_instances"]} for s in index["series"]],
    }


def _next_patient_number(out_dir: Path, prefix: str) -> int:
    pattern = re.compile(re.escape(prefix) + r"-(\d+)$")
    numbers = [int(m.group(1)) for s in _read_root_index(out_dir)["studies"]
               if (m := pattern.match(str(s.get("patient_id", ""))))]
    return max(numbers, default=0) + 1


def export_dicom_dataset(
    dataset_cases: Iterable[Case],
    out_dir: str | os.PathLike[str],
    *,
    patient_prefix: str = "SYNTH",
    zip_output: bool = False,
    progress: ProgressCallback | None = None,
    generator_name: str | None = None,
    generator_version: str | None = None,
    checkpoint_fingerprint: str | None = None,
    seed: int | str | None = None,
) -> list[Path]:
    """Export every case as its own study and patient (``<prefix>-0001``, ``<prefix>-0002``, ...).

    Numbering continues after the patients of the same prefix already in ``out_dir/index.json``, so a second
    export into one folder never reuses a patient id. Each study is atomic; the index is updated after each.

    Args:
        dataset_cases: the cases (any iterable; a sized one gives ``progress`` its total).
        out_dir: root of the export.
        patient_prefix: prefix of the generated patient ids and names (``<prefix>^0001``).
        zip_output: deliver each study as a zip (see :func:`export_dicom_study`).
        progress: ``progress(done, total, message)``, called before each case and once at the end; ``total``
            is 0 when the iterable has no length. Raising from it (e.g. CancelledError) stops the export after
            the studies already complete.
        generator_name: generator name (default: each case's metadata).
        generator_version: generator version (default: each case's metadata).
        checkpoint_fingerprint: checkpoint fingerprint (default: each case's metadata).
        seed: seed (default: each case's metadata ``seed``).

    Returns:
        the study folders (or zips), in case order.
    """
    if not _PREFIX_RE.match(patient_prefix):
        raise InputError(f"patient prefix {patient_prefix!r} is not usable",
                         fix="use 1-32 letters, digits, '_', '.' or '-', starting with a letter or digit")
    out_dir = Path(out_dir)
    total = len(dataset_cases) if isinstance(dataset_cases, Sequence) else 0
    number = _next_patient_number(out_dir, patient_prefix)
    results = []
    for done, case in enumerate(dataset_cases):
        if progress is not None:
            progress(done, total, f"exporting case {done + 1}" + (f" of {total}" if total else ""))
        pid = f"{patient_prefix}-{number:04d}"
        results.append(export_dicom_study(
            case, out_dir, patient_id=pid, patient_name=f"{patient_prefix}^{number:04d}",
            patient_prefix=patient_prefix, generator_name=generator_name, generator_version=generator_version,
            checkpoint_fingerprint=checkpoint_fingerprint, seed=seed, zip_output=zip_output))
        number += 1
    if progress is not None:
        progress(len(results), total or len(results), f"exported {len(results)} studies to {out_dir}")
    return results
