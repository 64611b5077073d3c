"""Preprocessing that generators and checks share, with its inverse.

* :func:`resample_case`: to a target spacing (images linear, labels nearest), geometry updated.
* :func:`crop_or_pad`: to a target shape centred on the head/brain, origin updated so physical positions stay.
* :func:`resample_to_reference`: back onto any reference grid (the inverse of both).
* :class:`IntensityMap`: per-modality normalisation to ``[-1, 1]`` and back to physical units
  (CT: an invertible piecewise-linear map of HU that gives soft tissue most of the range; MR: brain-masked
  robust scaling by the 99.5th percentile).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import SimpleITK as sitk

from .cases import Case, Geometry, Modality
from .errors import InputError
from .io.images import to_sitk

__all__ = ["resample_case", "crop_or_pad", "resample_to_reference", "foreground_mask", "IntensityMap",
           "CT_KNOTS_HU", "CT_KNOTS_OUT"]

#: Piecewise-linear CT map: air..fat compressed, soft tissue (-100..200 HU) stretched, bone compressed.
CT_KNOTS_HU = (-1024.0, -100.0, 200.0, 3071.0)
CT_KNOTS_OUT = (-1.0, -0.6, 0.8, 1.0)


def _resample(array: np.ndarray, geometry: Geometry, ref_geometry: Geometry, ref_shape: Sequence[int], *,
              nearest: bool, default: float) -> np.ndarray:
    ref = sitk.Image([int(s) for s in ref_shape[::-1]], sitk.sitkUInt8)
    ref.SetSpacing(ref_geometry.spacing)
    ref.SetOrigin(ref_geometry.origin)
    ref.SetDirection(ref_geometry.direction)
    interpolator = sitk.sitkNearestNeighbor if nearest else sitk.sitkLinear
    src = to_sitk(array, geometry)
    out = sitk.Resample(src, ref, sitk.Transform(), interpolator, float(default), src.GetPixelID())
    return sitk.GetArrayFromImage(out)


def foreground_mask(case: Case) -> np.ndarray:
    """The brain mask if the case has one, else the head: CT above -300 HU, MR any channel above 0."""
    if case.brain_mask is not None:
        return case.brain_mask
    first = next(iter(case.channels.values()))
    if case.modality == Modality.CT:
        return first > -300
    return np.any(np.stack([np.abs(a) > 1e-6 for a in case.channels.values()]), axis=0)


def _background(case: Case) -> float:
    return -1024.0 if case.modality == Modality.CT else 0.0


def resample_to_reference(case: Case, geometry: Geometry, shape: Sequence[int]) -> Case:
    """Resample every array of ``case`` onto the grid ``(geometry, shape)``."""
    bg = _background(case)
    channels = {k: _resample(v, case.geometry, geometry, shape, nearest=False, default=bg)
                for k, v in case.channels.items()}
    label = None if case.label is None else _resample(case.label, case.geometry, geometry, shape, nearest=True,
                                                      default=0)
    brain = None if case.brain_mask is None else _resample(case.brain_mask.astype(np.uint8), case.geometry,
                                                           geometry, shape, nearest=True, default=0).astype(bool)
    return case.replace(channels=channels, geometry=geometry, label=label, brain_mask=brain)


def resample_case(case: Case, spacing: Sequence[float]) -> Case:
    """Resample to ``spacing`` (mm, x y z) over the same physical extent; a no-op when already there."""
    spacing = tuple(float(s) for s in spacing)
    if np.allclose(spacing, case.geometry.spacing, rtol=1e-6):
        return case
    if len(spacing) != 3 or min(spacing) <= 0:
        raise InputError(f"target spacing must be 3 positive numbers (mm), got {spacing}")
    extent = np.asarray(case.geometry.spacing) * np.asarray(case.shape[::-1])
    new_size_xyz = np.maximum(1, np.round(extent / np.asarray(spacing))).astype(int)
    # keep the physical centre of the volume where it was
    old_centre = case.geometry.index_to_physical((np.asarray(case.shape) - 1) / 2.0)
    offset = case.geometry.direction_matrix @ ((new_size_xyz - 1) / 2.0 * np.asarray(spacing))
    geometry = Geometry(spacing, tuple(old_centre - offset), case.geometry.direction)
    return resample_to_reference(case, geometry, tuple(new_size_xyz[::-1]))


def crop_or_pad(case: Case, shape: Sequence[int], *, mask: np.ndarray | None = None) -> Case:
    """Crop or pad to ``shape`` ``(z, y, x)`` centred on ``mask`` (default: :func:`foreground_mask`).

    The origin moves with the crop, so every voxel keeps its physical position.
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or min(shape) < 1:
        raise InputError(f"target shape must be 3 positive sizes (z, y, x), got {shape}")
    mask = foreground_mask(case) if mask is None else mask
    if mask.any():
        idx = np.argwhere(mask)
        centre = (idx.min(0) + idx.max(0)) / 2.0
    else:
        centre = (np.asarray(case.shape) - 1) / 2.0
    start = np.round(centre - (np.asarray(shape) - 1) / 2.0).astype(int)
    src_lo = np.maximum(start, 0)
    src_hi = np.minimum(start + shape, case.shape)
    dst_lo = src_lo - start
    dst_hi = dst_lo + (src_hi - src_lo)
    src = tuple(slice(a, b) for a, b in zip(src_lo, src_hi))
    dst = tuple(slice(a, b) for a, b in zip(dst_lo, dst_hi))

    def cut(array: np.ndarray, fill: float) -> np.ndarray:
        out = np.full(shape, fill, dtype=array.dtype)
        out[dst] = array[src]
        return out

    bg = _background(case)
    origin = case.geometry.index_to_physical(start.astype(float))
    geometry = Geometry(case.geometry.spacing, tuple(origin), case.geometry.direction)
    return case.replace(
        channels={k: cut(v, bg) for k, v in case.channels.items()}, geometry=geometry,
        label=None if case.label is None else cut(case.label, 0),
        brain_mask=None if case.brain_mask is None else cut(case.brain_mask, False))


