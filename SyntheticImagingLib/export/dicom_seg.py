"""The label map of a case as a DICOM Segmentation (highdicom), and reading it back.

One segment per value of the case's label table (declared even when the value marks no voxel, so the label
table survives the round trip): its Segment Label is the user's label name, its category, type and anatomic region
are coded from the label's role (:mod:`.segment_codes`: SNOMED CT / NCIt concepts of the DICOM segmentation context
groups; a name matching no role is coded "Lesion"), algorithm type AUTOMATIC with an Algorithm Identification naming
the generator. Segment numbers must run 1..n in DICOM; each segment's Segment Description records the label value it
stands for (``"label value 4"``), so label tables with gaps (e.g. BraTS 1, 2, 4) come back unchanged.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.sr.coding import Code

from ..cases import LabelTable, LesionKind
from ..errors import InputError, LabelError, UnreadableFileError
from .segment_codes import LESION_CATEGORY, segment_coding, table_codings

__all__ = [
    "SEGMENTED_PROPERTY_CATEGORY",
    "segment_type_code",
    "build_segmentation",
    "read_dicom_seg",
]

#: SCT 49755003 (CID 7150): the category of every lesion segment.
SEGMENTED_PROPERTY_CATEGORY = LESION_CATEGORY
_LABEL_VALUE_RE = re.compile(r"label value (-?\d+)")
_SEG_MODALITY = "SEG"


def segment_type_code(name: str, lesion_kind: LesionKind | str) -> Code:
    """The segmented property type of a label name: its role's code (:data:`.segment_codes.ROLE_CODES`), else
    (52988006, SCT, "Lesion").

    Args:
        name: label name from the label table (e.g. ``"edema"``, ``"SDH"``).
        lesion_kind: the case's lesion kind (decides what e.g. ``"edema"`` means).

    Example:
        >>> segment_type_code("peritumoral edema", "tumor").meaning
        'Edema'
    """
    return segment_coding(name, lesion_kind).type


def build_segmentation(
    source_images: Sequence[Dataset],
    label: np.ndarray,
    label_table: LabelTable,
    lesion_kind: LesionKind | str,
    *,
    series_instance_uid: str,
    sop_instance_uid: str,
    series_number: int,
    manufacturer: str,
    software_name: str,
    software_version: str,
    generator_name: str,
    generator_version: str,
    algorithm_parameters: Mapping[str, str] | None = None,
    series_description: str = "Synthetic lesion segmentation",
) -> hd.seg.Segmentation:
    """A BINARY Segmentation of ``label`` referencing the image series ``source_images``.

    Args:
        source_images: headers of the exported slices, ``source_images[k]`` holding array slice ``label[k]``.
        label: integer label map ``[z, y, x]`` on the grid of the source images.
        label_table: names of the label values; one segment per entry, in value order.
        lesion_kind: tumour or hemorrhage: the role of each label name, hence its codes, is read for it.
        series_instance_uid: fresh UID of the SEG series.
        sop_instance_uid: fresh UID of the SEG instance.
        series_number: series number of the SEG.
        manufacturer: Manufacturer (the software's maker).
        software_name: Manufacturer's Model Name (this software).
        software_version: Software Versions.
        generator_name: named by the Algorithm Identification of every segment.
        generator_version: the generator's version.
        algorithm_parameters: extra name -> value pairs recorded with the algorithm (seed, checkpoint, ...).
        series_description: Series Description of the SEG.

    Raises:
        LabelError: the label holds values outside the label table, or the table is empty.
        InputError: label and source images disagree in shape.
    """
    label = np.asarray(label)
    values = label_table.values
    if not values:
        raise LabelError("the label table is empty, so there is no segment to export",
                         fix="give the case a label table naming its label values")
    if label.shape != (len(source_images), int(source_images[0].Rows), int(source_images[0].Columns)):
        raise InputError(f"label shape {label.shape} does not match the {len(source_images)} exported slices of "
                         f"{source_images[0].Rows}x{source_images[0].Columns}")
    unknown = sorted(set(np.unique(label).tolist()) - {0} - set(values))
    if unknown:
        raise LabelError(f"label values {unknown} are not in the label table {label_table.names}",
                         fix="remap the label values or extend the label table")
    # DICOM segment numbers run 1..n; map label value -> its rank in the table
    lut = np.zeros(int(max(max(values), int(label.max()))) + 1, dtype=np.uint16)
    for number, value in enumerate(values, start=1):
        lut[value] = number
    segment_array = lut[np.clip(label, 0, None).astype(np.int64)]
    algorithm = hd.AlgorithmIdentificationSequence(
        name=generator_name[:64] or "unknown",
        family=Code("123110", "DCM", "Artificial Intelligence"),
        version=generator_version[:64] or "unknown",
        source=software_name,
        parameters={str(k)[:64]: str(v)[:64] for k, v in (algorithm_parameters or {}).items()} or None,
    )
    descriptions = []
    codings = table_codings(label_table, lesion_kind)
    for number, value in enumerate(values, start=1):
        name = label_table.names[value]
        coding = codings[value]
        desc = hd.seg.SegmentDescription(
            segment_number=number,
            segment_label=name[:64],
            segmented_property_category=coding.category,
            segmented_property_type=coding.type,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm,
            anatomic_regions=[coding.anatomic_region],
        )
        desc.SegmentDescription = f"label value {value}: {name}"[:1024]
        descriptions.append(desc)
    return hd.seg.Segmentation(
        source_images=list(source_images),
        pixel_array=segment_array.astype(np.uint8 if len(values) < 256 else np.uint16),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=series_instance_uid,
        series_number=series_number,
        sop_instance_uid=sop_instance_uid,
        instance_number=1,
        manufacturer=manufacturer,
        manufacturer_model_name=software_name,
        software_versions=software_version,
        device_serial_number="none",
        series_description=series_description,
        content_label="LESION",
        content_description="Label map of the synthesized lesion",
        # an empty label is still a valid (all-background) answer; keep its frames so the SEG is not empty
        omit_empty_frames=bool(np.any(segment_array)),
    )


def _sorted_image_headers(folder: Path) -> list[Dataset]:
    headers: list[pydicom.Dataset] = []
    for f in sorted(p for p in folder.iterdir() if p.is_file()):
        try:
            ds = pydicom.dcmread(f, stop_before_pixels=True)
        except (pydicom.errors.InvalidDicomError, OSError, ValueError, EOFError):
            continue
        if "ImagePositionPatient" in ds and "SOPInstanceUID" in ds:
            headers.append(ds)
    if not headers:
        raise UnreadableFileError("no DICOM image found next to the segmentation", where=str(folder))
    row, col = np.asarray(headers[0].ImageOrientationPatient, float).reshape(2, 3)
    normal = np.cross(row, col)
    headers.sort(key=lambda ds: float(np.dot(normal, np.asarray(ds.ImagePositionPatient, float))))
    return headers


def read_dicom_seg(seg_file: str | os.PathLike[str], image_folder: str | os.PathLike[str]
                   ) -> tuple[np.ndarray, LabelTable]:
    """Read a Segmentation back as an integer label map on the grid of its image series.

    Args:
        seg_file: the SEG ``.dcm`` file.
        image_folder: folder of the referenced image series; the label is returned in the slice order that
            :func:`~SyntheticImagingLib.io.dicom.read_dicom_series` gives that folder (sorted along the normal).

    Returns:
        the label map ``[z, y, x]`` (int16) and the label table (value -> segment label); label values are
        taken from each segment's ``"label value N"`` description, else the segment number.

    Raises:
        UnreadableFileError: the file is not a readable Segmentation.
        InputError: the Segmentation references other images than the folder's.
    """
    try:
        seg = hd.seg.segread(seg_file)
    except (OSError, ValueError, AttributeError, KeyError, TypeError, pydicom.errors.InvalidDicomError) as err:
        raise UnreadableFileError(f"not a readable DICOM Segmentation ({err})", where=str(seg_file)) from None
    headers = _sorted_image_headers(Path(image_folder))
    uids = [str(ds.SOPInstanceUID) for ds in headers]
    referenced = {uid for _, _, uid in seg.get_source_image_uids()}
    if not referenced <= set(uids):
        raise InputError("the segmentation references images that are not in the image folder",
                         where=str(seg_file), fix="pass the folder of the series the segmentation was made on")
    numbers = list(seg.segment_numbers)
    values: dict[int, int] = {}
    names: dict[int, str] = {}
    for number in numbers:
        item = seg.get_segment_description(number)
        match = _LABEL_VALUE_RE.match(str(getattr(item, "SegmentDescription", "")))
        value = int(match.group(1)) if match else number
        values[number] = value
        names[value] = str(item.segment_label)
    pixels = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=uids, combine_segments=True, relabel=False,
        assert_missing_frames_are_empty=True)
    lut = np.zeros(max(numbers) + 1, dtype=np.int16)
    for number, value in values.items():
        lut[number] = value
    return lut[np.asarray(pixels, dtype=np.int64)], LabelTable(names)
