"""Head-CT appearance of a synthetic case: scanner noise, normal-tissue contrast and clot heterogeneity.

The head-CT template (Rorden's scct) is a smooth average of many heads: it has almost no noise (about 0.5 HU
inside the brain) and an acute bleed painted at one HU value had a 5th-95th percentile spread of about 2.4 HU.
A single real head CT carries scanner noise and a heterogeneous clot. This module adds both, randomised per case
and per lesion with a seeded :class:`numpy.random.Generator` (same seed, same image).

Numbers and sources (values are typical, not exact; each varies with scanner, dose, kernel and reconstruction):

* Scanner noise. Quantum noise of filtered back projection (FBP) scales as ``sigma^2 ~ 1 / (dose * w^3 * h)``
  (pixel width ``w``, slice thickness ``h``): Brooks & Di Chiro, Med Phys 1976;3:237-40. Hence
  ``sigma(h) = sigma_5mm * sqrt(5 mm / h)``. ``sigma_5mm`` is drawn in :data:`NOISE_HU_AT_5MM` (3-5 HU), the usual
  brain-ROI SD of a routine non-contrast head CT at 5 mm; the ACR CT Accreditation Program requires a
  contrast-to-noise ratio > 1.0 for the adult head protocol on the 6 HU rods of the ACR phantom (module 2), i.e.
  noise below about 6 HU at the site's clinical slice thickness, which is consistent. Uncertainty: +-1-2 HU
  (dose, patient size, kernel; iterative reconstruction lowers it). In-plane pixel size is not modelled.
* Noise texture. The FBP noise power spectrum (NPS) rises from zero like the ramp filter and is cut by the
  reconstruction kernel: ``NPS(f) ~ f * exp(-(f / f_c)^2)`` in the axial plane, peaking at ``f_c / sqrt(2)``,
  drawn in :data:`NPS_PEAK_PER_MM` (0.2-0.35 cycles/mm, soft-tissue head kernels; Boedeker, Cooper & McNitt-Gray,
  Phys Med Biol 2007;52:4027-46; ICRU Report 87, 2012). The noise autocorrelation then falls to half within about
  0.5-0.8 mm (autocorrelation at 0.5 mm: 0.74 / 0.54 / 0.38 for peaks 0.2 / 0.28 / 0.35 per mm); on a 2 mm grid
  neighbours are slightly anti-correlated (about -0.1: the ramp leaves no power at low frequency). Along z, a
  Gaussian slice sensitivity profile with FWHM = slice thickness (correlation about 0.3 between adjacent
  contiguous slices).
* Noise is only added where the background is noise-free: the background's own noise is estimated inside normal
  brain (:func:`~.intensity.estimate_noise_sigma`); at or above half the target (a real CT) nothing is added,
  otherwise noise tops it up to the target (``sqrt(target^2 - own^2)``).
* Normal tissue contrast: grey matter 35-40 HU, white matter 25-30 HU (textbook values, e.g. Hsieh, Computed
  Tomography, SPIE 2009). The template already shows it (2-means of parenchyma 24 / 34 HU); a noise-free
  background whose parenchyma contrast is below :data:`MIN_GM_WM_CONTRAST_HU` has it stretched to a drawn 8-12 HU
  difference (a real, noisy CT is never changed).
* Acute clot (50-90 HU, :data:`~.intensity.HEMORRHAGE_HU_BY_AGE`; Parizel et al., Eur Radiol 2001;11:1770-83;
  Kidwell & Wintermark, Lancet Neurol 2008;7:256-67) is not uniform: irregular internal density (Barras et al.,
  Stroke 2009;40:1325-31, density heterogeneity predicts growth): a smooth random field of SD
  :data:`CLOT_TEXTURE_HU` (2-5 HU, 2-4 mm grain); clot retraction concentrates haemoglobin in the centre while
  serum is extruded at the rim (Parizel 2001): a core :data:`RETRACTION_CORE_HU` (5-15 HU) denser than the rim.
* Swirl sign (Selariu et al., BMC Neurol 2012;12:109): regions hypodense or isodense to brain inside the
  hyperdense clot (unclotted, actively bleeding blood), in about 30 % of acute ICH: with probability
  :data:`SWIRL_PROBABILITY` 5-25 % of the clot takes brain level -5..+5 HU.
* Hematocrit (fluid-fluid) level (Pfleger et al., AJNR 1994;15:217-23: fluid-blood levels in acute ICH point to
  coagulopathy; also seen in subacute and chronic subdural blood): cells sediment into the dependent part of
  the collection with a horizontal level. Dependent layer :data:`SEDIMENT_HU` (60-85 HU), supernatant serum
  :data:`SERUM_HU` (20-35 HU), dependent share 30-60 % of the clot; probability :data:`FLUID_LEVEL_PROBABILITY`
  by age. "Dependent" is the gravity direction of a supine patient in physical space, +y of LPS (posterior),
  taken through the case geometry (direction matrix), not the array axis.

The spread that results inside a bleed (:func:`SyntheticImagingLib.checks.lesion_texture.texture_stats`):
scanner noise alone gives a 5th-95th percentile spread of 3.29 sigma, 10-16 HU at 5 mm and about 21 HU at the
bundled template's 2 mm; clot heterogeneity adds to it. The target range used by the tests, >10 HU (the noise
floor at 5 mm with the lowest typical noise), is derived from these numbers: no real labelled hemorrhage CT is
available here to measure it on.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import ndimage

from ..cases import Case, Geometry
from ..errors import InputError
from .intensity import HEMORRHAGE_HU_BY_AGE, estimate_noise_sigma, smooth_texture

__all__ = ["CTAppearance", "NOISE_HU_AT_5MM", "NPS_PEAK_PER_MM", "MIN_GM_WM_CONTRAST_HU", "GM_WM_CONTRAST_HU",
           "CLOT_TEXTURE_HU", "RETRACTION_CORE_HU", "SWIRL_PROBABILITY", "SWIRL_FRACTION", "SEDIMENT_HU",
           "SERUM_HU", "FLUID_LEVEL_PROBABILITY", "SUPINE_GRAVITY_LPS", "scanner_noise", "noise_sigma_for",
           "axial_axis", "gm_wm_contrast", "HU_MIN", "HU_MAX"]

#: Brain noise SD (HU) of a routine head CT at 5 mm slices (drawn per case).
NOISE_HU_AT_5MM: tuple[float, float] = (3.0, 5.0)
#: Peak frequency (cycles/mm) of the axial noise power spectrum (drawn per case).
NPS_PEAK_PER_MM: tuple[float, float] = (0.2, 0.35)
#: Below this GM-WM difference (HU) the background is taken to lack grey/white contrast.
MIN_GM_WM_CONTRAST_HU = 5.0
#: GM-WM difference given to such a background (GM 35-40 HU, WM 25-30 HU).
GM_WM_CONTRAST_HU: tuple[float, float] = (8.0, 12.0)
#: SD (HU) of the clot's irregular internal density.
CLOT_TEXTURE_HU: tuple[float, float] = (2.0, 5.0)
#: How much denser (HU) the retracted clot core is than its rim.
RETRACTION_CORE_HU: tuple[float, float] = (5.0, 15.0)
#: Share of acute bleeds with a swirl sign, and the share of the clot it takes.
SWIRL_PROBABILITY = 0.3
SWIRL_FRACTION: tuple[float, float] = (0.05, 0.25)
#: Hematocrit level: dependent (cells) and supernatant (serum) HU.
SEDIMENT_HU: tuple[float, float] = (60.0, 85.0)
SERUM_HU: tuple[float, float] = (20.0, 35.0)
#: Probability of a fluid-fluid level by blood age (acute: anticoagulated patients).
FLUID_LEVEL_PROBABILITY: dict[str, float] = {"acute": 0.05, "subacute": 0.3, "chronic": 0.1}
#: Gravity of a supine patient in LPS: posterior (+y).
SUPINE_GRAVITY_LPS: tuple[float, float, float] = (0.0, 1.0, 0.0)
#: The stored HU range of CT.
HU_MIN, HU_MAX = -1024.0, 3071.0

#: Subtypes whose clot gets internal structure (subarachnoid blood is a thin film: partial volume dominates).
_CLOT_SUBTYPES = ("intraparenchymal", "subdural", "epidural", "intraventricular")
_SWIRL_SUBTYPES = ("intraparenchymal", "subdural", "epidural")
_LEVEL_SUBTYPES = ("intraparenchymal", "subdural", "intraventricular")


def axial_axis(geometry: Geometry) -> int:
    """The array axis (0, 1 or 2 in ``[z, y, x]`` order) closest to the patient's superior-inferior direction.

    Args:
        geometry: the case geometry.
    """
    index_axis = int(np.argmax(np.abs(geometry.direction_matrix[2, :])))  # columns are the x, y, z index axes
    return 2 - index_axis


def noise_sigma_for(slice_thickness_mm: float, sigma_at_5mm: float) -> float:
    """Noise SD at ``slice_thickness_mm`` from the SD at 5 mm (``sigma ~ 1 / sqrt(h)``, Brooks & Di Chiro 1976).

    Args:
        slice_thickness_mm: slice thickness in mm.
        sigma_at_5mm: noise SD (HU) at 5 mm.
    """
    if not slice_thickness_mm > 0:
        raise InputError(f"slice thickness must be positive, got {slice_thickness_mm}",
                         fix="give the slice thickness in mm (> 0)")
    return float(sigma_at_5mm * math.sqrt(5.0 / slice_thickness_mm))


def scanner_noise(shape: Sequence[int], geometry: Geometry, sigma: float, rng: np.random.Generator, *,
                  nps_peak_per_mm: float = 0.28) -> np.ndarray:
    """Zero-mean FBP-like correlated Gaussian noise of SD ``sigma`` (see the module docstring).

    Args:
        shape: array shape ``[z, y, x]``.
        geometry: the case geometry (spacing; the slice axis is the one closest to the patient's z).
        sigma: noise SD in HU.
        rng: random generator.
        nps_peak_per_mm: peak frequency of the axial noise power spectrum (cycles/mm).
    """
    shape = tuple(int(s) for s in shape)
    spacing = geometry.spacing_zyx
    slice_axis = axial_axis(geometry)
    white = rng.standard_normal(shape).astype(np.float32)
    freqs = [np.fft.fftfreq(n, d=s) for n, s in zip(shape, spacing)]
    freqs[-1] = np.fft.rfftfreq(shape[-1], d=spacing[-1])
    grids = np.meshgrid(*freqs, indexing="ij", sparse=True)
    in_plane = [g for a, g in enumerate(grids) if a != slice_axis]
    f_xy = np.sqrt(in_plane[0] ** 2 + in_plane[1] ** 2)
    f_c = nps_peak_per_mm * math.sqrt(2.0)
    nps = f_xy * np.exp(-(f_xy / f_c) ** 2)
    # slice sensitivity profile: Gaussian, FWHM = slice thickness (= the slice spacing)
    ssp_sigma = spacing[slice_axis] / (2.0 * math.sqrt(2.0 * math.log(2.0)))
    nps = nps * np.exp(-((2 * math.pi * grids[slice_axis] * ssp_sigma) ** 2))
    field = np.fft.irfftn(np.fft.rfftn(white) * np.sqrt(nps), s=shape, axes=(0, 1, 2)).astype(np.float32)
    std = float(field.std())
    return field * (sigma / std) if std > 0 else field


def gm_wm_contrast(image: np.ndarray, parenchyma: np.ndarray, spacing_zyx: Sequence[float]) -> tuple[float, float]:
    """Grey/white matter contrast of a CT: (difference, threshold) of a 2-means split of smoothed parenchyma HU.

    Args:
        image: CT in HU.
        parenchyma: brain tissue voxels (no CSF, no lesion).
        spacing_zyx: voxel spacing.
    """
    values = image[parenchyma]
    if values.size < 50:
        return 0.0, float(np.median(values)) if values.size else 0.0
    smooth = ndimage.gaussian_filter(image.astype(np.float32), [1.0 / s for s in spacing_zyx])[parenchyma]
    lo, hi = np.percentile(smooth, 25), np.percentile(smooth, 75)
    for _ in range(20):
        mid = 0.5 * (lo + hi)
        low, high = smooth[smooth <= mid], smooth[smooth > mid]
        if low.size == 0 or high.size == 0:
            return 0.0, float(mid)
        new_lo, new_hi = float(low.mean()), float(high.mean())
        if abs(new_lo - lo) < 1e-3 and abs(new_hi - hi) < 1e-3:
            break
        lo, hi = new_lo, new_hi
    return float(hi - lo), float(0.5 * (lo + hi))


@dataclasses.dataclass
class CTAppearance:
    """The CT appearance of one synthetic case (state: its random generator and what it drew).

    Args:
        rng: the case's own random generator (seeded: same seed, same image).
        age: blood age of the hemorrhage model (``acute``, ``subacute``, ``chronic``).
        sigma_at_5mm: brain noise SD (HU) at 5 mm slices; None draws it in :data:`NOISE_HU_AT_5MM`.
        slice_thickness_mm: None: the spacing of the axis closest to the patient's z.
        gravity_lps: the dependent direction in LPS (supine: posterior, +y).
        swirl_probability: None: :data:`SWIRL_PROBABILITY` (acute blood only).
        fluid_level_probability: None: :data:`FLUID_LEVEL_PROBABILITY` of the age.
    """

    rng: np.random.Generator
    age: str = "acute"
    sigma_at_5mm: float | None = None
    slice_thickness_mm: float | None = None
    gravity_lps: tuple[float, float, float] = SUPINE_GRAVITY_LPS
    swirl_probability: float | None = None
    fluid_level_probability: float | None = None
    record: dict[str, Any] = dataclasses.field(default_factory=lambda: {"lesions": []})

    def __post_init__(self) -> None:
        if self.age not in HEMORRHAGE_HU_BY_AGE:
            raise InputError(f"unknown hemorrhage age {self.age!r}", fix=f"use {list(HEMORRHAGE_HU_BY_AGE)}")

    # -- clot ------------------------------------------------------------------------------------------------

    def clot_target(self, target: np.ndarray, lesion: np.ndarray, label: np.ndarray,
                    label_names: Mapping[int, str], geometry: Geometry, brain_level: float) -> np.ndarray:
        """``target`` (the lesion HU map) with clot heterogeneity inside each lesion of ``lesion``.

        Args:
            target: HU the lesion is painted at (whole grid; only ``lesion`` voxels change).
            lesion: voxels of the new blood (edema excluded).
            label: the label map (lesion values and their names decide the subtype).
            label_names: value -> name.
            geometry: the case geometry (spacing; gravity through its direction matrix).
            brain_level: median HU of the normal brain (swirl regions are iso/hypodense to it).
        """
        out = target.astype(np.float32, copy=True)
        spacing = geometry.spacing_zyx
        for value, name in sorted(label_names.items()):
            subtype = next((s for s in _CLOT_SUBTYPES if s in name), None)
            # one clot per label value: the parts of a fragmented crescent, or two bleeds of one subtype, share
            # the patient's coagulation state (fluid levels) and the draws
            mask = lesion & (label == value)
            if not mask.any():
                continue
            info: dict[str, Any] = {"label_value": int(value), "subtype": subtype or name, "voxels": int(mask.sum())}
            if subtype is not None and mask.sum() >= 8:
                self._one_clot(out, mask, subtype, geometry, spacing, brain_level, info)
            self.record["lesions"].append(info)
        return out

    def _one_clot(self, out: np.ndarray, mask: np.ndarray, subtype: str, geometry: Geometry,
                  spacing: Sequence[float], brain_level: float, info: dict[str, Any]) -> None:
        rng = self.rng
        idx = np.nonzero(mask)
        box = tuple(slice(max(int(i.min()) - 3, 0), int(i.max()) + 4) for i in idx)
        sub = mask[box]
        level = out[box][sub]
        acute = self.age == "acute"
        # irregular internal density
        tex_sd = float(rng.uniform(*CLOT_TEXTURE_HU)) * (1.0 if acute else 0.5)
        field = smooth_texture(sub.shape, spacing, rng, scale_mm=float(rng.uniform(2.0, 4.0)))
        level = level + tex_sd * field[sub]
        info["texture_hu"] = round(tex_sd, 2)
        if acute:  # retraction: denser core, serum-rich rim
            depth = ndimage.distance_transform_edt(sub, sampling=spacing)[sub]
            rel = depth / max(float(depth.max()), 1e-6)
            core = float(rng.uniform(*RETRACTION_CORE_HU))
            level = level + core * (rel - float(rel.mean()))
            info["core_minus_rim_hu"] = round(core, 2)
            p_swirl = SWIRL_PROBABILITY if self.swirl_probability is None else self.swirl_probability
            if subtype in _SWIRL_SUBTYPES and rng.random() < p_swirl:
                share = float(rng.uniform(*SWIRL_FRACTION))
                swirl_field = smooth_texture(sub.shape, spacing, rng, scale_mm=float(rng.uniform(2.0, 4.0)))
                inner = swirl_field[sub] + 2.0 * (rel - 0.5)  # swirls sit inside, rarely at the rim
                cut = np.quantile(inner, 1.0 - share)
                weight = np.clip((inner - cut) / 0.3 + 0.5, 0.0, 1.0)  # soft swirl edges
                swirl_hu = brain_level + float(rng.uniform(-5.0, 5.0))
                level = (1 - weight) * level + weight * (swirl_hu + 0.5 * tex_sd * field[sub])
                info["swirl"] = {"fraction": round(share, 3), "hu": round(swirl_hu, 1)}
        p_level = (FLUID_LEVEL_PROBABILITY[self.age] if self.fluid_level_probability is None
                   else self.fluid_level_probability)
        if subtype in _LEVEL_SUBTYPES and rng.random() < p_level:
            level = self._fluid_level(level, sub, box, geometry, info)
        out[box][sub] = level

    def _fluid_level(self, level: np.ndarray, sub: np.ndarray, box: tuple[slice, ...], geometry: Geometry,
                     info: dict[str, Any]) -> np.ndarray:
        rng = self.rng
        offset = np.array([s.start for s in box], dtype=float)
        points = geometry.index_to_physical(np.argwhere(sub) + offset)
        gravity = np.asarray(self.gravity_lps, dtype=float)
        gravity = gravity / max(float(np.linalg.norm(gravity)), 1e-9)
        height = points @ gravity  # larger = more dependent
        share = float(rng.uniform(0.3, 0.6))
        cut = float(np.quantile(height, 1.0 - share))
        weight = np.clip((height - cut) / 1.0 + 0.5, 0.0, 1.0)  # 1 mm partial-volume interface
        sediment, serum = float(rng.uniform(*SEDIMENT_HU)), float(rng.uniform(*SERUM_HU))
        residual = level - float(level.mean())  # keep a little of the internal texture in both layers
        info["fluid_level"] = {"dependent_share": round(share, 3), "sediment_hu": round(sediment, 1),
                               "serum_hu": round(serum, 1), "gravity_lps": [float(g) for g in gravity]}
        return (weight * sediment + (1 - weight) * serum + 0.3 * residual).astype(np.float32)

    # -- background and noise --------------------------------------------------------------------------------

    def finish_channels(self, channels: Mapping[str, np.ndarray], brain: np.ndarray, lesion: np.ndarray,
                        geometry: Geometry) -> dict[str, np.ndarray]:
        """Channels with grey/white contrast (where missing) and scanner noise (where noise-free), in HU range.

        Args:
            channels: CT channels in HU.
            brain: brain mask.
            lesion: lesion voxels (all labels); kept out of the normal-brain estimates and the contrast change.
            geometry: the case geometry.
        """
        spacing = geometry.spacing_zyx
        normal = brain & ~ndimage.binary_dilation(lesion, iterations=2) if lesion.any() else brain
        thickness = self.slice_thickness_mm or spacing[axial_axis(geometry)]
        sigma_5 = self.sigma_at_5mm if self.sigma_at_5mm is not None else float(self.rng.uniform(*NOISE_HU_AT_5MM))
        target = noise_sigma_for(thickness, sigma_5)
        peak = float(self.rng.uniform(*NPS_PEAK_PER_MM))
        out = {}
        for name, image in channels.items():
            image = image.astype(np.float32, copy=True)
            own = estimate_noise_sigma(image, normal) if normal.any() else 0.0
            noise_free = own < 0.5 * target  # an average or drawn background; a real CT is left as it is
            parenchyma = normal & (image > 15.0) & (image < 60.0)
            contrast, mid = gm_wm_contrast(image, parenchyma, spacing)
            entry: dict[str, Any] = {"gm_wm_contrast_hu": round(contrast, 2)}
            if noise_free and 0.5 < contrast < MIN_GM_WM_CONTRAST_HU:
                wanted = float(self.rng.uniform(*GM_WM_CONTRAST_HU))
                gain = min(wanted / contrast, 3.0)
                smooth = ndimage.gaussian_filter(image, [1.0 / s for s in spacing])
                image[parenchyma] += (gain - 1.0) * (smooth[parenchyma] - mid)
                entry["gm_wm_contrast_gain"] = round(gain, 2)
            add = math.sqrt(max(target ** 2 - own ** 2, 0.0)) if noise_free else 0.0
            entry.update({"slice_thickness_mm": round(float(thickness), 3), "target_noise_hu": round(target, 2),
                          "background_noise_hu": round(own, 2), "added_noise_hu": round(add, 2),
                          "nps_peak_per_mm": round(peak, 3)})
            if add > 0:
                noise = scanner_noise(image.shape, geometry, add, self.rng, nps_peak_per_mm=peak)
                outside = ~ndimage.binary_dilation(brain, iterations=2)
                if outside.any() and float(np.ptp(image[outside])) == 0.0:
                    noise[~brain] = 0.0  # skull-stripped volume: keep its constant background
                image = image + noise
            out[name] = np.clip(image, HU_MIN, HU_MAX).astype(np.float32)
            self.record.setdefault("channels", {})[name] = entry
        return out

    def finish(self, case: Case) -> Case:
        """:meth:`finish_channels` on a case (brain mask and label from the case), the record in its metadata.

        Args:
            case: a synthetic CT case (brain mask set).
        """
        brain = case.brain_mask if case.brain_mask is not None else np.ones(case.shape, bool)
        lesion = case.label > 0 if case.label is not None else np.zeros(case.shape, bool)
        channels = self.finish_channels(case.channels, brain, lesion, case.geometry)
        return case.replace(channels=channels, metadata={**case.metadata, "ct_appearance": self.record})
