"""Find identifying values of source DICOM files inside an export (the "no PHI leaked" check).

:func:`collect_identifying_values` gathers what could identify a patient or a visit in the source series a
generator was trained on or synthesized from: every person name, date, time and instance-specific UID, and the
text of identifying attributes (ids, institution, descriptions, ...). :func:`scan_for_values` then looks for those
values in every data element of every exported DICOM file (sequences and File Meta Information included), in
text files such as the index, and inside zip archives.
"""

from __future__ import annotations

import dataclasses
import io
import os
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import pydicom
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID

__all__ = ["IDENTIFYING_KEYWORDS", "PhiHit", "collect_identifying_values", "scan_for_values",
           "find_source_values_in_export"]

#: Text attributes whose values identify a patient, a visit, a device or a site (PS3.15 Annex E, abridged).
IDENTIFYING_KEYWORDS = frozenset({
    "PatientID", "OtherPatientIDs", "IssuerOfPatientID", "PatientAddress", "PatientTelephoneNumbers",
    "PatientAge", "PatientComments", "AdditionalPatientHistory", "MedicalRecordLocator", "Occupation",
    "EthnicGroup", "MilitaryRank", "BranchOfService", "CountryOfResidence", "RegionOfResidence",
    "AccessionNumber", "StudyID", "StudyDescription", "SeriesDescription", "ProtocolName",
    "AdmittingDiagnosesDescription", "ImageComments", "RequestedProcedureID", "RequestedProcedureDescription",
    "PerformedProcedureStepID", "PerformedProcedureStepDescription", "ScheduledProcedureStepID",
    "InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName", "StationName",
    "DeviceSerialNumber", "ReferringPhysicianAddress", "ReferringPhysicianTelephoneNumbers",
    "DerivationDescription", "ContentLabel", "ContentDescription", "ClinicalTrialSubjectID",
    "ClinicalTrialSiteName", "ClinicalTrialSiteID", "ClinicalTrialSponsorName", "ClinicalTrialProtocolID",
})

# value representations whose every value is identifying-by-default (names, dates, times)
_IDENTIFYING_VRS = frozenset({"PN", "DA", "DT", "TM"})
_TEXT_VRS = frozenset({"LO", "SH", "LT", "ST", "UT", "UC", "CS", "UN"})
_BINARY_VRS = frozenset({"OB", "OW", "OF", "OD", "OL", "OV", "UN"})
_PIXEL_TAGS = frozenset({0x7FE00010, 0x7FE00008, 0x7FE00009})
#: Shorter values ("M", "84") would match by chance; they identify no one on their own.
MIN_VALUE_LENGTH = 4
_MAX_TEXT_FILE = 20 * 1024 * 1024


@dataclasses.dataclass(frozen=True)
class PhiHit:
    """One source value found in the export.

    Args:
        file: the exported file (for zip members: ``archive.zip!member``).
        where: the attribute keyword (or tag) or ``text`` for a non-DICOM file.
        value: the exported value that contains the source value.
        source_value: the identifying value of the source.
        source_attribute: where the source value came from.
    """

    file: str
    where: str
    value: str
    source_value: str
    source_attribute: str


def _element_strings(elem: DataElement) -> list[str]:
    """The value(s) of an element as strings (binary values decoded as Latin-1, pixel data skipped)."""
    if elem.tag in _PIXEL_TAGS or elem.value is None:
        return []
    if elem.VR == "SQ":
        return []
    value = elem.value
    if elem.VR in _BINARY_VRS or isinstance(value, bytes | bytearray):
        if not isinstance(value, bytes | bytearray) or len(value) > 65536:
            return []
        text = bytes(value).decode("latin-1")
        return [text.strip("\x00 ")]
    values = value if isinstance(value, list | tuple | pydicom.multival.MultiValue) else [value]
    return [str(v).strip() for v in values if str(v).strip()]


def _walk(ds: Dataset) -> Iterator[DataElement]:
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        yield from meta.iterall()
    yield from ds.iterall()


def _is_public_uid(value: str) -> bool:
    # SOP classes, transfer syntaxes, coding schemes...: the same in every file, they identify no one
    return UID(value).name != value


def _add(out: dict[str, str], value: str, attribute: str) -> None:
    value = value.strip().strip("\x00").strip()
    if len(value) >= MIN_VALUE_LENGTH and value not in out:
        out[value] = attribute


