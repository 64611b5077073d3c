"""Lesion intensity models shared by the training-free generators.

* MR tumour: per-channel ratio of lesion to normal-brain median intensity, fitted on the user's labelled real
  cases (BraTS FLAIR: 1.5-2.3x, i.e. hyperintense), with a literature prior when no labelled case is given.
* CT hemorrhage: Hounsfield units by blood age (acute 50-90 HU, subacute isodense 25-45 HU, chronic hypodense
  5-20 HU); sources: Parizel et al., Eur Radiol 2001;11:1770-83 ("Intracranial hemorrhage: principles of CT and
  MRI interpretation"); Kidwell & Wintermark, Lancet Neurol 2008;7:256-67.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import ndimage

from ..cases import Case, Modality
from ..errors import InputError

__all__ = ["HEMORRHAGE_HU_BY_AGE", "MR_TUMOR_PRIOR", "LesionIntensityModel", "partial_volume_alpha",
           "smooth_texture", "estimate_noise_sigma"]

#: HU range of blood by age (see the module docstring for sources).
HEMORRHAGE_HU_BY_AGE: dict[str, tuple[float, float]] = {
    "acute": (50.0, 90.0),
    "subacute": (25.0, 45.0),
    "chronic": (5.0, 20.0),
}

#: Lesion / normal-brain median ratio per MR channel when nothing can be fitted (glioma: FLAIR hyperintense,
#: T1 mildly hypointense).
MR_TUMOR_PRIOR: dict[str, tuple[float, float]] = {"FLAIR": (1.5, 2.3), "T2": (1.5, 2.2), "T1": (0.75, 0.95),
                                                  "T1ce": (0.9, 1.4)}


def partial_volume_alpha(mask: np.ndarray, spacing_zyx: Sequence[float], *, edge_mm: float = 1.0) -> np.ndarray:
    """Soft lesion weight in [0, 1]: 1 inside, falling off over ``edge_mm`` at the border (partial volume)."""
    sigma = [edge_mm / 2.0 / s for s in spacing_zyx]
    soft = ndimage.gaussian_filter(mask.astype(np.float32), sigma)
    # lesion voxels stay mostly lesion (the label is the truth); neighbours outside get a partial-volume share
    return np.where(mask, np.clip(0.5 + soft, 0.0, 1.0), 0.8 * soft).astype(np.float32)


def smooth_texture(shape: Sequence[int], spacing_zyx: Sequence[float], rng: np.random.Generator, *,
                   scale_mm: float = 3.0) -> np.ndarray:
    """Smooth zero-mean, unit-std random field (lesion texture)."""
    field = ndimage.gaussian_filter(rng.standard_normal(tuple(shape)).astype(np.float32),
                                    [scale_mm / s for s in spacing_zyx])
    std = float(field.std())
    return field / std if std > 0 else field


def estimate_noise_sigma(image: np.ndarray, mask: np.ndarray) -> float:
    """Robust voxel noise level inside ``mask`` (MAD of the difference to a local mean)."""
    if not mask.any():
        return 0.0
    residual = image - ndimage.uniform_filter(image.astype(np.float32), 3)
    r = residual[ndimage.binary_erosion(mask, iterations=2) if mask.sum() > 1000 else mask]
    # a 3x3x3 mean removes 1/27 of the variance of white noise; MAD -> sigma for a normal
    return float(1.4826 * np.median(np.abs(r - np.median(r))) / np.sqrt(1 - 1 / 27))


@dataclasses.dataclass(frozen=True)
class LesionIntensityModel:
    """Target lesion intensities for one modality.

    Args:
        modality: MR or CT.
        ratios: MR: channel -> (low, high) lesion/normal-brain median ratio.
        hu_range: CT: (low, high) HU of the lesion.
        fitted_on: number of real labelled cases the ratios come from (0 = prior).
    """

    modality: Modality
    ratios: Mapping[str, tuple[float, float]] = dataclasses.field(default_factory=dict)
    hu_range: tuple[float, float] = HEMORRHAGE_HU_BY_AGE["acute"]
    fitted_on: int = 0

    @classmethod
    def fit(cls, cases: Sequence[Case], brains: Sequence[np.ndarray], *, hemorrhage_age: str = "acute"
            ) -> LesionIntensityModel:
        """Fit MR ratios on labelled cases (10th-90th percentile of per-case ratios); CT uses the age model."""
        if hemorrhage_age not in HEMORRHAGE_HU_BY_AGE:
            raise InputError(f"unknown hemorrhage age {hemorrhage_age!r}", fix=f"use {list(HEMORRHAGE_HU_BY_AGE)}")
        if not cases:
            raise InputError("no reference case to fit lesion intensities on")
        modality = cases[0].modality
        if modality == Modality.CT:
            return cls(Modality.CT, hu_range=HEMORRHAGE_HU_BY_AGE[hemorrhage_age])
        per_channel: dict[str, list[float]] = {name: [] for name in cases[0].channel_names}
        n = 0
        for case, brain in zip(cases, brains):
            if case.label is None or not (case.label > 0).any():
                continue
            lesion = case.label > 0
            normal = brain & ~ndimage.binary_dilation(lesion, iterations=2)
            if normal.sum() < 100:
                continue
            n += 1
            for name, a in case.channels.items():
                ref = float(np.median(a[normal]))
                if ref > 0 and name in per_channel:
                    per_channel[name].append(float(np.median(a[lesion])) / ref)
        ratios = {}
        for name, values in per_channel.items():
            if len(values) >= 2:
                ratios[name] = (float(np.percentile(values, 10)), float(np.percentile(values, 90)))
            else:
                ratios[name] = MR_TUMOR_PRIOR.get(name, (1.3, 2.0))
        return cls(Modality.MR, ratios=ratios, fitted_on=n)

    def draw(self, rng: np.random.Generator, channel: str, normal_median: float) -> float:
        """One lesion target intensity for ``channel`` (MR: relative to the normal-brain median; CT: HU)."""
        if self.modality == Modality.CT:
            return float(rng.uniform(*self.hu_range))
        low, high = self.ratios.get(channel, MR_TUMOR_PRIOR.get(channel, (1.3, 2.0)))
        return float(rng.uniform(low, high)) * normal_median

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"modality": self.modality.value, "ratios": {k: list(v) for k, v in self.ratios.items()},
                "hu_range": list(self.hu_range), "fitted_on": self.fitted_on}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LesionIntensityModel:
        """Inverse of :meth:`to_dict`."""
        return cls(Modality(d["modality"]), {k: tuple(v) for k, v in d.get("ratios", {}).items()},
                   tuple(d.get("hu_range", HEMORRHAGE_HU_BY_AGE["acute"])), int(d.get("fitted_on", 0)))
