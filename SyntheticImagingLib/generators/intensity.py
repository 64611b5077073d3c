"""Lesion intensity models shared by the training-free generators.

* MR tumour: per-channel ratio of lesion to normal-brain median intensity, fitted on the user's labelled real
  cases (BraTS FLAIR: 1.5-2.3x, i.e. hyperintense), with a literature prior when no labelled case is given; with
  a multi-class table also per sub-region role (necrosis, edema, enhancing, ...) and channel, with its texture
  spread. Ratios are taken above an intensity offset (:func:`intensity_offset`: 0 for non-negative images, the
  brain's 0.5th percentile for z-scored ones such as BRATS 2013), so they stay meaningful for negative values.
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
from ..channel_names import channel_kind
from ..errors import InputError
from ..label_roles import (
    EDEMA,
    ENHANCING,
    NECROSIS,
    NECROTIC_CORE,
    NON_ENHANCING,
    PERIHEMATOMAL_EDEMA,
    TUMOR_CORE,
    WHOLE_TUMOR,
    LabelRoles,
)

__all__ = ["HEMORRHAGE_HU_BY_AGE", "MR_TUMOR_PRIOR", "MR_SUBREGION_PRIOR", "LesionIntensityModel",
           "partial_volume_alpha", "smooth_texture", "estimate_noise_sigma", "intensity_offset",
           "SUBREGION_CONTRAST", "EDEMA_BORDER_WEIGHT", "EDEMA_GRADIENT_MM", "LESION_HETEROGENEITY",
           "TISSUE_TEXTURE_MM"]

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


#: Sub-region / normal-brain ratios (above the offset) per tumour role and channel kind, used where no real case
#: has that role: glioma appearance (necrosis T1c-dark, enhancing rim T1c-bright, edema and non-enhancing tumour
#: FLAIR/T2-bright; Menze et al. 2015, Fig. 1; Pope et al., AJNR 2005;26:2466-74), relative widths judged.
MR_SUBREGION_PRIOR: dict[str, dict[str, tuple[float, float]]] = {
    NECROSIS: {"FLAIR": (1.1, 1.6), "T1": (0.55, 0.8), "T1c": (0.55, 0.8), "T2": (1.8, 2.5)},
    NECROTIC_CORE: {"FLAIR": (1.2, 1.7), "T1": (0.6, 0.85), "T1c": (0.6, 0.85), "T2": (1.6, 2.3)},
    NON_ENHANCING: {"FLAIR": (1.4, 2.0), "T1": (0.7, 0.9), "T1c": (0.75, 0.95), "T2": (1.5, 2.1)},
    ENHANCING: {"FLAIR": (1.3, 1.8), "T1": (0.8, 1.0), "T1c": (1.4, 2.2), "T2": (1.3, 1.8)},
    EDEMA: {"FLAIR": (1.4, 2.0), "T1": (0.8, 0.95), "T1c": (0.8, 0.95), "T2": (1.4, 2.0)},
    TUMOR_CORE: {"FLAIR": (1.3, 1.9), "T1": (0.65, 0.9), "T1c": (0.9, 1.5), "T2": (1.5, 2.2)},
    WHOLE_TUMOR: {"FLAIR": (1.5, 2.3), "T1": (0.75, 0.95), "T1c": (0.9, 1.4), "T2": (1.5, 2.2)},
}


#: Hidden glioma structure inside whole-tumour-only lesions: level of each BraTS sub-region relative to the whole
#: tumour's level (both above the intensity offset), ``(low, high)`` per channel kind, drawn per case. FLAIR and
#: T1c are measured on the 6 BRATS 2013 cases in ``shared/data/brats2013_multiclass`` (z-scored, so above the
#: offset of :func:`intensity_offset`; range: the middle 4 of the 6 per-case values, medians in brackets):
#: FLAIR necrosis 0.92-0.95 (0.93), edema 0.98-1.05 (1.01), non-enhancing 0.95-1.04 (0.96), enhancing 0.975-1.04
#: (1.00); T1c necrosis 0.67-1.06 (0.71), edema 0.97-1.02 (0.98), non-enhancing 1.01-1.08 (1.04), enhancing
#: 1.49-1.59 (1.52). The whole tumour itself is 1.68x the normal brain on FLAIR (1.28-1.84) and 0.96x on T1c.
#: T1 (pre-contrast) and T2 are literature-based priors, relative widths judged: necrosis T1-dark and T2-bright
#: (fluid), the enhancing rim iso- to mildly hypointense on pre-contrast T1 and intermediate on T2, edema close to
#: the whole tumour (Pope et al., AJNR 2005;26:2466-74; Menze et al., IEEE TMI 2015;34:1993-2024, Fig. 1).
#: Channel kinds not listed get no inner contrast.
SUBREGION_CONTRAST: dict[str, dict[str, tuple[float, float]]] = {
    NECROSIS: {"FLAIR": (0.92, 0.95), "T1c": (0.67, 1.06), "T1": (0.75, 0.9), "T2": (1.1, 1.3)},
    EDEMA: {"FLAIR": (0.98, 1.05), "T1c": (0.97, 1.02), "T1": (1.0, 1.05), "T2": (1.0, 1.05)},
    NON_ENHANCING: {"FLAIR": (0.95, 1.04), "T1c": (1.01, 1.08), "T1": (0.95, 1.0), "T2": (0.95, 1.05)},
    ENHANCING: {"FLAIR": (0.975, 1.04), "T1c": (1.49, 1.59), "T1": (1.0, 1.1), "T2": (0.85, 0.95)},
}

#: Edema gradient: at the tumour border the edema's excess over normal brain (above the offset) is this share of
#: its excess deep inside (more than :data:`EDEMA_GRADIENT_MM` from the border), rising linearly in between.
#: Measured on the 6 BRATS 2013 cases, edema within 2 mm of the whole tumour's border against edema deeper than
#: 4 mm: FLAIR 1.43x vs 1.91x the normal brain (medians), per-case shares 0.62 0.60 0.58 0.34 0.35 0.39 (range
#: of the middle 4: 0.35-0.60); T1c: the border edema is as normal brain (shares -1.0..0.14, taken as 0-0.14).
#: T1 and T2: the FLAIR range (prior).
EDEMA_BORDER_WEIGHT: dict[str, tuple[float, float]] = {"FLAIR": (0.35, 0.60), "T1c": (0.0, 0.14),
                                                       "T1": (0.35, 0.60), "T2": (0.35, 0.60)}

#: Depth (mm) over which the edema gradient rises (the "deep" edema of :data:`EDEMA_BORDER_WEIGHT`).
EDEMA_GRADIENT_MM = 4.0

#: Voxel-level heterogeneity of a whole tumour: SD inside the whole tumour over its mean (above the offset),
#: ``(low, high)`` per channel kind, drawn per case; the hidden sub-structure's own spread counts towards it.
#: FLAIR and T1: the 10 BraTS 2018 cases in ``shared/data/brats2018`` (raw intensities, ``GT_W``), at 1 mm FLAIR
#: 0.201 median (0.123-0.245), T1 0.145 (0.083-0.202); at 4 mm FLAIR 0.194 (0.123-0.247), T1 0.141 (0.083-0.198).
#: T1c: the 6 BRATS 2013 cases above the offset, 0.35 median (middle 4 of 6: 0.24-0.42). T2 and unknown kinds:
#: the FLAIR range.
LESION_HETEROGENEITY: dict[str, tuple[float, float]] = {"FLAIR": (0.123, 0.245), "T1": (0.083, 0.202),
                                                        "T1c": (0.24, 0.42), "T2": (0.123, 0.245)}

#: Correlation scale (Gaussian sigma, mm) of the label-to-image tissue texture.
TISSUE_TEXTURE_MM = 3.0


def intensity_offset(values: np.ndarray) -> float:
    """The zero point of intensity ratios: 0 for non-negative images, else the 0.5th percentile of ``values`` (the
    brain's lowest intensities; z-scored images such as BRATS 2013 go down to about -4)."""
    values = np.asarray(values)
    if values.size == 0:
        return 0.0
    low = float(np.percentile(values, 0.5))
    return low if float(values.min()) < 0 and low < 0 else 0.0


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
        ratios: MR: channel -> (low, high) lesion/normal-brain median ratio (above the offset).
        hu_range: CT: (low, high) HU of the lesion.
        fitted_on: number of real labelled cases the ratios come from (0 = prior).
        role_ratios: MR with a label table: role -> channel -> (low, high) ratio of that sub-region (fitted where
            real cases have the role; priors by :func:`~SyntheticImagingLib.channel_names.channel_kind` else).
        role_texture: MR: role -> channel -> spread (std) of the sub-region relative to the normal-brain level
            above the offset.
    """

    modality: Modality
    ratios: Mapping[str, tuple[float, float]] = dataclasses.field(default_factory=dict)
    hu_range: tuple[float, float] = HEMORRHAGE_HU_BY_AGE["acute"]
    fitted_on: int = 0
    role_ratios: Mapping[str, Mapping[str, tuple[float, float]]] = dataclasses.field(default_factory=dict)
    role_texture: Mapping[str, Mapping[str, float]] = dataclasses.field(default_factory=dict)

    @classmethod
    def fit(cls, cases: Sequence[Case], brains: Sequence[np.ndarray], *, hemorrhage_age: str = "acute",
            roles: LabelRoles | None = None) -> LesionIntensityModel:
        """Fit MR ratios on labelled cases (10th-90th percentile of per-case ratios); CT uses the age model.

        Args:
            cases: real cases.
            brains: their brain masks.
            hemorrhage_age: CT blood age (see :data:`HEMORRHAGE_HU_BY_AGE`).
            roles: the task's label roles: MR also fits every sub-region role (``role_ratios``, ``role_texture``).
        """
        if hemorrhage_age not in HEMORRHAGE_HU_BY_AGE:
            raise InputError(f"unknown hemorrhage age {hemorrhage_age!r}", fix=f"use {list(HEMORRHAGE_HU_BY_AGE)}")
        if not cases:
            raise InputError("no reference case to fit lesion intensities on")
        modality = cases[0].modality
        if modality == Modality.CT:
            return cls(Modality.CT, hu_range=HEMORRHAGE_HU_BY_AGE[hemorrhage_age])
        names = list(cases[0].channel_names)
        per_channel: dict[str, list[float]] = {name: [] for name in names}
        role_values = dict(roles.roles) if roles is not None else {}
        per_role: dict[str, dict[str, list[float]]] = {r: {name: [] for name in names} for r in role_values.values()}
        per_role_std: dict[str, dict[str, list[float]]] = {r: {name: [] for name in names}
                                                           for r in role_values.values()}
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
                if name not in per_channel:
                    continue
                offset = intensity_offset(a[brain])
                ref = float(np.median(a[normal])) - offset
                if ref <= 0:
                    continue
                per_channel[name].append((float(np.median(a[lesion])) - offset) / ref)
                for value, role in role_values.items():
                    part = case.label == value
                    if part.sum() >= 5:
                        per_role[role][name].append((float(np.median(a[part])) - offset) / ref)
                        per_role_std[role][name].append(float(np.std(a[part])) / ref)
        ratios = {}
        for name, values in per_channel.items():
            if len(values) >= 2:
                ratios[name] = (float(np.percentile(values, 10)), float(np.percentile(values, 90)))
            else:
                ratios[name] = MR_TUMOR_PRIOR.get(name, (1.3, 2.0))
        role_ratios: dict[str, dict[str, tuple[float, float]]] = {}
        role_texture: dict[str, dict[str, float]] = {}
        if len(role_values) > 1:  # one whole-tumour label: the channel ratios above are that role's
            for role in role_values.values():
                role_ratios[role], role_texture[role] = {}, {}
                for name in names:
                    values = per_role[role][name]
                    if len(values) >= 2:
                        role_ratios[role][name] = (float(np.percentile(values, 10)),
                                                   float(np.percentile(values, 90)))
                        role_texture[role][name] = float(np.median(per_role_std[role][name]))
                    else:
                        kind = channel_kind(name) or name
                        role_ratios[role][name] = MR_SUBREGION_PRIOR.get(role, {}).get(
                            kind, ratios.get(name, (1.3, 2.0)))
        return cls(Modality.MR, ratios=ratios, fitted_on=n, role_ratios=role_ratios, role_texture=role_texture)

    def draw(self, rng: np.random.Generator, channel: str, normal_median: float, *, offset: float = 0.0,
             role: str | None = None) -> float:
        """One lesion target intensity for ``channel`` (MR: relative to the normal-brain median above ``offset``;
        CT: HU), of sub-region ``role`` where the model knows it."""
        if self.modality == Modality.CT:
            return float(rng.uniform(*self.hu_range))
        pair = self.role_ratios.get(role, {}).get(channel) if role is not None else None
        if pair is None and role is not None and role in MR_SUBREGION_PRIOR and len(self.role_ratios):
            pair = MR_SUBREGION_PRIOR[role].get(channel_kind(channel) or channel)
        low, high = pair or self.ratios.get(channel, MR_TUMOR_PRIOR.get(channel, (1.3, 2.0)))
        return offset + float(rng.uniform(low, high)) * (normal_median - offset)

    def texture(self, channel: str, role: str | None) -> float | None:
        """The fitted spread of ``role`` on ``channel`` relative to the normal-brain level, or None."""
        if role is None:
            return None
        return self.role_texture.get(role, {}).get(channel)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        d: dict[str, Any] = {"modality": self.modality.value,
                             "ratios": {k: list(v) for k, v in self.ratios.items()},
                             "hu_range": list(self.hu_range), "fitted_on": self.fitted_on}
        if self.role_ratios:
            d["role_ratios"] = {r: {c: list(v) for c, v in per.items()} for r, per in self.role_ratios.items()}
            d["role_texture"] = {r: dict(per) for r, per in self.role_texture.items()}
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LesionIntensityModel:
        """Inverse of :meth:`to_dict`."""
        return cls(Modality(d["modality"]), {k: tuple(v) for k, v in d.get("ratios", {}).items()},
                   tuple(d.get("hu_range", HEMORRHAGE_HU_BY_AGE["acute"])), int(d.get("fitted_on", 0)),
                   {r: {c: tuple(v) for c, v in per.items()} for r, per in d.get("role_ratios", {}).items()},
                   {r: {c: float(v) for c, v in per.items()} for r, per in d.get("role_texture", {}).items()})


#: Roles painted as edema (between normal tissue and tumour on MR; hypodense around blood on CT).
EDEMA_ROLES = (EDEMA, PERIHEMATOMAL_EDEMA)