def _identifying_from_dataset(ds: Dataset, out: dict[str, str]) -> None:
    for elem in _walk(ds):
        keyword = elem.keyword or str(elem.tag)
        strings = _element_strings(elem)
        if elem.VR == "UI":
            for s in strings:
                if not _is_public_uid(s):
                    _add(out, s, keyword)
        elif elem.VR in _IDENTIFYING_VRS:
            for s in strings:
                _add(out, s, keyword)
                if elem.VR == "PN":
                    for part in s.replace("=", "^").split("^"):
                        _add(out, part, keyword)
        elif keyword in IDENTIFYING_KEYWORDS:
            for s in strings:
                _add(out, s, keyword)
        elif elem.tag.is_private and strings and elem.VR in _TEXT_VRS:
            # private tags hold site/project ids in many de-identified collections; only long text values, as
            # short ones are flags and numeric ones are measurements (positions, timings)
            for s in strings:
                if len(s) >= 6 and s.isprintable():
                    _add(out, s, f"private {elem.tag}")


def _iter_dicom_files(paths: Iterable[str | os.PathLike[str]]) -> Iterator[tuple[Path, Dataset]]:
    for p in paths:
        p = Path(p)
        files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
        for f in files:
            try:
                yield f, pydicom.dcmread(f, stop_before_pixels=True)
            except (InvalidDicomError, OSError, ValueError, EOFError, AttributeError, KeyError, TypeError):
                continue


def collect_identifying_values(sources: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]
                               ) -> dict[str, str]:
    """Identifying values of source DICOM files: value -> the attribute it came from.

    Args:
        sources: DICOM files and/or folders (searched recursively; non-DICOM files are skipped).

    Returns:
        every person name (and its name parts), date, time and non-standard UID, and the text of the
        attributes in :data:`IDENTIFYING_KEYWORDS` and of long private values; values shorter than
        :data:`MIN_VALUE_LENGTH` characters are left out, as they would match anything.
    """
    if isinstance(sources, str | os.PathLike):
        sources = [sources]
    out: dict[str, str] = {}
    for _, ds in _iter_dicom_files(sources):
        _identifying_from_dataset(ds, out)
    return out


def _match(text: str, values: Mapping[str, str]) -> Iterator[tuple[str, str]]:
    for source_value, attribute in values.items():
        if source_value in text:
            yield source_value, attribute


def _scan_bytes(data: bytes, name: str, values: Mapping[str, str]) -> list[PhiHit]:
    try:
        ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    except (InvalidDicomError, OSError, ValueError, EOFError, AttributeError, KeyError, TypeError):
        ds = None
    hits = []
    if ds is not None and len(ds) > 0:
        for elem in _walk(ds):
            for s in _element_strings(elem):
                for source_value, attribute in _match(s, values):
                    hits.append(PhiHit(name, elem.keyword or str(elem.tag), s[:200], source_value, attribute))
        return hits
    text = data.decode("utf-8", errors="replace")
    for source_value, attribute in _match(text, values):
        hits.append(PhiHit(name, "text", source_value, source_value, attribute))
    return hits


def scan_for_values(export: str | os.PathLike[str], values: Mapping[str, str]) -> list[PhiHit]:
    """Every place in an export where one of ``values`` occurs (as a whole value or inside a longer one).

    Args:
        export: an exported folder, file or ``.zip`` archive.
        values: value -> source attribute, as :func:`collect_identifying_values` returns them.

    Returns:
        the hits (empty when the export is free of the values).
    """
    export = Path(export)
    files = sorted(f for f in export.rglob("*") if f.is_file()) if export.is_dir() else [export]
    hits: list[PhiHit] = []
    for f in files:
        if f.stat().st_size > _MAX_TEXT_FILE and f.suffix.lower() != ".dcm" and not zipfile.is_zipfile(f):
            continue
        if zipfile.is_zipfile(f):
            with zipfile.ZipFile(f) as zf:
                for member in zf.infolist():
                    if not member.is_dir():
                        hits += _scan_bytes(zf.read(member), f"{f}!{member.filename}", values)
                        for source_value, attribute in _match(member.filename, values):
                            hits.append(PhiHit(f"{f}!{member.filename}", "file name", member.filename,
                                               source_value, attribute))
            continue
        hits += _scan_bytes(f.read_bytes(), str(f), values)
    for f in [export, *files]:
        # folder and file names are part of the export too
        for source_value, attribute in _match(str(f.relative_to(export.parent)), values):
            hits.append(PhiHit(str(f), "path", f.name, source_value, attribute))
    return hits


def find_source_values_in_export(export: str | os.PathLike[str],
                                 sources: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]
                                 ) -> list[PhiHit]:
    """:func:`scan_for_values` of ``export`` for :func:`collect_identifying_values` of ``sources``.

    Args:
        export: exported folder, file or zip.
        sources: the source DICOM files/folders (training or synthesis inputs).
    """
    return scan_for_values(export, collect_identifying_values(sources))
