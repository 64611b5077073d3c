"""The disguise a generator puts on a patient it memorized: the alteration family of the privacy check.

Generative models trained with flips and elastic augmentation reproduce training patients flipped, slightly
rotated, scaled, shifted and deformed, under another bias field, contrast and noise (Dar et al. 2024 found up to
41.7 % of CT training data memorized by 3D generative models). The privacy check calibrates its copy threshold
on this family, its tests plant such copies, and the benchmark draws them at random; they share this module.

Every alteration is drawn independently per copy, image and label together (label and head mask by nearest
neighbour, image linearly), with these ranges (:data:`DISGUISE`):

* left-right flip with probability 0.5;
* rotation up to 5 degrees about each axis; isotropic scale 0.95-1.05; shift up to 5 mm per axis;
* elastic deformation: a smooth random displacement field (Gaussian-smoothed noise, 20 mm correlation length),
  largest displacement up to 4 mm;
* bias field: a smooth multiplicative field ``1 + b f`` with ``f`` in [-1, 1] (40 mm correlation length),
  ``b`` up to 0.3;
* gamma: ``v ** g`` on the intensities scaled to [0, 1] (background at 0), ``g`` log-uniform in 0.7-1.4;
* Gaussian noise in the head, standard deviation up to 5 % of the intensity range.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import ndimage

from ..cases import Case
from ..errors import InputError
from ..triples import float3

__all__ = ["DisguiseParams", "DISGUISE", "DrawnDisguise", "draw_disguise", "disguise_case", "disguised_copies"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class DisguiseParams:
    """Ranges of the alterations (each drawn uniformly up to its maximum unless stated).

    Args:
        flip_lr: probability of a left-right (array x axis: the patient's on canonical LPS cases) flip.
        rotate_deg: largest rotation about each axis.
        scale: largest relative change of isotropic scale (``1 +- scale``).
        shift_mm: largest translation per axis.
        elastic_mm: largest elastic displacement.
        elastic_sigma_mm: correlation length of the elastic field.
        bias: largest amplitude ``b`` of the multiplicative bias field ``1 + b f``.
        bias_sigma_mm: correlation length of the bias field.
        gamma: range of the gamma exponent (drawn log-uniformly).
        noise_std: largest noise standard deviation, as a fraction of the intensity range.
    """

    flip_lr: float = 0.5
    rotate_deg: float = 5.0
    scale: float = 0.05
    shift_mm: float = 5.0
    elastic_mm: float = 4.0
    elastic_sigma_mm: float = 20.0
    bias: float = 0.3
    bias_sigma_mm: float = 40.0
    gamma: tuple[float, float] = (0.7, 1.4)
    noise_std: float = 0.05

    def __post_init__(self) -> None:
        if not 0.0 <= self.flip_lr <= 1.0:
            raise InputError(f"flip probability must be in [0, 1], got {self.flip_lr}")
        if min(self.rotate_deg, self.scale, self.shift_mm, self.elastic_mm, self.bias, self.noise_std) < 0:
            raise InputError("disguise ranges must not be negative")
        if not 0.0 < self.gamma[0] <= self.gamma[1] or self.scale >= 1.0 or self.bias >= 1.0:
            raise InputError(f"invalid disguise ranges: gamma {self.gamma}, scale {self.scale}, bias {self.bias}")

    def describe(self) -> str:
        """The family in words (for reports)."""
        return (f"left-right flip (p={self.flip_lr:g}), rotation <= {self.rotate_deg:g} deg per axis, scale "
                f"1 +- {self.scale:g}, shift <= {self.shift_mm:g} mm per axis, elastic displacement <= "
                f"{self.elastic_mm:g} mm ({self.elastic_sigma_mm:g} mm smooth), bias field 1 +- {self.bias:g} "
                f"({self.bias_sigma_mm:g} mm smooth), gamma {self.gamma[0]:g}-{self.gamma[1]:g}, noise <= "
                f"{self.noise_std:g} of the intensity range; image and label together")

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return dataclasses.asdict(self)


#: The alteration family the privacy check is calibrated on and validated against.
DISGUISE = DisguiseParams()


@dataclasses.dataclass(frozen=True)
class DrawnDisguise:
    """One draw from the family (what was done to a copy).

    Args:
        flip: left-right flipped.
        angles_deg: rotations about z, y, x.
        scale: isotropic scale factor.
        shift_mm: translation (z, y, x).
        elastic_mm: largest elastic displacement.
        bias: bias field amplitude.
        gamma: gamma exponent.
        noise: noise standard deviation (fraction of the intensity range).
        seed: seed of the random fields.
    """

    flip: bool
    angles_deg: tuple[float, float, float]
    scale: float
    shift_mm: tuple[float, float, float]
    elastic_mm: float
    bias: float
    gamma: float
    noise: float
    seed: int

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return dataclasses.asdict(self)


def draw_disguise(rng: np.random.Generator, params: DisguiseParams = DISGUISE) -> DrawnDisguise:
    """Draw one disguise from the family.

    Args:
        rng: random generator.
        params: the family's ranges.
    """
    lo, hi = math.log(params.gamma[0]), math.log(params.gamma[1])
    return DrawnDisguise(flip=bool(rng.random() < params.flip_lr),
                         angles_deg=float3(rng.uniform(-params.rotate_deg, params.rotate_deg, 3)),
                         scale=float(1.0 + rng.uniform(-params.scale, params.scale)),
                         shift_mm=float3(rng.uniform(-params.shift_mm, params.shift_mm, 3)),
                         elastic_mm=float(rng.uniform(0.0, params.elastic_mm)),
                         bias=float(rng.uniform(0.0, params.bias)), gamma=float(math.exp(rng.uniform(lo, hi))),
                         noise=float(rng.uniform(0.0, params.noise_std)), seed=int(rng.integers(2**31)))


def _rotation(angles_deg: Sequence[float]) -> np.ndarray:
    a, b, c = (math.radians(v) for v in angles_deg)
    rz = np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])  # in the y-x plane
    ry = np.array([[math.cos(b), 0, math.sin(b)], [0, 1, 0], [-math.sin(b), 0, math.cos(b)]])
    rx = np.array([[math.cos(c), -math.sin(c), 0], [math.sin(c), math.cos(c), 0], [0, 0, 1]])
    return rz @ ry @ rx


def _smooth_field(shape: Sequence[int], sigma_vox: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Smooth noise in [-1, 1] (max |value| = 1), drawn on a 4x coarser grid for speed."""
    coarse = [max(2, math.ceil(s / 4)) for s in shape]
    field = ndimage.gaussian_filter(rng.normal(size=coarse), np.maximum(np.asarray(sigma_vox) / 4, 0.5), mode="wrap")
    field = ndimage.zoom(field, [s / c for s, c in zip(shape, coarse)], order=1, grid_mode=True, mode="nearest")
    return field / (np.abs(field).max() + 1e-12)


def _coordinates(shape: Sequence[int], spacing: np.ndarray, drawn: DrawnDisguise,
                 rng: np.random.Generator, elastic_sigma_mm: float) -> np.ndarray:
    """Input index of every output voxel: ``input = flip(R^-1 (out - centre - shift) / scale) + centre + u``."""
    centre = (np.asarray(shape) - 1) / 2.0
    grid = np.indices(shape, dtype=np.float32).reshape(3, -1)
    mm = (grid - centre[:, None]) * spacing[:, None]
    inv = _rotation(drawn.angles_deg).T / drawn.scale
    src = inv @ (mm - np.asarray(drawn.shift_mm)[:, None])
    if drawn.flip:
        src[2] = -src[2]
    if drawn.elastic_mm > 0:
        sigma = elastic_sigma_mm / spacing
        for axis in range(3):
            src[axis] += drawn.elastic_mm * _smooth_field(shape, sigma, rng).ravel() / math.sqrt(3)
    return (src / spacing[:, None] + centre[:, None]).reshape(3, *shape)


def disguise_case(case: Case, drawn: DrawnDisguise, *, params: DisguiseParams = DISGUISE,
                  case_id: str | None = None) -> Case:
    """A disguised copy of a case: geometry and intensity alterations of one draw, image and label together.

    Intensities are altered per channel on ``v = (x - background) / (p99.5 - background)`` inside the head
    (background = the channel's minimum, outside the head unchanged), so prepared and physical units behave alike.

    Args:
        case: the case (any grid; prepared or physical units).
        drawn: the alterations (see :func:`draw_disguise`).
        params: correlation lengths of the random fields.
        case_id: id of the copy (default ``<id>_disguised``).
    """
    rng = np.random.default_rng(drawn.seed)
    spacing = np.asarray(case.geometry.spacing_zyx, float)
    coords = _coordinates(case.shape, spacing, drawn, rng, params.elastic_sigma_mm)
    bias = 1.0 + drawn.bias * _smooth_field(case.shape, params.bias_sigma_mm / spacing, rng)
    head = case.brain_mask if case.brain_mask is not None else None
    channels = {}
    for name, a in case.channels.items():
        a = np.asarray(a, np.float32)
        bg = float(a.min())
        inside = head if head is not None and head.any() else a > bg
        hi = float(np.percentile(a[inside], 99.5)) if inside.any() else bg + 1.0
        span = max(hi - bg, 1e-6)
        v = np.clip((a - bg) / span, 0.0, None)
        v = v ** drawn.gamma * bias + rng.normal(0.0, drawn.noise, a.shape) * inside
        v = np.where(inside, np.clip(v, 0.0, None), 0.0)
        moved = ndimage.map_coordinates(v.astype(np.float32), coords, order=1, cval=0.0)
        channels[name] = (bg + span * moved).astype(np.float32)
    label = None if case.label is None else ndimage.map_coordinates(case.label, coords, order=0, cval=0)
    brain = None if head is None else ndimage.map_coordinates(head.astype(np.uint8), coords, order=0,
                                                              cval=0).astype(bool)
    meta = {**case.metadata, "synthetic": True, "generator": "disguised-copy", "source": case.case_id,
            "disguise": drawn.to_dict()}
    return case.replace(case_id=case_id or f"{case.case_id}_disguised", channels=channels, label=label,
                        brain_mask=brain, metadata=meta)


def disguised_copies(sources: Sequence[Case], n: int, *, seed: int = 0, params: DisguiseParams = DISGUISE,
                     prefix: str = "disguised") -> list[Case]:
    """``n`` disguised copies, sources taken in a shuffled order (every source before any repeats).

    Args:
        sources: the cases to copy (a copier's training set, or holdout cases for a false-alarm control).
        n: how many copies.
        seed: random seed (sources and alterations).
        params: the alteration family.
        prefix: case id prefix.
    """
    if not sources:
        raise InputError("disguised copies need source cases")
    rng = np.random.default_rng(seed)
    order = np.concatenate([rng.permutation(len(sources)) for _ in range(n // len(sources) + 1)])[:n]
    return [disguise_case(sources[int(j)], draw_disguise(rng, params), params=params,
                          case_id=f"{prefix}_{seed}_{i:04d}") for i, j in enumerate(order)]