@dataclasses.dataclass(frozen=True)
class IntensityMap:
    """Maps a case's physical intensities to ``[-1, 1]`` for the networks, and back.

    Args:
        modality: CT uses a fixed invertible HU map; MR maps ``offsets[channel]`` to 0 and ``scales[channel]`` to 1.
        scales: MR only: the intensity mapped to 1 per channel (99.5th percentile inside the head).
        offsets: MR only: the intensity mapped to 0 per channel: 0 for non-negative images (absent from the JSON
            form, so maps of non-negative data read and write as before), the 0.5th percentile inside the head for
            images with negative values (z-scored, e.g. BRATS 2013), which would otherwise be clipped away.

    Example:
        >>> m = IntensityMap(Modality.CT)
        >>> float(m.inverse_array(m.forward_array(np.array([40.0]), "CT"), "CT")[0])
        40.0
    """

    modality: Modality
    scales: dict[str, float] = dataclasses.field(default_factory=dict)
    offsets: dict[str, float] = dataclasses.field(default_factory=dict)

    def offset(self, channel: str) -> float:
        """The intensity mapped to 0 for ``channel`` (0 unless the images have negative values)."""
        return float(self.offsets.get(channel, 0.0))

    @classmethod
    def fit(cls, case: Case) -> IntensityMap:
        """Fit to one case (CT: nothing to fit)."""
        if case.modality == Modality.CT:
            return cls(Modality.CT)
        mask = foreground_mask(case)
        scales, offsets = {}, {}
        for name, a in case.channels.items():
            values = a[mask] if mask.any() else a.ravel()
            scale = float(np.percentile(values, 99.5)) if values.size else 0.0
            low = float(np.percentile(values, 0.5)) if values.size else 0.0
            offset = low if values.size and float(values.min()) < 0 and low < 0 else 0.0
            if scale <= 0:
                raise InputError(f"channel {name!r} has no positive intensity inside the head", where=case.case_id,
                                 fix="check the image is not empty and is an MR volume")
            scales[name] = scale
            if offset != 0.0:
                offsets[name] = offset
        return cls(Modality.MR, scales, offsets)

    @classmethod
    def mean_of(cls, maps: Sequence[IntensityMap]) -> IntensityMap:
        """One map for a whole training set (MR: median scale per channel), used to write synthetic output."""
        if not maps:
            raise InputError("no intensity maps to combine")
        if maps[0].modality == Modality.CT:
            return cls(Modality.CT)
        names = maps[0].scales
        offsets = {n: float(np.median([m.offset(n) for m in maps])) for n in names}
        return cls(Modality.MR, {n: float(np.median([m.scales[n] for m in maps])) for n in names},
                   {n: v for n, v in offsets.items() if v != 0.0})

    def forward_array(self, array: np.ndarray, channel: str) -> np.ndarray:
        """Physical -> network units."""
        if self.modality == Modality.CT:
            return np.interp(array, CT_KNOTS_HU, CT_KNOTS_OUT).astype(np.float32)
        offset = self.offset(channel)
        return (np.clip((array - offset) / (self.scales[channel] - offset), 0.0, 1.5) * 2.0 - 1.0
                ).astype(np.float32)

    def inverse_array(self, array: np.ndarray, channel: str) -> np.ndarray:
        """Network units -> physical units (HU for CT)."""
        if self.modality == Modality.CT:
            return np.interp(array, CT_KNOTS_OUT, CT_KNOTS_HU).astype(np.float32)
        offset = self.offset(channel)
        return (offset + np.clip((np.asarray(array) + 1.0) / 2.0, 0.0, None) * (self.scales[channel] - offset)
                ).astype(np.float32)

    def forward(self, case: Case) -> Case:
        """The case in network units."""
        return case.replace(channels={k: self.forward_array(v, k) for k, v in case.channels.items()})

    def inverse(self, case: Case) -> Case:
        """The case back in physical units."""
        return case.replace(channels={k: self.inverse_array(v, k) for k, v in case.channels.items()})

    def to_dict(self) -> dict[str, object]:
        """JSON form (stored in model cards)."""
        d: dict[str, object] = {"modality": self.modality.value, "scales": dict(self.scales)}
        if any(v != 0.0 for v in self.offsets.values()):
            d["offsets"] = {k: v for k, v in self.offsets.items() if v != 0.0}
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> IntensityMap:
        """Inverse of :meth:`to_dict`."""
        return cls(Modality(d["modality"]), {str(k): float(v) for k, v in dict(d.get("scales", {})).items()},
                   {str(k): float(v) for k, v in dict(d.get("offsets", {})).items()})
