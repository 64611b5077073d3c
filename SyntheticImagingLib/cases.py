"""The one data model that flows through the library: :class:`Case` = image channels + label + geometry.

Conventions (the same as SimpleITK's ``GetArrayFromImage`` and Slicer's ``arrayFromVolume``):

* arrays are indexed ``[z, y, x]`` (slice, row, column);
* :class:`Geometry` is given in ITK/LPS physical order ``(x, y, z)``: ``spacing`` and ``origin`` in mm and a
  row-major 3x3 ``direction`` whose *columns* are the directions of the x, y and z index axes.

Geometry travels with the arrays: every function that changes the grid returns a new :class:`Case` with the
matching new geometry, so no later step has to guess it.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from .errors import GeometryError, InputError, LabelError

__all__ = ["Modality", "LesionKind", "Geometry", "LabelTable", "Case", "merge_label_maps", "TUMOR_LABELS",
           "TUMOR_SUBREGION_LABELS", "HEMORRHAGE_LABELS"]


class Modality(str, enum.Enum):
    """Imaging modality of a case: decides intensity handling (MR: relative units, CT: Hounsfield units)."""

    MR = "MR"
    CT = "CT"


class LesionKind(str, enum.Enum):
    """What the label map marks."""

    TUMOR = "tumor"
    HEMORRHAGE = "hemorrhage"


@dataclasses.dataclass(frozen=True)
class Geometry:
    """Physical placement of a 3D voxel grid (ITK/LPS convention, ``(x, y, z)`` order).

    Args:
        spacing: voxel size in mm along the x, y and z index axes.
        origin: physical position (mm) of the centre of voxel ``[0, 0, 0]``.
        direction: 9 numbers, row-major 3x3 matrix whose columns are the index axes' unit directions.

    Example:
        >>> g = Geometry(spacing=(2.0, 2.0, 2.0), origin=(0.0, 0.0, 0.0))
        >>> g.voxel_volume_ml
        0.008
    """

    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)

    def __post_init__(self) -> None:
        spacing = tuple(float(s) for s in self.spacing)
        origin = tuple(float(o) for o in self.origin)
        direction = tuple(float(d) for d in self.direction)
        if len(spacing) != 3 or len(origin) != 3 or len(direction) != 9:
            raise GeometryError(
                f"geometry needs 3 spacings, 3 origin values and 9 direction values, got "
                f"{len(spacing)}, {len(origin)} and {len(direction)}",
                fix="pass a 3D image; 2D and 4D images are not supported",
            )
        if not all(math.isfinite(s) and s > 0 for s in spacing):
            raise GeometryError(f"voxel spacing must be positive and finite, got {spacing}",
                                fix="repair the image header (spacing) before loading it")
        if not all(math.isfinite(v) for v in origin + direction):
            raise GeometryError("origin/direction contain NaN or Inf", fix="repair the image header")
        object.__setattr__(self, "spacing", spacing)
        object.__setattr__(self, "origin", origin)
        object.__setattr__(self, "direction", direction)

    @property
    def direction_matrix(self) -> np.ndarray:
        """The 3x3 direction matrix (columns = index axes)."""
        return np.asarray(self.direction, dtype=float).reshape(3, 3)

    @property
    def voxel_volume_ml(self) -> float:
        """Volume of one voxel in millilitres (1 ml = 1000 mm^3)."""
        return float(np.prod(self.spacing)) / 1000.0

    @property
    def spacing_zyx(self) -> tuple[float, float, float]:
        """Spacing in array order ``[z, y, x]``, for numpy/scipy code."""
        return (self.spacing[2], self.spacing[1], self.spacing[0])

    def index_to_physical(self, index_zyx: np.ndarray) -> np.ndarray:
        """Map array indices ``[..., (z, y, x)]`` to physical points ``[..., (x, y, z)]`` in mm."""
        ijk = np.asarray(index_zyx, dtype=float)[..., ::-1]
        return ijk * np.asarray(self.spacing) @ self.direction_matrix.T + np.asarray(self.origin)

    def physical_to_index(self, point_xyz: np.ndarray) -> np.ndarray:
        """Map physical points ``[..., (x, y, z)]`` (mm) to continuous array indices ``[..., (z, y, x)]``."""
        p = np.asarray(point_xyz, dtype=float) - np.asarray(self.origin)
        ijk = p @ np.linalg.inv(self.direction_matrix).T / np.asarray(self.spacing)
        return ijk[..., ::-1]

    def ijk_to_ras(self) -> np.ndarray:
        """4x4 IJK-to-RAS matrix as Slicer's volume nodes use it (LPS flipped to RAS)."""
        m = np.eye(4)
        m[:3, :3] = self.direction_matrix * np.asarray(self.spacing)[None, :]
        m[:3, 3] = self.origin
        lps_to_ras = np.diag([-1.0, -1.0, 1.0, 1.0])
        return lps_to_ras @ m

    @classmethod
    def from_ijk_to_ras(cls, matrix: np.ndarray) -> Geometry:
        """Inverse of :meth:`ijk_to_ras`."""
        m = np.diag([-1.0, -1.0, 1.0, 1.0]) @ np.asarray(matrix, dtype=float)
        spacing = np.linalg.norm(m[:3, :3], axis=0)
        direction = m[:3, :3] / spacing[None, :]
        return cls(tuple(spacing), tuple(m[:3, 3]), tuple(direction.ravel()))

    def differences(self, other: Geometry, *, tolerance: float = 1e-4) -> list[str]:
        """Human-readable list of what differs from ``other`` (empty when equal within ``tolerance`` mm)."""
        out = []
        for name in ("spacing", "origin", "direction"):
            a, b = np.asarray(getattr(self, name)), np.asarray(getattr(other, name))
            if not np.allclose(a, b, atol=tolerance, rtol=0):
                out.append(f"{name} {tuple(np.round(a, 4))} vs {tuple(np.round(b, 4))}")
        return out

    def to_dict(self) -> dict[str, list[float]]:
        """JSON-serialisable form."""
        return {"spacing": list(self.spacing), "origin": list(self.origin), "direction": list(self.direction)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Geometry:
        """Inverse of :meth:`to_dict`."""
        return cls(tuple(d["spacing"]), tuple(d["origin"]), tuple(d["direction"]))


@dataclasses.dataclass(frozen=True)
class LabelTable:
    """Names of the integer values of a label map (0 is always background and not listed).

    Example:
        >>> t = LabelTable({1: "tumor"})
        >>> t.value_of("tumor")
        1
    """

    names: Mapping[int, str] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        names = {int(k): str(v) for k, v in dict(self.names).items()}
        if 0 in names:
            del names[0]
        object.__setattr__(self, "names", dict(sorted(names.items())))

    @property
    def values(self) -> list[int]:
        """Label values (without background)."""
        return list(self.names)

    def value_of(self, name: str) -> int:
        """The value of a named label."""
        for v, n in self.names.items():
            if n == name:
                return v
        raise LabelError(f"no label named {name!r}; the label table has {list(self.names.values())}")

    def to_dict(self) -> dict[str, str]:
        """JSON form: ``{"1": "tumor", ...}`` (string keys, as ``dataset.json`` uses)."""
        return {str(k): v for k, v in self.names.items()}

    @classmethod
    def from_dict(cls, d: Mapping[Any, str]) -> LabelTable:
        """Inverse of :meth:`to_dict`; ignores a ``"0": "background"`` entry."""
        return cls({int(k): v for k, v in d.items()})


#: Default label tables of the two lesion kinds.
TUMOR_LABELS = LabelTable({1: "tumor"})
TUMOR_SUBREGION_LABELS = LabelTable({1: "tumor core", 2: "edema"})
HEMORRHAGE_LABELS = LabelTable({1: "hemorrhage"})


@dataclasses.dataclass
class Case:
    """One labelled 3D study: image channels, optional label map and their shared geometry.

    Args:
        case_id: identifier of the case (no patient identity: a folder name or a synthetic id).
        channels: channel name -> float32 array ``[z, y, x]`` (e.g. ``{"FLAIR": ..., "T1": ...}`` or
            ``{"CT": ...}`` in HU). All channels share one shape.
        geometry: physical placement of the grid.
        modality: MR or CT.
        lesion_kind: what the label marks.
        label: integer array ``[z, y, x]`` (0 = background) or None.
        label_table: names of the label values.
        brain_mask: optional boolean array ``[z, y, x]`` (derived when needed if None).
        metadata: free provenance (source paths, generator, seed, ...); JSON-serialisable values only.
    """

    case_id: str
    channels: dict[str, np.ndarray]
    geometry: Geometry
    modality: Modality = Modality.MR
    lesion_kind: LesionKind = LesionKind.TUMOR
    label: np.ndarray | None = None
    label_table: LabelTable = dataclasses.field(default_factory=lambda: TUMOR_LABELS)
    brain_mask: np.ndarray | None = None
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        self.modality = Modality(self.modality)
        self.lesion_kind = LesionKind(self.lesion_kind)
        if not self.channels:
            raise InputError("a case needs at least one image channel", where=self.case_id)
        shapes = {name: np.shape(a) for name, a in self.channels.items()}
        for name, shape in shapes.items():
            if len(shape) != 3:
                raise InputError(
                    f"channel {name!r} is {len(shape)}D with shape {shape}; a 3D volume is needed",
                    where=self.case_id,
                    fix="load a 3D volume (for a 4D file, split it into one 3D file per channel)",
                )
        if len(set(shapes.values())) > 1:
            raise GeometryError(f"image channels have different shapes: {shapes}", where=self.case_id,
                                fix="resample all channels to one grid before building a case")
        self.channels = {k: np.asarray(v, dtype=np.float32) for k, v in self.channels.items()}
        if self.label is not None:
            if np.shape(self.label) != self.shape:
                raise GeometryError(
                    f"label shape {np.shape(self.label)} differs from image shape {self.shape}",
                    where=self.case_id, fix="use the label that was drawn on this image, or resample it onto it")
            self.label = np.asarray(self.label)
            if not np.issubdtype(self.label.dtype, np.integer):
                rounded = np.rint(self.label)
                if not np.array_equal(rounded, self.label):
                    raise LabelError("label map has non-integer values", where=self.case_id,
                                     fix="save the label as an integer label map, not a probability map")
                self.label = rounded
            self.label = self.label.astype(np.int16, copy=False)
        if self.brain_mask is not None:
            if np.shape(self.brain_mask) != self.shape:
                raise GeometryError(f"brain mask shape {np.shape(self.brain_mask)} differs from image shape "
                                    f"{self.shape}", where=self.case_id)
            self.brain_mask = np.asarray(self.brain_mask, dtype=bool)

    @property
    def shape(self) -> tuple[int, int, int]:
        """Array shape ``(z, y, x)``."""
        return tuple(next(iter(self.channels.values())).shape)  # type: ignore[return-value]

    @property
    def channel_names(self) -> list[str]:
        """Channel names in order."""
        return list(self.channels)

    def image(self) -> np.ndarray:
        """All channels stacked as ``[C, z, y, x]`` float32."""
        return np.stack(list(self.channels.values())).astype(np.float32, copy=False)

    def lesion_volume_ml(self, value: int | None = None) -> float:
        """Labelled volume in ml (all non-zero labels, or one label value)."""
        if self.label is None:
            return 0.0
        n = int(np.count_nonzero(self.label if value is None else self.label == value))
        return n * self.geometry.voxel_volume_ml

    def replace(self, **changes: Any) -> Case:
        """A copy with some fields replaced (arrays are not copied)."""
        return dataclasses.replace(self, **changes)

    def validate(self, *, require_label: bool = False, require_lesion: bool = False) -> Case:
        """Check the case is usable; raise a clear error otherwise. Returns ``self`` for chaining.

        Args:
            require_label: the case must have a label map.
            require_lesion: the label map must mark at least one voxel.
        """
        for name, a in self.channels.items():
            bad = ~np.isfinite(a)
            if bad.any():
                raise InputError(
                    f"channel {name!r} contains {int(bad.sum())} NaN/Inf voxels",
                    where=self.case_id, fix="replace NaN/Inf (e.g. with 0 or the background value) before use")
        if require_label and self.label is None:
            raise LabelError("this case has no label map, and one is required", where=self.case_id,
                             fix="add the label file (see the dataset's label pattern) or pick a segmentation")
        if self.label is not None:
            present = set(np.unique(self.label).tolist()) - {0}
            unknown = present - set(self.label_table.values)
            if unknown:
                raise LabelError(
                    f"label values {sorted(unknown)} are not in the label table {self.label_table.names}",
                    where=self.case_id, fix="remap the label values or extend the label table")
            if require_lesion and not present:
                raise LabelError("the label map is empty (no lesion voxel)", where=self.case_id,
                                 fix="use a case with a drawn lesion, or drop this case")
        return self


def merge_label_maps(base: np.ndarray | None, base_table: LabelTable, new: np.ndarray, new_table: LabelTable
                     ) -> tuple[np.ndarray, LabelTable]:
    """Paint ``new`` (non-zero voxels win) over ``base``; labels with the same name share one value, and a name
    new to ``base_table`` keeps its own value unless ``base_table`` uses it (then it takes the next free one), so
    a user's values (BraTS 1, 2, 4) survive a background without a label.

    Example:
        >>> a = np.array([[[1, 0, 0]]]); b = np.array([[[0, 0, 1]]])
        >>> merge_label_maps(a, LabelTable({1: "tumor"}), b, LabelTable({1: "tumor"}))[0].tolist()
        [[[1, 0, 1]]]
        >>> merge_label_maps(None, LabelTable(), b * 4, LabelTable({2: "edema", 4: "enhancing"}))[1].values
        [2, 4]
    """
    names = dict(base_table.names)
    out = np.zeros(new.shape, np.int16) if base is None else np.asarray(base, dtype=np.int16).copy()
    by_name = {n: v for v, n in names.items()}
    for value, name in new_table.names.items():
        if name not in by_name:
            by_name[name] = value if value not in names else max(names, default=0) + 1
            names[by_name[name]] = name
        out[new == value] = by_name[name]
    return out, LabelTable(names)
