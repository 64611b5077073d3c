"""Checks ITK's NIfTI reader skips: truncated data (ITK zero-fills it) and NaN/Inf (ITK reads them as 0).

One streaming pass over the voxel data (decompressed on the fly), so a truncated download or a volume with NaNs
is an error naming the file instead of a silently altered image.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from ..errors import InputError, UnreadableFileError

__all__ = ["check_nifti"]

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
            ndim = max(0, min(int(dims[0]), 7))
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
