"""Lesion copy-paste: carve a real lesion out of one real case and paste it into another (training-free).

Two published augmentations in one family:

* **CarveMix** (Zhang et al., MICCAI 2021, "CarveMix: a simple data augmentation method for brain lesion
  segmentation"): a region of interest is carved around a real lesion with a size drawn from its signed distance
  map (the lesion grown by ``lambda * r``, ``r`` its largest inner distance) and replaces the same voxels of a
  second real case; the label is replaced inside that region.
* **TumorCP** (Yang et al., MICCAI 2021, "TumorCP: a simple but effective object-level data augmentation for tumor
  segmentation"): the copied tumour goes through object-level transforms (random rotation, scaling, elastic
  deformation, here also a left-right mirror) and is placed at a new position of the target organ, with intensity
  transforms.

For each synthetic case: a donor (a real case with a lesion) and a target background (another real case when there
are two or more) are drawn; the donor's lesion with a CarveMix margin is rotated, scaled (to the controls' volume
range when controls are given, else within ``scale_range``), mirrored left-right in physical space and deformed,
placed where the whole lesion lies inside the target's brain (away from the target's own lesion when it is kept),
mapped per channel onto the target's normal-brain median and interquartile range (MR; CT stays in HU) and blended
with an alpha that is 1 on the lesion and in the carved margin and falls to 0 over ``feather_mm`` at the margin's
border; then the target brain is pushed aside (mass effect, as in :mod:`.lesion_insertion`). By default the
target's own lesions are painted over with the surrounding tissue first (``background_lesions="fill"``, see
:mod:`.lesion_fill`), so the label is the pasted lesion alone; with ``"keep"`` (CarveMix and TumorCP as published)
it is the target's own label with the pasted lesion added. The pasted lesion is written in the donor's values (the
user's label table): the donor's sub-region structure (e.g. BraTS nesting) is copied whole. Metadata names the
target (``background``), the donor (``donor``) and both (``source_case_ids``), so a k-fold utility estimate keeps a
test patient out of training.

**Privacy cost.** Every synthetic case *is* a real patient: the background is a training patient's scan (their own
lesion kept, or painted over, their anatomy either way), and the pasted tissue is another training patient's tumour
(and some brain around it). This family therefore offers no anonymity at all: the privacy check's aligned-copy
detection names the background patient of its cases (as for ``lesion-insertion`` on training backgrounds), the
saved generator folder holds the real cases, and sets made with it must be handled like the real data. Use it for
augmentation inside the institution that owns the data, not for sharing.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage, signal

from ..anatomy import estimate_midline_x
from ..cases import Case, LabelTable, LesionKind, Modality, merge_label_maps
from ..errors import InputError
from ..io.datasets import load_dataset, write_dataset
from ..label_roles import EDEMA, LabelRoles
from ..lesions.controls import LesionControls
from ..lesions.mass_effect import apply_mass_effect, mass_effect_field
from ..lesions.shapes import hemisphere, pick_voxel, smooth_noise
from ..lesions.structure import INNER_ROLES
from ..lesions.tumor_subregions import CORE_ROLES
from ..progress import ProgressCallback, Reporter, as_reporter
from ..tasks import TaskPreset
from .base import Generator, register_generator
from .config import CopyPasteConfig
from .intensity import intensity_offset
from .lesion_fill import background
from .lesion_insertion import PUSHING
from .references import Reference, prepare_reference

__all__ = ["CopyPasteGenerator", "CopyPasteConfig", "Pasted", "carve_and_transform", "match_intensities",
           "blend_alpha", "keep_nesting"]

#: Tries with a smaller scale when a transformed lesion fits nowhere in the target's brain.
_SHRINK_TRIES = 4
_SHRINK = 0.85


class Pasted:
    """A donor lesion with its carved margin, transformed onto a box of the target's grid.

    Args:
        channels: donor channels sampled on the box (name -> float32 array).
        label: donor label values on the box (0 outside the lesion).
        lesion: the lesion on the box (``label > 0``).
        donor_brain: the donor's brain mask on the box.
        alpha: blend weight on the box (1 on the lesion and in the carved margin, falling to 0 at its border).
        half: the box's half size per axis (voxels): box voxel ``j`` lies at target voxel ``centre + j - half``.
        info: what was drawn (scale, rotation, flip, margin).
    """

    def __init__(self, channels: dict[str, np.ndarray], label: np.ndarray, donor_brain: np.ndarray,
                 alpha: np.ndarray, half: np.ndarray, info: dict[str, Any]) -> None:
        self.channels = channels
        self.label = label
        self.lesion = label > 0
        self.donor_brain = donor_brain
        self.alpha = alpha
        self.half = half
        self.info = info


def _rotation(rng: np.random.Generator, max_deg: float) -> tuple[np.ndarray, list[float]]:
    """A rotation about the physical x, y and z axes by angles drawn in ``[-max_deg, max_deg]``."""
    angles = [float(rng.uniform(-max_deg, max_deg)) for _ in range(3)]
    out = np.eye(3)
    for axis, deg in enumerate(angles):
        a = math.radians(deg)
        c, s = math.cos(a), math.sin(a)
        i, j = [k for k in range(3) if k != axis]
        r = np.eye(3)
        r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
        out = r @ out
    return out, angles


def blend_alpha(distance_mm: np.ndarray, lesion: np.ndarray, *, margin_mm: float, feather_mm: float) -> np.ndarray:
    """CarveMix region with a feathered border: 1 on the lesion and within ``margin_mm`` of it, then a smooth
    fall to 0 over ``feather_mm`` (a hard cut when 0).

    Args:
        distance_mm: distance (mm) of each voxel to the lesion (0 on it).
        lesion: the lesion mask (alpha is 1 there whatever the margin).
        margin_mm: CarveMix margin (``lambda * r``).
        feather_mm: blend width at the region's border.
    """
    if feather_mm > 0:
        t = np.clip(1.0 - (distance_mm - margin_mm) / feather_mm, 0.0, 1.0)
        alpha = t * t * (3.0 - 2.0 * t)
    else:
        alpha = (distance_mm <= margin_mm).astype(np.float64)
    return np.where(lesion, 1.0, alpha).astype(np.float32)


def _nesting_breaks(label: np.ndarray, roles: LabelRoles | None) -> tuple[np.ndarray, int | None]:
    """Voxels that break the BraTS nesting (core beside background, or inner beside background without edema)
    and the value that would mend them (None: nothing to mend)."""
    none = np.zeros(label.shape, bool)
    if roles is None or roles.kind != LesionKind.TUMOR or len(roles.roles) < 2:
        return none, None
    background = np.pad(~np.isin(label, list(roles.roles)), 1, constant_values=True)
    touching = ndimage.binary_dilation(background, structure=ndimage.generate_binary_structure(3, 1))[
        1:-1, 1:-1, 1:-1]
    if roles.has(EDEMA):
        return np.isin(label, roles.values_of(*CORE_ROLES)) & touching, roles.value_of(EDEMA)
    outer = [v for v, r in roles.roles.items() if r not in INNER_ROLES]
    if not outer:
        return none, None
    return np.isin(label, roles.values_of(*INNER_ROLES)) & touching, outer[0]


def keep_nesting(label: np.ndarray, roles: LabelRoles | None, *, donor_breaks: np.ndarray | None = None) -> int:
    """Mend the BraTS nesting that nearest-voxel resampling broke, in place; returns the voxels changed.

    A rotated or shrunk edema rim thinner than a voxel of the new grid can open, leaving core voxels beside
    background. Those core voxels take the edema value (tables with edema); without edema, inner voxels
    (necrosis, enhancing) beside background take the table's outer tumour value when it has one. Places where the
    real donor itself breaks the nesting (``donor_breaks``: real annotations often do) are left as they are, so
    the donor's structure is copied, not idealised. Only tumour tables with sub-regions are touched (see
    :func:`~SyntheticImagingLib.lesions.check_tumor_nesting`).

    Args:
        label: label map (the user's values) of the pasted lesion alone.
        roles: the label roles of the task (None: the library's single label, nothing to keep).
        donor_breaks: where the donor breaks the nesting, on ``label``'s grid (None: nowhere).
    """
    bad, fill = _nesting_breaks(label, roles)
    if fill is None:
        return 0
    if donor_breaks is not None:
        bad &= ~donor_breaks
    label[bad] = fill
    return int(bad.sum())


def carve_and_transform(donor: Reference, target: Reference, rng: np.random.Generator, *,
                        config: CopyPasteConfig, scale: float, roles: LabelRoles | None = None) -> Pasted:
    """The donor's lesion and a CarveMix margin, rotated, scaled, mirrored and deformed onto the target's grid.

    The transform is done in physical space (donor and target may have any spacing, origin and direction): a
    target point ``p`` in the box shows the donor at ``c_d + F R^T (p - c + u(p)) / s`` (``c_d`` the donor
    lesion's centroid, ``c`` the box centre, ``F`` the left-right mirror along physical x, ``R`` the rotation,
    ``s`` the scale, ``u`` a smooth displacement). Channels are sampled linearly, label and brain mask by nearest
    voxel.

    Args:
        donor: the donor case (with a lesion) and its brain mask.
        target: the target background (only its grid is used here).
        rng: random generator (rotation, flip, deformation, margin).
        config: the family's settings.
        scale: isotropic scale of the lesion.
        roles: the task's label roles: the BraTS nesting of the donor's sub-regions is kept through the
            resampling (:func:`keep_nesting`); None: the library's single label.
    """
    dcase, tgeo = donor.case, target.case.geometry
    assert dcase.label is not None
    dgeo = dcase.geometry
    lesion_d = dcase.label > 0
    idx = np.argwhere(lesion_d)
    points = dgeo.index_to_physical(idx)
    centroid = points.mean(axis=0)
    radius = float(np.sqrt(((points - centroid) ** 2).sum(axis=1).max())) + max(dgeo.spacing)
    lo = np.maximum(idx.min(axis=0) - 1, 0)
    hi = np.minimum(idx.max(axis=0) + 2, lesion_d.shape)
    crop = lesion_d[tuple(slice(a, b) for a, b in zip(lo, hi))]
    inner_r = float(ndimage.distance_transform_edt(np.pad(crop, 1), sampling=dgeo.spacing_zyx).max())

    rotation, angles = _rotation(rng, config.rotation_deg)
    flipped = bool(rng.random() < config.flip_lr)
    mirror = np.diag([-1.0 if flipped else 1.0, 1.0, 1.0])
    low, high = config.margin_fraction
    lam = float(rng.uniform(low, high))
    margin_mm = lam * inner_r * scale
    reach = scale * radius + margin_mm + config.feather_mm + 3.0 * config.elastic_mm + 2.0 * max(tgeo.spacing)
    half = np.array([int(math.ceil(reach / s)) for s in tgeo.spacing_zyx])
    shape = tuple(int(2 * h + 1) for h in half)

    to_phys = (tgeo.direction_matrix * np.asarray(tgeo.spacing)[None, :])[:, ::-1]  # zyx index step -> xyz mm
    to_d_index = np.linalg.inv(dgeo.direction_matrix * np.asarray(dgeo.spacing)[None, :])[::-1, :]  # xyz -> zyx
    linear = to_d_index @ mirror @ rotation.T / scale  # target xyz mm offset -> donor index offset
    matrix = linear @ to_phys
    offset = to_d_index @ (centroid - np.asarray(dgeo.origin)) - matrix @ half.astype(float)
    ranges = [np.arange(n, dtype=np.float32).reshape([-1 if a == k else 1 for a in range(3)])
              for k, n in enumerate(shape)]
    coords = [sum(float(matrix[k, a]) * ranges[a] for a in range(3)) + float(offset[k]) for k in range(3)]
    if config.elastic_mm > 0:
        sigma = max(5.0, 0.5 * scale * radius)
        u = [config.elastic_mm / math.sqrt(3.0) * smooth_noise(shape, tgeo, sigma, rng) for _ in range(3)]
        coords = [coords[k] + sum(float(linear[k, j]) * u[j] for j in range(3)) for k in range(3)]
    grid = [np.broadcast_to(c, shape) for c in coords]
    label = ndimage.map_coordinates(dcase.label, grid, order=0, mode="constant", cval=0).astype(np.int16)
    if not label.any():  # a lesion thinner than the target's voxels: keep one voxel of it at the centre
        label[tuple(half)] = int(dcase.label[tuple(idx[len(idx) // 2])])
    brain = ndimage.map_coordinates(donor.brain.astype(np.uint8), grid, order=0, mode="constant", cval=0) > 0
    # the donor's own nesting breaks (grown by a voxel: resampling moves them by up to one) are copied as they are
    around = tuple(slice(max(int(a) - 2, 0), int(b) + 2) for a, b in zip(lo, hi))
    crop_breaks, _ = _nesting_breaks(dcase.label[around], roles)
    donor_breaks = None
    if crop_breaks.any():
        crop_breaks = ndimage.binary_dilation(crop_breaks, structure=ndimage.generate_binary_structure(3, 1))
        full = np.zeros(lesion_d.shape, np.uint8)
        full[around] = crop_breaks & (dcase.label[around] > 0)
        donor_breaks = ndimage.map_coordinates(full, grid, order=0, mode="constant", cval=0) > 0
    relabelled = keep_nesting(label, roles, donor_breaks=donor_breaks)
    channels = {name: ndimage.map_coordinates(image, grid, order=1, mode="nearest").astype(np.float32)
                for name, image in dcase.channels.items()}
    lesion = label > 0
    distance = ndimage.distance_transform_edt(~lesion, sampling=tgeo.spacing_zyx)
    alpha = blend_alpha(distance, lesion, margin_mm=margin_mm, feather_mm=config.feather_mm)
    alpha = np.where(lesion, 1.0, alpha * brain).astype(np.float32)  # only the donor's brain is carried along
    info = {"scale": round(scale, 4), "rotation_deg": [round(a, 2) for a in angles], "flipped_lr": flipped,
            "margin_lambda": round(lam, 4), "margin_mm": round(margin_mm, 3), "feather_mm": config.feather_mm,
            "elastic_mm": config.elastic_mm, "nesting_voxels_relabelled": relabelled,
            "donor_centroid_xyz": [round(float(v), 2) for v in centroid]}
    return Pasted(channels, label, brain, alpha, half, info)


def _normal_stats(image: np.ndarray, normal: np.ndarray) -> tuple[float, float]:
    values = image[normal]
    q25, q50, q75 = np.percentile(values, [25, 50, 75])
    return float(q50), float(q75 - q25)


def match_intensities(donor: Reference, target: Reference, pasted: Pasted) -> dict[str, dict[str, float]]:
    """Map the pasted donor channels onto the target's intensities, in place; returns the maps.

    MR: per channel, the donor's normal brain (brain minus lesion) median ``m_d`` and interquartile range ``q_d``
    are mapped onto the target's (``m_t``, ``q_t``): ``v -> m_t + (v - m_d) q_t / q_d``. The map is affine, so it
    holds for z-scored images (negative values, e.g. BRATS 2013) as for non-negative ones; the lesion's contrast
    above the intensity offset (:func:`~.intensity.intensity_offset`) before and after is recorded. CT: none (HU).

    Args:
        donor: the donor case.
        target: the target case.
        pasted: the transformed donor content (its ``channels`` are changed).
    """
    out: dict[str, dict[str, float]] = {}
    dcase, tcase = donor.case, target.case
    if dcase.modality == Modality.CT:
        return out
    # (a filled target has no label: ~False would be -1, an integer index, not an empty mask)
    d_normal = donor.brain & ~(dcase.label > 0 if dcase.label is not None else np.zeros(dcase.shape, bool))
    t_normal = target.brain & ~(tcase.label > 0 if tcase.label is not None else np.zeros(tcase.shape, bool))
    d_normal = d_normal if d_normal.any() else donor.brain
    t_normal = t_normal if t_normal.any() else target.brain
    for name, values in pasted.channels.items():
        if name not in tcase.channels:
            continue
        d_med, d_iqr = _normal_stats(dcase.channels[name], d_normal)
        t_med, t_iqr = _normal_stats(tcase.channels[name], t_normal)
        k = t_iqr / d_iqr if d_iqr > 0 and t_iqr > 0 else 1.0
        d_off = intensity_offset(dcase.channels[name][donor.brain])
        t_off = intensity_offset(tcase.channels[name][target.brain])
        mapped = (t_med + (values - d_med) * k).astype(np.float32)
        entry = {"scale": round(k, 5), "donor_median": round(d_med, 4), "target_median": round(t_med, 4)}
        if pasted.lesion.any() and d_med - d_off != 0 and t_med - t_off != 0:
            entry["lesion_ratio_donor"] = round((float(np.median(values[pasted.lesion])) - d_off) / (d_med - d_off), 4)
            entry["lesion_ratio_pasted"] = round((float(np.median(mapped[pasted.lesion])) - t_off) / (t_med - t_off), 4)
        pasted.channels[name] = mapped
        out[name] = entry
    return out


def _clip_box(centre: np.ndarray, half: np.ndarray, shape: Sequence[int]
              ) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
    """The part of the box centred at ``centre`` that lies in the array: (array slices, box slices)."""
    target, local = [], []
    for c, h, n in zip(centre, half, shape):
        lo, hi = int(c - h), int(c + h + 1)
        target.append(slice(max(lo, 0), min(hi, int(n))))
        local.append(slice(max(lo, 0) - lo, min(hi, int(n)) - lo))
    return tuple(target), tuple(local)


def _padded_hits(mask: np.ndarray, kernel: np.ndarray, half: np.ndarray, *, outside: bool) -> np.ndarray:
    """For each centre voxel ``c``: how many voxels of ``kernel`` (placed with its middle at ``c``) fall on
    ``mask`` (beyond the array counts as ``outside``)."""
    padded = np.pad(mask.astype(np.float32), [(int(h), int(h)) for h in half], constant_values=float(outside))
    return signal.fftconvolve(padded, kernel[::-1, ::-1, ::-1].astype(np.float32), mode="valid")


@register_generator
class CopyPasteGenerator(Generator):
    """Paste real lesions (carved with a margin, transformed) into other real cases (CarveMix + TumorCP).

    Training-free; its cases copy real patients (see the module docstring: no privacy).

    Args:
        task: task preset (or a user's task from :func:`~SyntheticImagingLib.tasks.task_for_data`).
        config: settings (:class:`~.config.CopyPasteConfig`; None: the defaults).
        **settings: single settings by name, over ``config``.
    """

    family = "copy-paste"
    version = "1"
    config_class = CopyPasteConfig
    config: CopyPasteConfig

    def __init__(self, *, task: str | TaskPreset = "brain-tumor-mri", config: CopyPasteConfig | None = None,
                 **settings: Any) -> None:
        super().__init__(task=task, config=config, **settings)
        self.references: list[Reference] = []
        self._filled: dict[int, Reference] = {}  # targets with their own lesions filled, by index
        self.donors: list[int] = []

    def fit(self, cases: Sequence[Case], *, progress: Reporter | ProgressCallback | None = None,
            out_dir: str | os.PathLike[str] | None = None, resume: bool = False) -> CopyPasteGenerator:
        """Keep the real cases (every channel, their labels): all are backgrounds, the labelled ones donors."""
        reporter = as_reporter(progress)
        cases = list(cases)
        if not cases:
            raise InputError("copy-paste needs real labelled cases to copy lesions from",
                             fix="give a dataset of real volumes with lesion labels")
        wrong = [c.case_id for c in cases if c.modality != self.task.modality]
        if wrong:
            raise InputError(f"cases {wrong} are not {self.task.modality.value}, which task {self.task.name!r} needs",
                             fix="pick the task that matches the data (--task)")
        channels = {tuple(c.channel_names) for c in cases}
        if len(channels) > 1:
            raise InputError(f"the cases have different channels {sorted(channels)}; a lesion is copied with all "
                             "of them", fix="give cases that share one set of channels")
        self.references, self._filled = [], {}
        for i, case in enumerate(cases):
            self.references.append(prepare_reference(case))
            reporter.report("fit", i + 1, len(cases), case.case_id)
        self._find_donors()
        self.training = {"cases": len(cases), "case_ids": [c.case_id for c in cases],
                         "donor_ids": [cases[i].case_id for i in self.donors]}
        self._measure_subregions([c.label for c in cases])
        return self

    def _find_donors(self) -> None:
        self.donors = [i for i, r in enumerate(self.references) if r.case.label is not None and r.case.label.any()]
        if not self.donors:
            raise InputError("none of the cases has a labelled lesion, so there is nothing to copy",
                             fix="give cases whose label maps mark lesions (or use lesion-insertion)")

    def synthesize(self, n: int, *, seed: int = 0, controls: LesionControls | None = None,
                   progress: Reporter | ProgressCallback | None = None) -> Iterator[Case]:
        """Yield ``n`` cases, each a real background with ``controls.count`` pasted real lesions (one without
        controls); the same ``seed`` gives the same cases.

        Args:
            n: number of cases.
            seed: random seed.
            controls: lesion count, volume range (the pasted lesion is scaled to a volume drawn from it), side and
                location; None: one lesion scaled within ``scale_range``.
            progress: progress callback or reporter.
        """
        if not self.references or not self.donors:
            raise InputError("the generator has no cases to copy from", fix="call fit(cases) or load a fitted one")
        reporter = as_reporter(progress)
        if controls is not None and controls.kind != self.task.lesion_kind:
            raise InputError(f"task {self.task.name!r} makes {self.task.lesion_kind.value} lesions, not "
                             f"{controls.kind.value}", fix="set the lesion kind of the controls to the task's")
        for i in range(n):
            rng = np.random.default_rng([seed, i])
            yield self._one(rng, controls, seed=seed, index=i)
            reporter.report("synthesize", i + 1, n, f"case {i + 1}/{n}")

    def _pick(self, rng: np.random.Generator, exclude: int | None = None) -> tuple[int, int]:
        """(donor, target) indices: the target differs from the donor whenever there are two cases or more."""
        donor = self.donors[int(rng.integers(len(self.donors)))] if exclude is None else exclude
        others = [j for j in range(len(self.references)) if j != donor]
        target = others[int(rng.integers(len(others)))] if others else donor
        return donor, target

    def _one(self, rng: np.random.Generator, controls: LesionControls | None, *, seed: int, index: int) -> Case:
        donor_i, target_i = self._pick(rng)
        target = background(self.references, target_i, self.config.background_lesions, self._filled)
        tcase = target.case
        count = 1 if controls is None else controls.count
        base = tcase.label if tcase.label is not None else np.zeros(tcase.shape, np.int16)
        table = tcase.label_table
        channels = {k: v.copy() for k, v in tcase.channels.items()}
        label = base.astype(np.int16).copy()
        occupied = base > 0
        infos: list[dict[str, Any]] = []
        donors: list[str] = []
        for k in range(count):
            if k > 0:  # further lesions: other donors (never the target when there is a choice)
                choices = [d for d in self.donors if d != target_i] or self.donors
                donor_i = choices[int(rng.integers(len(choices)))]
            donor = self.references[donor_i]
            pasted, centre, intensity = self._place(donor, target, occupied, rng, controls)
            box, local = _clip_box(centre, pasted.half, tcase.shape)
            lesion = pasted.lesion[local]
            # the donor's brain only, inside the target's brain; the target's own lesion is never blended over
            alpha = np.where(lesion, 1.0, pasted.alpha[local] * target.brain[box] * ~occupied[box]).astype(np.float32)
            for name, image in channels.items():
                sub = image[box]
                donor_values = pasted.channels[name][local] if name in pasted.channels else sub
                image[box] = (1.0 - alpha) * sub + alpha * donor_values
            new = np.zeros(tcase.shape, np.int16)
            new[box] = pasted.label[local]
            d_table = donor.case.label_table
            label, table = merge_label_maps(label, table, new, d_table)
            whole = new > 0
            occupied |= whole
            values = sorted(int(v) for v in np.unique(label[whole]))
            centroid = tcase.geometry.index_to_physical(np.argwhere(whole).mean(axis=0))
            midline = estimate_midline_x(target.brain, tcase.geometry)
            infos.append({
                "subtype": self._subtype(label[whole], table), "source": f"copy of {donor.case.case_id}",
                "donor": donor.case.case_id, "label_value": int(np.bincount(label[whole]).argmax()),
                "label_values": values, "volume_ml_achieved": float(whole.sum() * tcase.geometry.voxel_volume_ml),
                "donor_volume_ml": float((donor.case.label > 0).sum() * donor.case.geometry.voxel_volume_ml)
                if donor.case.label is not None else 0.0,
                "center_xyz": tuple(round(float(v), 2) for v in centroid),
                "side": "left" if centroid[0] > midline else "right", "intensity_map": intensity, **pasted.info})
            donors.append(donor.case.case_id)
        if tcase.modality == Modality.MR:
            floor = {name: min(0.0, float(tcase.channels[name].min())) for name in channels}
            channels = {name: np.maximum(image, floor[name]).astype(np.float32) for name, image in channels.items()}
        case = tcase.replace(
            case_id=f"synth_{seed}_{index:04d}", channels=channels, label=label, label_table=table,
            brain_mask=target.brain,
            metadata={"synthetic": True, "generator": self.name, "seed": seed, "index": index,
                      "background": tcase.case_id, "donor": donors[0] if donors else None, "donors": donors,
                      "source_case_ids": list(dict.fromkeys([tcase.case_id, *donors])), "lesions": infos,
                      "contains_real_patient_data": True,
                      "controls": controls.to_dict() if controls is not None else None,
                      "background_lesions": self.config.background_lesions})
        return self._push(case, target, label, occupied & ~(base > 0), infos)

    def _subtype(self, values: np.ndarray, table: LabelTable) -> str:
        if self.task.lesion_kind == LesionKind.TUMOR or not values.size:
            return "tumor"
        name = table.names.get(int(np.bincount(values).argmax()), "")
        roles = self.task.roles
        role = next((r for v, r in roles.roles.items() if roles.table.names.get(v) == name), name)
        return str(role).replace(" hemorrhage", "")

    def _place(self, donor: Reference, target: Reference, occupied: np.ndarray, rng: np.random.Generator,
               controls: LesionControls | None) -> tuple[Pasted, np.ndarray, dict[str, dict[str, float]]]:
        """Transform the donor lesion and find a centre where it lies inside the target's free brain."""
        assert donor.case.label is not None
        tgeo = target.case.geometry
        d_ml = float((donor.case.label > 0).sum() * donor.case.geometry.voxel_volume_ml)
        if controls is None:
            low, high = self.config.scale_range
            scale = float(rng.uniform(low, high))
        else:
            scale = (float(rng.uniform(*controls.volume_range)) / d_ml) ** (1.0 / 3.0)
        free = target.brain & ~ndimage.binary_dilation(occupied, iterations=2)
        side = controls.side if controls is not None else "any"
        if side != "any":
            free &= hemisphere(side, free.shape, tgeo, estimate_midline_x(target.brain, tgeo))
        free_ml = float(free.sum()) * tgeo.voxel_volume_ml
        if d_ml * scale ** 3 > free_ml:
            raise InputError(f"a pasted lesion of {d_ml * scale ** 3:.3g} ml cannot fit in the {free_ml:.3g} ml of "
                             f"free brain of case {target.case.case_id!r}", where="copy-paste",
                             fix="ask for a smaller volume (controls volume_ml) or lower scale_range")
        for _ in range(_SHRINK_TRIES + 1):
            pasted = carve_and_transform(donor, target, rng, config=self.config, scale=scale,
                                         roles=self.label_roles)
            half = pasted.half
            # centres where every lesion voxel is free brain, and (when possible) the blend misses the target's
            # own lesion
            fits = _padded_hits(~free, pasted.lesion, half, outside=True) < 0.5
            if fits.any():
                clear = fits & (_padded_hits(occupied, pasted.alpha > 0, half, outside=False) < 0.5)
                candidates = clear if clear.any() else fits
                centre = np.asarray(self._centre(candidates, donor, target, pasted, rng, controls))
                intensity = match_intensities(donor, target, pasted) if self.config.match_intensity else {}
                return pasted, centre, intensity
            scale *= _SHRINK
        raise InputError(f"the lesion of case {donor.case.case_id!r} ({d_ml:.3g} ml) does not fit inside the free "
                         f"brain of case {target.case.case_id!r}, even scaled down to {scale / _SHRINK:.2f}x",
                         where="copy-paste",
                         fix="ask for a smaller volume (controls volume_ml), lower scale_range, another side, or "
                             "give cases with more free brain")

    def _centre(self, candidates: np.ndarray, donor: Reference, target: Reference, pasted: Pasted,
                rng: np.random.Generator, controls: LesionControls | None) -> tuple[int, int, int]:
        tgeo = target.case.geometry
        point: tuple[float, float, float] | None = None
        if controls is not None and not isinstance(controls.location, str):
            point = tuple(controls.location)  # type: ignore[assignment]
        elif self.config.placement == "same":
            dgeo = donor.case.geometry
            d_brain = dgeo.index_to_physical(np.argwhere(donor.brain).mean(axis=0))
            t_brain = tgeo.index_to_physical(np.argwhere(target.brain).mean(axis=0))
            rel = np.asarray(pasted.info["donor_centroid_xyz"]) - d_brain
            point = tuple(float(v) for v in t_brain + rel)  # type: ignore[assignment]
        # the box centre is the lesion's centroid before deformation
        return pick_voxel(candidates, tgeo, rng=rng, center_xyz=point, where="copy-paste")

    def _push(self, case: Case, target: Reference, label: np.ndarray, pasted: np.ndarray,
              infos: list[dict[str, Any]]) -> Case:
        """Displace the target's brain around the pasted lesions that occupy space."""
        strength = self.config.mass_effect
        pushing = pasted & np.isin(label, [v for info in infos if info.get("subtype") in PUSHING
                                           for v in info["label_values"]])
        if strength <= 0 or not pushing.any():
            return case
        midline_x = target.head.midline_x if target.head is not None else None
        field = mass_effect_field(pushing, target.brain, case.geometry, strength=strength, midline_x=midline_x)
        return apply_mass_effect(case, field, lesion=pushing, midline_x=midline_x)

    def _save_state(self, directory: Path) -> dict[str, Any]:
        # the cases are real patients: the card says so, and a privacy check will find them
        write_dataset([r.case for r in self.references], directory / "cases", overwrite=True)
        return {"cases": "cases/dataset.json", "contains_real_images": True, "contains_real_lesions": True}

    def _load_state(self, directory: Path, card: Mapping[str, Any]) -> None:
        self.references, self._filled = [prepare_reference(c) for c in load_dataset(directory / "cases")], {}
        self._find_donors()
