"""Lesion insertion: paint a synthesized lesion into a real volume (training-free).

A new lesion mask (see :mod:`SyntheticImagingLib.lesions`) is placed in the free brain of a real background
case and painted with plausible intensities: MR tumours at a lesion/normal-brain ratio fitted on the user's
labelled cases (FLAIR hyperintense), CT hemorrhage at the HU of its age (acute 50-90 HU), with a textured
interior, partial-volume edges and noise matched to the background. The background's own lesions are painted
over with the surrounding tissue first (``background_lesions="fill"``, the default; see :mod:`.lesion_fill`), so
the label is the new mask; with ``"keep"`` it is the new mask merged with the lesions the background already had.
Either way it is on the background's own grid.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from ..cases import Case, LesionKind, Modality
from ..channel_names import channel_kind
from ..errors import InputError
from ..io.datasets import load_dataset, write_dataset
from ..label_roles import EDEMA, WHOLE_TUMOR, LabelRoles
from ..lesions.controls import LesionControls
from ..lesions.mass_effect import apply_mass_effect, mass_effect_field
from ..lesions.tumor_subregions import HIDDEN_ROLES, hidden_subregions
from ..progress import ProgressCallback, Reporter, as_reporter
from ..tasks import TaskPreset
from .base import Generator, register_generator
from .config import LesionInsertionConfig
from .ct_appearance import CTAppearance
from .intensity import (
    EDEMA_BORDER_WEIGHT,
    EDEMA_GRADIENT_MM,
    EDEMA_ROLES,
    LESION_HETEROGENEITY,
    SUBREGION_CONTRAST,
    LesionIntensityModel,
    estimate_noise_sigma,
    intensity_offset,
    partial_volume_alpha,
    smooth_texture,
)
from .lesion_fill import background
from .references import Reference, lesion_templates, new_lesion_label, prepare_reference

__all__ = ["LesionInsertionGenerator", "LesionInsertionConfig", "paint_lesion", "PUSHING"]

#: Lesion subtypes that occupy space and push the brain (the others replace CSF).
PUSHING = frozenset({"tumor", "intraparenchymal", "subdural", "epidural"})


def paint_lesion(ref: Reference, new_mask: np.ndarray, label: np.ndarray, label_names: Mapping[int, str],
                 model: LesionIntensityModel, rng: np.random.Generator, *, texture: float = 0.08,
                 roles: LabelRoles | None = None, appearance: CTAppearance | None = None,
                 inner_structure: bool = False) -> dict[str, np.ndarray]:
    """Channels of ``ref`` with the voxels of ``new_mask`` painted as lesion.

    MR intensities are ratios to the background's normal-brain median above its intensity offset
    (:func:`~.intensity.intensity_offset`: 0 for non-negative images, so z-scored images keep their negative
    values). With ``roles`` and a model fitted per sub-region, every sub-region of the new lesion gets its own
    level and texture spread per channel (necrosis dark and enhancing tumour bright on T1c, edema bright on FLAIR).

    Args:
        ref: the background and its brain mask.
        new_mask: voxels of the new lesion(s).
        label: the label map (its names, or ``roles``, decide edema vs lesion core intensities).
        label_names: value -> name of ``label``.
        model: lesion intensity model.
        rng: random generator.
        texture: relative strength of the lesion's internal texture (where no spread was fitted).
        roles: the label roles of ``label`` (values of the user's table), or None.
        appearance: CT only: the case's clot heterogeneity model (:mod:`.ct_appearance`); None: uniform blood.
        inner_structure: MR tumours whose table has only a whole-tumour label: paint a hidden BraTS structure
            inside each new tumour (:func:`_hidden_structure`); the label stays the whole tumour. False: one level
            plus the weak texture ``texture`` (as before).
    """
    case = ref.case
    spacing = case.geometry.spacing_zyx
    alpha = partial_volume_alpha(new_mask, spacing)
    region = alpha > 0
    edema = np.zeros_like(new_mask)
    parts: dict[str, np.ndarray] = {}
    if roles is not None:
        role_by_name = {roles.table.names[v]: r for v, r in roles.roles.items()}
        for value, name in label_names.items():  # by name: the merged map may renumber a background's labels
            role = role_by_name.get(name)
            part = (label == value) & new_mask
            if role is None:
                continue
            if part.any():
                parts[role] = part
                if role in EDEMA_ROLES:
                    edema |= part
    else:
        for value, name in label_names.items():
            if "edema" in name:
                edema |= (label == value) & new_mask
    by_role = case.modality == Modality.MR and bool(model.role_ratios) and bool(parts)
    normal = ref.brain & ~(case.label > 0 if case.label is not None else np.zeros_like(ref.brain)) & ~new_mask
    field = smooth_texture(case.shape, spacing, rng)
    if (inner_structure and case.modality == Modality.MR and case.lesion_kind == LesionKind.TUMOR and not by_role
            and not edema.any() and set(parts) <= {WHOLE_TUMOR} and new_mask.any()):
        return _paint_hidden_structure(ref, new_mask, normal, alpha, field, model, rng)
    # partial-volume edges take the level of the nearest new-lesion voxel
    nearest = tuple(ndimage.distance_transform_edt(~new_mask, return_distances=False, return_indices=True)) \
        if by_role else ()
    out = {}
    for name, image in case.channels.items():
        ref_level = float(np.median(image[normal])) if normal.any() else float(np.median(image[ref.brain]))
        offset = intensity_offset(image[ref.brain]) if case.modality == Modality.MR else 0.0
        level = ref_level - offset
        if by_role:
            target: np.ndarray = np.full(case.shape, ref_level, np.float32)
            spread = np.full(case.shape, texture * abs(level), np.float32)
            for role, part in parts.items():
                target[part] = model.draw(rng, name, ref_level, offset=offset, role=role)
                fitted = model.texture(name, role)
                if fitted is not None:
                    spread[part] = 0.5 * fitted * abs(level)  # half as smooth texture, half as voxel noise
            target = target[nearest]
            spread = spread[nearest]
            target = target + spread * field
        else:
            target = np.full(case.shape, model.draw(rng, name, ref_level, offset=offset), np.float32)
            if edema.any():  # MR edema: between normal tissue and tumour core; CT perihematomal edema: hypodense
                target[edema] = (ref_level - rng.uniform(4.0, 10.0) if case.modality == Modality.CT
                                 else ref_level + 0.6 * (model.draw(rng, name, ref_level, offset=offset) - ref_level))
            scale = abs(level) if case.modality == Modality.MR else 4.0
            target = target + texture * scale * field
        if appearance is not None and case.modality == Modality.CT:
            target = appearance.clot_target(target, new_mask & ~edema, label, label_names, case.geometry, ref_level)
        noise_sigma = estimate_noise_sigma(image, ref.brain)
        if by_role:
            noise = rng.standard_normal(int(region.sum())) * np.sqrt(noise_sigma ** 2 + spread[region] ** 2)
        else:
            noise = rng.normal(0.0, noise_sigma, int(region.sum()))
        painted = image.copy()
        painted[region] = (1 - alpha[region]) * image[region] + alpha[region] * (
            target[region] + noise.astype(np.float32))
        if case.modality == Modality.MR:
            painted = np.maximum(painted, min(0.0, float(image.min())))
        out[name] = painted.astype(np.float32)
    return out


def _paint_hidden_structure(ref: Reference, new_mask: np.ndarray, normal: np.ndarray, alpha: np.ndarray,
                            field: np.ndarray, model: LesionIntensityModel,
                            rng: np.random.Generator) -> dict[str, np.ndarray]:
    """MR channels of ``ref`` with whole tumours painted with a hidden BraTS structure (see :func:`paint_lesion`).

    Each tumour is split into necrosis, edema, non-enhancing and enhancing tumour
    (:func:`~SyntheticImagingLib.lesions.tumor_subregions.hidden_subregions`). Per channel, the whole-tumour
    ratio to normal brain is drawn from the fitted model (the user's whole-tumour brightness); the sub-regions get
    their contrast relative to it (:data:`~.intensity.SUBREGION_CONTRAST`), the edema falls off towards the
    tumour border (:data:`~.intensity.EDEMA_BORDER_WEIGHT`), and the lesion's median is scaled back to the drawn
    ratio. A smooth texture and voxel noise bring the SD inside the tumour, over its mean, to a real tumour's
    (:data:`~.intensity.LESION_HETEROGENEITY`, counting the structure's own spread and the background noise).

    Args:
        ref: the background and its brain mask.
        new_mask: voxels of the new tumour(s).
        normal: normal brain of the background.
        alpha: partial-volume weight (:func:`~.intensity.partial_volume_alpha`).
        field: smooth zero-mean, unit-SD texture.
        model: lesion intensity model (its whole-tumour ratios).
        rng: random generator.
    """
    case = ref.case
    spacing = case.geometry.spacing_zyx
    region = alpha > 0
    inner = hidden_subregions(new_mask, case.geometry, rng)
    depth = ndimage.distance_transform_edt(new_mask, sampling=spacing) - 0.5 * min(spacing)
    edema = inner == HIDDEN_ROLES.value_of(EDEMA)
    nearest = tuple(ndimage.distance_transform_edt(~new_mask, return_distances=False, return_indices=True))
    out = {}
    for name, image in case.channels.items():
        kind = channel_kind(name) or name
        ref_level = float(np.median(image[normal])) if normal.any() else float(np.median(image[ref.brain]))
        offset = intensity_offset(image[ref.brain])
        level = ref_level - offset
        whole_ratio = model.draw(rng, name, 1.0)  # ratio to normal brain above the offset
        ratio = np.full(case.shape, whole_ratio, np.float32)
        for value, role in HIDDEN_ROLES.roles.items():
            low, high = SUBREGION_CONTRAST.get(role, {}).get(kind, (1.0, 1.0))
            ratio[inner == value] = whole_ratio * float(rng.uniform(low, high))
        if edema.any():
            w0 = float(rng.uniform(*EDEMA_BORDER_WEIGHT.get(kind, (1.0, 1.0))))
            w = w0 + (1.0 - w0) * np.clip(depth[edema] / EDEMA_GRADIENT_MM, 0.0, 1.0)
            ratio[edema] = 1.0 + (ratio[edema] - 1.0) * w
        inside = ratio[new_mask]
        ratio *= whole_ratio / max(float(np.median(inside)), 1e-6)
        inside = ratio[new_mask]
        noise_sigma = estimate_noise_sigma(image, ref.brain)
        mean = max(float(inside.mean()) * abs(level), 1e-6)
        cv = float(rng.uniform(*LESION_HETEROGENEITY.get(kind, LESION_HETEROGENEITY["FLAIR"])))
        extra = float(np.sqrt(max(cv ** 2 - float(inside.std() / max(inside.mean(), 1e-6)) ** 2
                                  - (noise_sigma / mean) ** 2, 0.0)))
        target = (offset + ratio * level)[nearest]
        spread = extra / np.sqrt(2.0) * mean  # half as smooth texture, half as voxel noise
        target = target + spread * field
        noise = rng.standard_normal(int(region.sum())) * np.sqrt(noise_sigma ** 2 + spread ** 2)
        painted = image.copy()
        painted[region] = (1 - alpha[region]) * image[region] + alpha[region] * (
            target[region] + noise.astype(np.float32))
        painted = np.maximum(painted, min(0.0, float(image.min())))
        out[name] = painted.astype(np.float32)
    return out


@register_generator
class LesionInsertionGenerator(Generator):
    """Insert synthesized lesions into real background volumes (training-free, low fidelity baseline).

    Args:
        task: task preset.
        config: settings (:class:`~.config.LesionInsertionConfig`; None: the defaults).
        **settings: single settings by name, over ``config``.
    """

    family = "lesion-insertion"
    version = "1"
    config_class = LesionInsertionConfig
    config: LesionInsertionConfig

    def __init__(self, *, task: str | TaskPreset = "brain-tumor-mri", config: LesionInsertionConfig | None = None,
                 **settings: Any) -> None:
        super().__init__(task=task, config=config, **settings)
        self.references: list[Reference] = []
        self.templates: list[tuple[np.ndarray, Any]] = []
        self.model: LesionIntensityModel | None = None
        self._filled: dict[int, Reference] = {}  # references with their lesions filled, by index

    def fit(self, cases: Sequence[Case], *, progress: Reporter | ProgressCallback | None = None,
            out_dir: str | os.PathLike[str] | None = None, resume: bool = False) -> LesionInsertionGenerator:
        """Keep the real cases as backgrounds and fit lesion intensities on the labelled ones."""
        reporter = as_reporter(progress)
        cases = list(cases)
        if not cases:
            raise InputError("lesion insertion needs at least one real background case",
                             fix="give a dataset of real volumes (with or without lesions)")
        wrong = [c.case_id for c in cases if c.modality != self.task.modality]
        if wrong:
            raise InputError(f"cases {wrong} are not {self.task.modality.value}, which task {self.task.name!r} needs",
                             fix="pick the task that matches the data (--task)")
        self.references, self._filled = [], {}
        for i, case in enumerate(cases):
            self.references.append(prepare_reference(case))
            reporter.report("fit", i + 1, len(cases), case.case_id)
        self.templates = lesion_templates(cases)
        self.model = LesionIntensityModel.fit(cases, [r.brain for r in self.references],
                                              hemorrhage_age=self.config.hemorrhage_age, roles=self.label_roles)
        self.training = {"cases": len(cases), "case_ids": [c.case_id for c in cases],
                         "intensity_model": self.model.to_dict()}
        self._measure_subregions([c.label for c in cases])
        return self

    def synthesize(self, n: int, *, seed: int = 0, controls: LesionControls | None = None,
                   progress: Reporter | ProgressCallback | None = None) -> Iterator[Case]:
        if not self.references or self.model is None:
            raise InputError("the generator has no background cases", fix="call fit(cases) or load a fitted one")
        reporter = as_reporter(progress)
        controls = controls or LesionControls(kind=self.task.lesion_kind)
        if controls.kind != self.task.lesion_kind:
            raise InputError(f"task {self.task.name!r} makes {self.task.lesion_kind.value} lesions, not "
                             f"{controls.kind.value}", fix="set the lesion kind of the controls to the task's")
        for i in range(n):
            rng = np.random.default_rng([seed, i])
            ref = self._background(int(rng.integers(len(self.references))))
            roles = self.label_roles
            label, table, new_mask, infos = new_lesion_label(ref, controls, rng, self.templates, roles=roles,
                                                             fractions=self.subregion_fractions)
            appearance = (CTAppearance(np.random.default_rng([seed, i, 17]), age=self.config.hemorrhage_age)
                          if self.config.ct_appearance and ref.case.modality == Modality.CT else None)
            channels = paint_lesion(ref, new_mask, label, table.names, self.model, rng,
                                    texture=self.config.texture, roles=roles, appearance=appearance,
                                    inner_structure=self.config.inner_structure)
            case = ref.case.replace(
                case_id=f"synth_{seed}_{i:04d}", channels=channels, label=label, label_table=table,
                brain_mask=ref.brain,
                metadata={"synthetic": True, "generator": self.name, "seed": seed, "index": i,
                          "background": ref.case.case_id, "lesions": infos, "controls": controls.to_dict(),
                          "background_lesions": self.config.background_lesions})
            case = self._push(case, ref, label, infos)
            yield appearance.finish(case) if appearance is not None else case  # noise after the mass-effect warp
            reporter.report("synthesize", i + 1, n, f"case {i + 1}/{n}")

    def _background(self, index: int) -> Reference:
        """Reference ``index``, its own lesions filled when ``background_lesions="fill"`` (done once per case)."""
        return background(self.references, index, self.config.background_lesions, self._filled)

    def _push(self, case: Case, ref: Reference, label: np.ndarray, infos: list[dict[str, Any]]) -> Case:
        """Displace the brain around space-occupying lesions; image and every label move together."""
        strength = self.config.mass_effect
        every = self.label_roles is not None  # a user's table: every sub-region of a pushing lesion pushes
        pushing = np.isin(label, [v for info in infos if info.get("subtype") in PUSHING
                                  for v in (info.get("label_values", []) if every else []) or [info["label_value"]]])
        if strength <= 0 or not pushing.any():
            return case
        midline_x = ref.head.midline_x if ref.head is not None else None
        field = mass_effect_field(pushing, ref.brain, case.geometry, strength=strength, midline_x=midline_x)
        return apply_mass_effect(case, field, lesion=pushing, midline_x=midline_x)

    def _save_state(self, directory: Path) -> dict[str, Any]:
        # the backgrounds are real images: the card says so, and a privacy check will find them
        write_dataset([r.case for r in self.references], directory / "backgrounds", overwrite=True)
        return {"backgrounds": "backgrounds/dataset.json", "contains_real_images": True}

    def _load_state(self, directory: Path, card: Mapping[str, Any]) -> None:
        cases = list(load_dataset(directory / "backgrounds"))
        self.references, self._filled = [prepare_reference(c) for c in cases], {}
        self.templates = lesion_templates(cases)
        self.model = LesionIntensityModel.from_dict(card["training"]["intensity_model"])
