"""Header checks run before ITK sees a file: what ITK's readers skip, or crash on.

* NIfTI: truncated data (ITK zero-fills it) and NaN/Inf (ITK reads them as 0), in one streaming pass over the
  voxel data (decompressed on the fly);
* MetaImage and NRRD text headers: absurd dimension counts or sizes (fuzzing found ``NDims = 999999999`` to
  crash ITK's MetaIO reader with a segmentation fault, which no ``try`` can catch), and non-finite, absurd or
  degenerate spacing / origin / directions (a ``1e308`` in ``TransformMatrix`` hangs ITK's SVD).
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from ..errors import InputError, UnreadableFileError

__all__ = ["check_header", "check_nifti", "check_text_header"]

_FLOAT_TYPES = {16: "f4", 64: "f8"}
_CHUNK = 1 << 24


def check_nifti(path: Path) -> None:
    """Raise if the NIfTI-1 file at ``path`` has fewer voxel bytes than its header says, or NaN/Inf voxels."""
    opener = gzip.open if path.name.endswith(".gz") else open
    where = str(path)
    try:
        with opener(path, "rb") as f:
            header = f.read(348)
            if len(header) < 348:
                raise UnreadableFileError("the NIfTI header is truncated", where=where, fix="re-export the file")
            endian = "<" if struct.unpack("<i", header[:4])[0] == 348 else ">"
            if struct.unpack(f"{endian}i", header[:4])[0] != 348:
                return  # NIfTI-2 or not NIfTI: left to ITK
            dims = struct.unpack(f"{endian}8h", header[40:56])
            datatype, bitpix = struct.unpack(f"{endian}hh", header[70:74])
            vox_offset = int(struct.unpack(f"{endian}f", header[108:112])[0])
            if not 1 <= int(dims[0]) <= 7 or any(d < 0 for d in dims[1:int(dims[0]) + 1]):
                raise UnreadableFileError(f"the NIfTI header is corrupt (dimensions {dims})", where=where,
                                          fix="re-export the file")
            ndim = int(dims[0])
            n_voxels = int(np.prod([max(1, d) for d in dims[1:ndim + 1]], dtype=np.int64))
            expected = n_voxels * max(bitpix, 0) // 8
            f.read(max(0, vox_offset - 348))
            dtype = np.dtype(endian + _FLOAT_TYPES[datatype]) if datatype in _FLOAT_TYPES else None
            got, bad = 0, 0
            while got < expected:
                chunk = f.read(min(_CHUNK, expected - got))
                if not chunk:
                    break
                if dtype is not None:
                    usable = len(chunk) - len(chunk) % dtype.itemsize
                    bad += int(np.count_nonzero(~np.isfinite(np.frombuffer(chunk[:usable], dtype))))
                got += len(chunk)
    except (OSError, EOFError, zlib.error) as err:
        raise UnreadableFileError(f"cannot be read: it is truncated or corrupt ({err})", where=where,
                                  fix="re-export or re-download the file") from None
    if got < expected:
        raise UnreadableFileError(
            f"the file is truncated: {got} of {expected} voxel bytes present", where=where,
            fix="re-export or re-download the file (an interrupted copy or download leaves it short)")
    if bad:
        raise InputError(f"the volume contains {bad} NaN/Inf voxels", where=where,
                         fix="replace NaN/Inf (e.g. with 0 or the background value) before use")


_TEXT_KEYS = {"mha": ("NDims", "DimSize", "ElementDataFile", " = "), "nrrd": ("dimension", "sizes", None, ": ")}


def check_text_header(path: Path, kind: str) -> None:
    """Refuse MetaImage (``kind="mha"``) or NRRD (``kind="nrrd"``) headers with absurd dimensions."""
    ndims_key, sizes_key, end_key, sep = _TEXT_KEYS[kind]
    where = str(path)
    with open(path, "rb") as f:
        head = f.read(64 * 1024)
    fields: dict[str, str] = {}
    for raw in head.split(b"\n"):
        line = raw.decode("latin-1").strip()
        if kind == "nrrd" and not line:
            break  # blank line: end of an attached NRRD header
        if sep in line:
            key, value = line.split(sep, 1)
            fields.setdefault(key.strip(), value.strip())
            if end_key and key.strip() == end_key:
                break
    try:
        ndims = int(fields[ndims_key])
        sizes = [int(v) for v in fields[sizes_key].split()]
    except (KeyError, ValueError):
        raise UnreadableFileError(f"the header has no valid {ndims_key!r}/{sizes_key!r} fields", where=where,
                                  fix="re-export the file") from None
    if not 1 <= ndims <= 5 or len(sizes) != ndims or min(sizes) < 1:
        raise UnreadableFileError(f"the header is corrupt ({ndims_key} {ndims}, {sizes_key} {sizes[:8]})",
                                  where=where, fix="re-export the file")
    _check_geometry_fields(fields, kind, where)


#: Geometry fields of the text headers: spacing-like, position-like, direction-like (MetaIO accepts synonyms).
_GEOMETRY_KEYS: dict[str, dict[str, tuple[str, ...]]] = {
    "mha": {"spacing": ("ElementSpacing", "ElementSize"), "position": ("Offset", "Position", "Origin"),
            "direction": ("TransformMatrix", "Rotation", "Orientation")},
    "nrrd": {"spacing": ("spacings",), "position": ("space origin",), "direction": ("space directions",)},
}
#: Largest coordinate or spacing (mm) a header may state: a metre is already far outside any scanner.
MAX_COORDINATE_MM = 1e6


def _numbers(text: str) -> list[float] | None:
    """The numbers of a header value (NRRD vectors ``(a,b,c)`` and ``none`` entries allowed); None if not numbers."""
    out = []
    for token in text.replace("(", " ").replace(")", " ").replace(",", " ").split():
        if token.lower() == "none":  # NRRD: no direction for a non-spatial axis
            continue
        try:
            out.append(float(token))
        except ValueError:
            return None
    return out


def _check_geometry_fields(fields: dict[str, str], kind: str, where: str) -> None:
    """Refuse non-finite, absurd or degenerate spacing, position and direction values before ITK reads them
    (fuzzing found a 1e308 in a MetaImage ``TransformMatrix`` to send ITK's SVD into an endless loop)."""
    fix = "re-export the file; its header's geometry (spacing, origin, directions) is damaged"
    for role, keys in _GEOMETRY_KEYS[kind].items():
        for key in keys:
            if key not in fields:
                continue
            values = _numbers(fields[key])
            if values is None or not values or not all(np.isfinite(values)):
                raise UnreadableFileError(f"the header's {key} is not a list of finite numbers: "
                                          f"{fields[key][:80]!r}", where=where, fix=fix)
            if max(abs(v) for v in values) > MAX_COORDINATE_MM:
                raise UnreadableFileError(f"the header's {key} holds an absurd value ({max(values, key=abs):g})",
                                          where=where, fix=fix)
            if role == "spacing" and min(values) <= 0:
                raise UnreadableFileError(f"the header's {key} is not positive: {values[:6]}", where=where, fix=fix)
            if role == "direction":
                n = int(round(len(values) ** 0.5))
                if n * n == len(values) and n > 0:
                    m = np.asarray(values, float).reshape(n, n)
                    norms = np.linalg.norm(m, axis=0)
                    if norms.min() <= 0 or abs(np.linalg.det(m / norms)) < 1e-3:
                        raise UnreadableFileError(f"the header's {key} is degenerate (its axes are parallel or "
                                                  "zero)", where=where, fix=fix)


def check_header(path: Path) -> None:
    """The checks that apply to ``path``'s format (none for other formats)."""
    name = path.name.lower()
    if name.endswith((".nii", ".nii.gz")):
        check_nifti(path)
    elif name.endswith((".mha", ".mhd")):
        check_text_header(path, "mha")
    elif name.endswith((".nrrd", ".nhdr")):
        check_text_header(path, "nrrd")
