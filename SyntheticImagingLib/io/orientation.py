"""One canonical orientation for every case inside the library.

A file keeps whatever voxel order it was written in (axial, sagittal, coronal, LPS- or RAS-flipped, ...). Inside
the library every :class:`~SyntheticImagingLib.cases.Case` is brought to **one** orientation, so an array axis
always means the same body axis and array-level operations (a left-right flip augmentation, a crop, a patch) do
the same thing to the same anatomy however it was stored.

The canonical orientation is **LPS** (the DICOM/ITK code, letters = the direction in which each index grows):

* the array's last axis (``x`` index) runs towards the patient's **L**\\ eft,
* the middle axis (``y``) towards **P**\\ osterior,
* the first axis (``z``, slices) towards **S**\\ uperior.

LPS is the physical frame of the library's :class:`~SyntheticImagingLib.cases.Geometry` (ITK's), so a canonical
non-oblique case has the identity direction matrix: index axes and physical axes coincide and ``+x`` in the
array is ``+x`` (patient left) in physical space. SimpleITK's ``DICOMOrient(image, "LPS")`` gives the same arrays
and geometry (tested); in MONAI/nibabel terms it is ``Orientation(axcodes="LPS")`` (the letters mean the same,
but their arrays are indexed ``x, y, z`` where the library's are ``z, y, x``). The BraTS volumes (ITK direction
= identity) are already LPS; a volume stored RAS (a NIfTI with the identity affine) is flipped in x and y.

Reorienting only permutes and flips axes (``np.transpose`` / ``np.flip``): nothing is resampled, every voxel
keeps its value and its physical position (origin, spacing and direction are updated to match). An oblique
direction is brought to its nearest axes (as ``DICOMOrient`` does) and the residual rotation stays in the direction
matrix. The source orientation (its 3-letter code and direction) is kept in ``case.metadata["source_orientation"]``
so :func:`to_source_orientation` writes a case back in the voxel order it came in.

Example:
    >>> import numpy as np
    >>> from SyntheticImagingLib.cases import Case, Geometry
    >>> ras = Geometry(direction=(-1, 0, 0, 0, -1, 0, 0, 0, 1))
    >>> case = Case("c", {"T1": np.arange(8, dtype=np.float32).reshape(2, 2, 2)}, ras)
    >>> canonical = to_canonical(case)
    >>> orientation_code(canonical.geometry.direction), canonical.metadata["source_orientation"]["code"]
    ('LPS', 'RAS')
    >>> bool(np.array_equal(to_source_orientation(canonical).channels["T1"], case.channels["T1"]))
    True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..cases import Case, Geometry
from ..errors import GeometryError

__all__ = ["CANONICAL_ORIENTATION", "SOURCE_ORIENTATION_KEY", "orientation_code", "reorient", "to_canonical",
           "from_canonical", "to_source_orientation", "left_right_axis"]

#: The orientation of every case inside the library (ITK/DICOM code: x -> Left, y -> Posterior, z -> Superior).
CANONICAL_ORIENTATION = "LPS"
#: ``case.metadata`` key of the orientation a case was read in: ``{"code": "RAS", "direction": [9 numbers]}``.
SOURCE_ORIENTATION_KEY = "source_orientation"

# letter -> (physical LPS axis, sign): the letter names where the index axis points to
_LETTERS = {"L": (0, 1.0), "R": (0, -1.0), "P": (1, 1.0), "A": (1, -1.0), "S": (2, 1.0), "I": (2, -1.0)}
_NAMES = (("R", "L"), ("A", "P"), ("I", "S"))


def _nearest_axes(direction: Sequence[float] | np.ndarray) -> tuple[tuple[int, int, int], tuple[float, float, float]]:
    """For each index axis (x, y, z): the physical axis it is nearest to and the sign along it.

    ITK's rule (``DICOMOrientImageFilter``): repeatedly take the largest remaining ``|direction|`` entry, give its
    index axis (column) that physical axis (row), and drop both; so an oblique direction always maps to a valid
    orientation, one index axis per physical axis, the same one ITK picks (ties too: the later entry wins).
    """
    d = np.asarray(direction, dtype=float).reshape(3, 3)
    if not np.all(np.isfinite(d)) or abs(np.linalg.det(d)) < 1e-6:
        raise GeometryError(f"direction matrix {d.ravel().tolist()} is singular", fix="repair the image header")
    entries = sorted((abs(d[r, c]), r * 3 + c, r, c) for r in range(3) for c in range(3))
    best = [0, 0, 0]
    while entries:
        _, _, row, col = entries[-1]
        best[col] = row
        entries = [e for e in entries if e[2] != row and e[3] != col]
    signs = tuple(1.0 if d[best[k], k] >= 0 else -1.0 for k in range(3))
    return tuple(best), signs  # type: ignore[return-value]


def orientation_code(direction: Sequence[float] | np.ndarray) -> str:
    """The 3-letter ITK/DICOM orientation code of a direction matrix (letters: where x, y, z indices grow to).

    Example:
        >>> orientation_code((1, 0, 0, 0, 1, 0, 0, 0, 1)), orientation_code((0, 0, -1, 1, 0, 0, 0, -1, 0))
        ('LPS', 'PIR')
    """
    axes, signs = _nearest_axes(direction)
    return "".join(_NAMES[a][s > 0] for a, s in zip(axes, signs))


def _parse_code(code: str) -> tuple[tuple[int, int, int], tuple[float, float, float]]:
    code = str(code).upper()
    if len(code) != 3 or any(c not in _LETTERS for c in code) or {_LETTERS[c][0] for c in code} != {0, 1, 2}:
        raise GeometryError(f"{code!r} is not an orientation code",
                            fix="use 3 letters, one of L/R, one of P/A and one of S/I (e.g. 'LPS' or 'RAS')")
    axes = tuple(_LETTERS[c][0] for c in code)
    signs = tuple(_LETTERS[c][1] for c in code)
    return axes, signs  # type: ignore[return-value]


def _plan(geometry: Geometry, shape_zyx: Sequence[int], code: str
          ) -> tuple[tuple[int, int, int], tuple[bool, bool, bool], Geometry]:
    """Which old index axis becomes each new one (x, y, z order), whether it is flipped, and the new geometry."""
    have_axes, have_signs = _nearest_axes(geometry.direction)
    want_axes, want_signs = _parse_code(code)
    source = tuple(have_axes.index(p) for p in want_axes)  # new index axis m <- old index axis source[m]
    flip = tuple(have_signs[a] != s for a, s in zip(source, want_signs))
    d = geometry.direction_matrix
    spacing = np.asarray(geometry.spacing)
    size_xyz = np.asarray(shape_zyx)[::-1]
    origin = np.asarray(geometry.origin, dtype=float).copy()
    columns = []
    for a, f in zip(source, flip):
        if f:  # the new first voxel is the old last one along this axis
            origin = origin + d[:, a] * spacing[a] * (size_xyz[a] - 1)
        columns.append(-d[:, a] if f else d[:, a])
    direction = np.stack(columns, axis=1)
    new = Geometry(tuple(spacing[list(source)]), tuple(origin), tuple(direction.ravel()))
    return source, flip, new  # type: ignore[return-value]


def _apply(array: np.ndarray | None, source: Sequence[int], flip: Sequence[bool]) -> np.ndarray | None:
    if array is None:
        return None
    # index axis k (x, y, z) is numpy axis 2 - k of a [z, y, x] array
    out = np.transpose(array, [2 - source[2 - n] for n in range(3)])
    flip_axes = tuple(2 - m for m in range(3) if flip[m])
    if flip_axes:
        out = np.flip(out, axis=flip_axes)
    return np.ascontiguousarray(out)


def reorient(case: Case, code: str) -> Case:
    """The case with its arrays permuted/flipped to orientation ``code``; geometry follows (same physical voxels).

    ``case.metadata`` is kept as it is. Returns ``case`` itself when it already has that orientation.
    """
    source, flip, geometry = _plan(case.geometry, case.shape, code)
    if source == (0, 1, 2) and not any(flip):
        return case
    return case.replace(channels={k: _apply(v, source, flip) for k, v in case.channels.items()},
                        label=_apply(case.label, source, flip), brain_mask=_apply(case.brain_mask, source, flip),
                        geometry=geometry, metadata=dict(case.metadata))


def to_canonical(case: Case) -> Case:
    """The case in the canonical orientation (:data:`CANONICAL_ORIENTATION`), its source orientation recorded.

    ``metadata["source_orientation"]`` gets ``{"code": ..., "direction": [...]}`` of the case as given; a case that
    is already canonical and already records a source orientation keeps that record (calling this twice is
    harmless).
    """
    code = orientation_code(case.geometry.direction)
    if code == CANONICAL_ORIENTATION and SOURCE_ORIENTATION_KEY in case.metadata:
        return case
    out = reorient(case, CANONICAL_ORIENTATION)
    if out is case:
        out = case.replace(metadata=dict(case.metadata))
    out.metadata[SOURCE_ORIENTATION_KEY] = {"code": code,
                                            "direction": [float(v) for v in case.geometry.direction]}
    return out


def from_canonical(case: Case, orientation: str | Mapping[str, Any]) -> Case:
    """The (canonical) case in another orientation: a 3-letter code or a ``source_orientation`` record.

    The geometry stays physical, so this works from any orientation, not only the canonical one.
    """
    code = orientation.get("code") if isinstance(orientation, Mapping) else orientation
    if not isinstance(code, str):
        raise GeometryError(f"no orientation code in {orientation!r}",
                            fix='give a code such as "RAS" or a {"code": ...} record')
    return reorient(case, code)


def to_source_orientation(case: Case) -> Case:
    """The case in the orientation it was read in (``metadata["source_orientation"]``); unchanged without one."""
    record = case.metadata.get(SOURCE_ORIENTATION_KEY)
    if not isinstance(record, Mapping) or not isinstance(record.get("code"), str):
        return case
    return from_canonical(case, record)


def left_right_axis(geometry: Geometry) -> int:
    """The array axis (0, 1 or 2 of ``[z, y, x]``) that runs along the patient's left-right axis.

    On canonical cases it is 2 (the last axis, ``x``): a flip along it mirrors left and right in physical space.

    Example:
        >>> left_right_axis(Geometry()), left_right_axis(Geometry(direction=(0, 0, 1, 1, 0, 0, 0, 1, 0)))
        (2, 0)
    """
    axes, _ = _nearest_axes(geometry.direction)
    return 2 - axes.index(0)
