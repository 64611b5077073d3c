"""Read and write single 3D images (NIfTI, NRRD, MHA/MHD, DICOM series folders) with their geometry."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..cases import Geometry
from ..errors import InputError, ResourceError, UnreadableFileError
from .atomic import atomic_file, write_failure
from .header_checks import check_header

__all__ = ["read_image", "write_image", "to_sitk", "from_sitk", "IMAGE_SUFFIXES", "MAX_VOXELS", "write_sitk"]

#: Largest volume read by default (voxels x components): 1024^3, 4 GiB as float32.
MAX_VOXELS = int(os.environ.get("SYNTHETIC_IMAGING_MAX_VOXELS", 1024**3))

#: File name endings read as single images (a folder is read as a DICOM series).
IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")


def from_sitk(image: sitk.Image, *, where: str = "image") -> tuple[np.ndarray, Geometry]:
    """Array ``[z, y, x]`` and geometry of a SimpleITK image; a clear error for 2D, 4D or vector images."""
    if image.GetDimension() != 3:
        raise InputError(
            f"the image is {image.GetDimension()}D with size {image.GetSize()}; a 3D volume is needed",
            where=where, fix="load a 3D volume; for a 4D file save one 3D file per channel")
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(
            f"the image has {image.GetNumberOfComponentsPerPixel()} components per voxel (vector/RGB/4D); "
            "one scalar per voxel is needed", where=where, fix="save one 3D file per channel")
    if min(image.GetSize()) < 2:
        raise InputError(f"the image has size {image.GetSize()}: it is a single slice (2D), a 3D volume is needed",
                         where=where, fix="load the whole 3D series, not one slice")
    geometry = Geometry(image.GetSpacing(), image.GetOrigin(), image.GetDirection())
    return sitk.GetArrayFromImage(image), geometry


def to_sitk(array: np.ndarray, geometry: Geometry) -> sitk.Image:
    """SimpleITK image of an array ``[z, y, x]`` placed by ``geometry``."""
    image = sitk.GetImageFromArray(np.ascontiguousarray(array))
    image.SetSpacing(geometry.spacing)
    image.SetOrigin(geometry.origin)
    image.SetDirection(geometry.direction)
    return image


def _check_size(reader: sitk.ImageFileReader, path: Path, max_voxels: int) -> None:
    size = reader.GetSize()
    n = int(np.prod([max(int(s), 1) for s in size], dtype=np.float64)) * reader.GetNumberOfComponents()
    if n > max_voxels:
        raise ResourceError(
            f"the volume has {n:,} voxels (size {tuple(size)}), more than the {max_voxels:,} allowed",
            where=str(path), fix="crop or downsample it first, or raise max_voxels (SYNTHETIC_IMAGING_MAX_VOXELS) "
            "if the machine has the memory")


def read_image(path: str | os.PathLike[str], *, max_voxels: int = MAX_VOXELS) -> tuple[np.ndarray, Geometry]:
    """Read a 3D image file or DICOM series folder.

    Args:
        path: ``.nii[.gz]``, ``.nrrd``, ``.mha``/``.mhd`` file, or a folder holding one DICOM series.
        max_voxels: refuse larger volumes (checked from the header, before reading voxels).

    Returns:
        the voxel array ``[z, y, x]`` (native dtype) and its geometry.

    Raises:
        UnreadableFileError: missing, truncated or corrupt file.
        InputError: not a 3D scalar volume.
        ResourceError: more than ``max_voxels`` voxels.
    """
    path = Path(path)
    if path.is_dir():
        from .dicom import read_dicom_series

        return read_dicom_series(path)
    if not path.exists():
        raise UnreadableFileError("file not found", where=str(path), fix="check the path and the name pattern")
    check_header(path)
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()  # header only: refuse absurd sizes before any allocation
    except RuntimeError as err:
        raise _unreadable(path, err) from None
    _check_size(reader, path, max_voxels)
    try:
        image = reader.Execute()
    except RuntimeError as err:
        raise _unreadable(path, err) from None
    return from_sitk(image, where=str(path))


def _unreadable(path: Path, err: RuntimeError) -> UnreadableFileError:
    first = str(err).strip().splitlines()[-1] if str(err).strip() else "unknown reason"
    return UnreadableFileError(
        f"cannot be read as an image: it is truncated, corrupt or not an image file ({first[:200]})",
        where=str(path), fix="re-export or re-download the file; supported: " + ", ".join(IMAGE_SUFFIXES)
        + " and DICOM series folders")


def write_image(path: str | os.PathLike[str], array: np.ndarray, geometry: Geometry, *,
                compress: bool = True) -> Path:
    """Write a 3D array with its geometry, atomically; the format follows the file name ending."""
    path = Path(path)
    if not path.name.endswith(IMAGE_SUFFIXES):
        raise InputError(f"unsupported output format {path.name!r}", where=str(path),
                         fix="use one of " + ", ".join(IMAGE_SUFFIXES))
    array = np.asarray(array)
    if array.dtype == bool:
        array = array.astype(np.uint8)
    return write_sitk(to_sitk(array, geometry), path, compress=compress)


def write_sitk(image: sitk.Image, path: Path, *, compress: bool = True) -> Path:
    """Write a SimpleITK image atomically, with a clear error when the disk is full or read-only."""
    with atomic_file(path) as tmp:
        try:
            sitk.WriteImage(image, str(tmp), useCompression=compress)
        except RuntimeError as err:
            raise write_failure(path, str(err).strip().splitlines()[-1] if str(err).strip() else "") from None
    return path
