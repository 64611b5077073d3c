"""SynthSeg-style label-to-image generation (training-free; the low-fidelity baseline of Xing et al. 2023).

``fit`` turns each real reference case into an anatomy label map (tissue classes by 1D k-means inside the
brain; for head CT also ventricles, extracranial soft tissue and bone) with per-class intensity statistics.
``synthesize`` then, per case: deforms a reference anatomy map (random affine + elastic), draws a new image
from a Gaussian mixture per class (means around the fitted ones, spread by ``contrast_randomization``),
inserts new lesions (see :mod:`.lesion_insertion`), and corrupts it as scanners do: partial-volume blur, bias
field (MR), noise and resolution randomisation (MONAI random transforms). No image voxel of a real case is
copied: only its anatomy layout, deformed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from monai.transforms import (
    Rand3DElastic,
    RandAdjustContrast,
    RandBiasField,
    RandGaussianNoise,
    RandGaussianSmooth,
    RandSimulateLowResolution,
)
from scipy import ndimage

from ..anatomy import HeadMasks, estimate_midline_x, inner_table_mask
from ..cases import Case, Geometry, Modality
from ..errors import InputError
from ..io.atomic import atomic_file
from ..lesions.controls import LesionControls
from ..progress import ProgressCallback, Reporter, as_reporter
from ..tasks import TaskPreset
from .anatomy_map import BONE, LESION_BASE, VENTRICLE, anatomy_map, kmeans_1d
from .base import Generator, register_generator
from .config import LabelToImageConfig
from .ct_appearance import CTAppearance
from .intensity import TISSUE_TEXTURE_MM, LesionIntensityModel, smooth_texture
from .lesion_insertion import paint_lesion
from .references import Reference, lesion_templates, new_lesion_label, prepare_reference

__all__ = ["LabelToImageGenerator", "LabelToImageConfig", "kmeans_1d", "anatomy_map"]

def class_stats(ref: Reference, amap: np.ndarray) -> dict[str, dict[int, tuple[float, float]]]:
    """Mean and std per anatomy code per channel."""
    return {name: {int(c): (float(a[amap == c].mean()), float(a[amap == c].std())) for c in np.unique(amap)}
            for name, a in ref.case.channels.items()}


@register_generator
class LabelToImageGenerator(Generator):
    """Generate images from (deformed) anatomy label maps plus new lesions, SynthSeg-style.

    Args:
        task: task preset.
        config: settings (:class:`~.config.LabelToImageConfig`; None: the defaults).
        **settings: single settings by name, over ``config``.
    """

    family = "label-to-image"
    version = "1"
    config_class = LabelToImageConfig
    config: LabelToImageConfig

    def __init__(self, *, task: str | TaskPreset = "brain-tumor-mri", config: LabelToImageConfig | None = None,
                 **settings: Any) -> None:
        super().__init__(task=task, config=config, **settings)
        self.maps: list[np.ndarray] = []
        self.geometries: list[Geometry] = []
        self.stats: list[dict[str, dict[int, tuple[float, float]]]] = []
        self.templates: list[tuple[np.ndarray, Geometry]] = []
        self.model: LesionIntensityModel | None = None
        self.label_names: dict[int, str] = {}

    def fit(self, cases: Sequence[Case], *, progress: Reporter | ProgressCallback | None = None,
            out_dir: str | os.PathLike[str] | None = None, resume: bool = False) -> LabelToImageGenerator:
        """Build anatomy maps and class statistics from real cases (no training)."""
        reporter = as_reporter(progress)
        cases = list(cases)
        if not cases:
            raise InputError("label-to-image needs at least one real reference case")
        wrong = [c.case_id for c in cases if c.modality != self.task.modality]
        if wrong:
            raise InputError(f"cases {wrong} are not {self.task.modality.value}, which task {self.task.name!r} "
                             "needs", fix="pick the task that matches the data (--task)")
        refs = []
        self.maps, self.geometries, self.stats = [], [], []
        for i, case in enumerate(cases):
            ref = prepare_reference(case)
            amap = anatomy_map(ref, classes=self.config.tissue_classes,
                               keep_lesions=self.config.keep_real_lesions)
            refs.append(ref)
            self.maps.append(amap)
            self.geometries.append(case.geometry)
            self.stats.append(class_stats(ref, amap))
            self.label_names.update(case.label_table.names)
            reporter.report("fit", i + 1, len(cases), case.case_id)
        self.templates = lesion_templates(cases)
        self.model = LesionIntensityModel.fit(cases, [r.brain for r in refs],
                                              hemorrhage_age=self.config.hemorrhage_age, roles=self.label_roles)
        self.training = {"cases": len(cases), "case_ids": [c.case_id for c in cases],
                         "channels": cases[0].channel_names, "modality": cases[0].modality.value,
                         "intensity_model": self.model.to_dict(), "label_names": self.label_names}
        self._measure_subregions([c.label for c in cases])
        return self

    def _deform(self, amap: np.ndarray, seed: int) -> np.ndarray:
        elastic = Rand3DElastic(sigma_range=(5.0, 8.0), magnitude_range=(0.0, self.config.elastic_magnitude),
                                prob=1.0, rotate_range=(0.08, 0.08, 0.08), scale_range=(0.05, 0.05, 0.05),
                                mode="nearest", padding_mode="zeros")
        elastic.set_random_state(seed=seed)
        # MONAI annotates Tensor, its transforms take NumPy arrays as well
        return np.asarray(elastic(amap[None].astype(np.float32)))[0].astype(np.uint8)  # type: ignore[arg-type]

    def _draw_image(self, amap: np.ndarray, stats: dict[str, dict[int, tuple[float, float]]],
                    spacing: Sequence[float], rng: np.random.Generator) -> dict[str, np.ndarray]:
        randomize = self.config.contrast_randomization
        textured = self.config.tissue_texture > 0 and self.task.modality == Modality.MR
        out = {}
        for name, per_class in stats.items():
            image = np.zeros(amap.shape, np.float32)
            high = max(m for m, _ in per_class.values())
            low = min(0.0, min(m for m, _ in per_class.values()))  # z-scored references have negative levels
            field = smooth_texture(amap.shape, spacing, rng, scale_mm=TISSUE_TEXTURE_MM) if textured else None
            for code in np.unique(amap):
                mean, std = per_class.get(int(code), per_class.get(0, (0.0, 0.0)))
                fitted = mean
                if code != 0 and self.task.modality == Modality.MR:
                    mean = (1 - randomize) * mean + randomize * rng.uniform(low, high)
                sel = amap == code
                image[sel] = mean + rng.normal(0.0, std * 0.5, int(sel.sum()))
                if field is not None and 1 <= code < VENTRICLE:
                    # multiplicative above the zero point: the reference's within-class SD over its mean
                    cv = std / max(abs(fitted - low), 1e-6)
                    image[sel] += self.config.tissue_texture * cv * abs(mean - low) * field[sel]
            # partial-volume blur of the piecewise-constant image (about one voxel)
            image = ndimage.gaussian_filter(image, [0.6 * min(spacing) / s for s in spacing])
            out[name] = image
        return out

    def _reference(self, amap: np.ndarray, geometry: Geometry, channels: dict[str, np.ndarray],
                   case_id: str) -> Reference:
        lesion_values = np.where(amap >= LESION_BASE, amap.astype(np.int16) - LESION_BASE, 0).astype(np.int16)
        brain = ((amap >= 1) & (amap < VENTRICLE)) | (amap == VENTRICLE) | (amap >= LESION_BASE)
        case = Case(case_id=case_id, channels=channels, geometry=geometry, modality=self.task.modality,
                    lesion_kind=self.task.lesion_kind, label=lesion_values,
                    label_table=self._table(lesion_values))
        head = None
        if self.task.modality == Modality.CT and (amap == BONE).any():
            skull = amap == BONE
            head = HeadMasks(brain=brain, skull=skull, air=amap == 0, ventricles=amap == VENTRICLE,
                             inner_table=inner_table_mask(brain, skull, geometry),
                             midline_x=estimate_midline_x(brain, geometry), hu=channels.get("CT"))
        return Reference(case, brain, head)

    def _table(self, label: np.ndarray) -> Any:
        from ..cases import LabelTable

        values = [int(v) for v in np.unique(label) if v != 0]
        names = {**self.label_names, **(self.task.label_table.names if self.label_roles is not None else {})}
        return LabelTable({v: names.get(v, f"label {v}") for v in values} or self.task.label_table.names)

    def _corrupt(self, channels: dict[str, np.ndarray], seed: int) -> dict[str, np.ndarray]:
        mr = self.task.modality == Modality.MR
        steps = [RandGaussianSmooth(sigma_x=(0.0, 0.8), sigma_y=(0.0, 0.8), sigma_z=(0.0, 0.8), prob=0.5),
                 RandSimulateLowResolution(prob=self.config.low_resolution, zoom_range=(0.6, 1.0))]
        if mr:
            steps += [RandBiasField(degree=3, coeff_range=(0.0, self.config.bias_field), prob=1.0),
                      RandAdjustContrast(prob=0.3, gamma=(0.8, 1.25), retain_stats=True)]
        out = {}
        for c, (name, image) in enumerate(channels.items()):
            x = image[None]
            for j, t in enumerate(steps):
                t.set_random_state(seed=seed * 1000 + c * 10 + j)
                x = np.asarray(t(x), dtype=np.float32)
            # MR: 2 % of the 99th percentile above the zero point (z-scored references: above the 0.5th percentile)
            span = float(np.percentile(image, 99)) - min(0.0, float(np.percentile(image, 0.5)))
            sigma = self.config.noise * (0.02 * max(span, 0.0) if mr else 2.0)
            noise = RandGaussianNoise(prob=1.0, std=sigma)
            noise.set_random_state(seed=seed * 1000 + c * 10 + 9)
            x = np.asarray(noise(x), dtype=np.float32)
            out[name] = np.maximum(x[0], min(0.0, float(image.min()))) if mr else x[0]
        return out

    def synthesize(self, n: int, *, seed: int = 0, controls: LesionControls | None = None,
                   progress: Reporter | ProgressCallback | None = None) -> Iterator[Case]:
        if not self.maps or self.model is None:
            raise InputError("the generator has no anatomy maps", fix="call fit(cases) or load a fitted generator")
        reporter = as_reporter(progress)
        controls = controls or LesionControls(kind=self.task.lesion_kind)
        for i in range(n):
            rng = np.random.default_rng([seed, i, 1])
            k = int(rng.integers(len(self.maps)))
            case_seed = int(rng.integers(2**31 - 1))
            amap = self._deform(self.maps[k], case_seed)
            geometry = self.geometries[k]
            channels = self._draw_image(amap, self.stats[k], geometry.spacing_zyx, rng)
            ref = self._reference(amap, geometry, channels, f"synth_{seed}_{i:04d}")
            roles = self.label_roles
            label, table, new_mask, infos = new_lesion_label(ref, controls, rng, self.templates, roles=roles,
                                                             fractions=self.subregion_fractions)
            appearance = (CTAppearance(np.random.default_rng([seed, i, 17]), age=self.config.hemorrhage_age)
                          if self.config.ct_appearance and self.task.modality == Modality.CT else None)
            painted = paint_lesion(ref, new_mask, label, table.names, self.model, rng, roles=roles,
                                   appearance=appearance, inner_structure=self.config.inner_structure)
            channels = self._corrupt(painted, case_seed)
            if appearance is not None:  # scanner noise up to a real head CT's level
                channels = appearance.finish_channels(channels, ref.brain, label > 0, geometry)
            if self.task.modality == Modality.MR:
                # Skull-stripped references (BraTS) have an exactly-zero background: keep it so (blur and noise
                # would otherwise leak a faint haze that reads as "head" to every foreground mask downstream).
                outside = amap == 0
                for name, image in channels.items():
                    if abs(self.stats[k][name].get(0, (0.0, 0.0))[0]) < 1e-3 * max(
                            m for m, _ in self.stats[k][name].values()):
                        image[outside] = 0.0
            yield ref.case.replace(
                channels=channels, label=label, label_table=table, brain_mask=ref.brain,
                metadata={"synthetic": True, "generator": self.name, "seed": seed, "index": i,
                          "lesions": infos, "controls": controls.to_dict(),
                          **({"ct_appearance": appearance.record} if appearance is not None else {})})
            reporter.report("synthesize", i + 1, n, f"case {i + 1}/{n}")

    def _save_state(self, directory: Path) -> dict[str, Any]:
        arrays = {f"map_{i}": m for i, m in enumerate(self.maps)}
        arrays.update({f"template_{i}": t for i, (t, _) in enumerate(self.templates)})
        with atomic_file(directory / "anatomy.npz") as tmp:
            with open(tmp, "wb") as f:
                np.savez_compressed(f, **arrays)  # type: ignore[arg-type]  # numpy's stub matches **arrays against allow_pickle
        return {"anatomy": "anatomy.npz", "geometries": [g.to_dict() for g in self.geometries],
                "template_geometries": [g.to_dict() for _, g in self.templates],
                "stats": [{ch: {str(c): list(v) for c, v in s.items()} for ch, s in st.items()} for st in self.stats]}

    def _load_state(self, directory: Path, card: Mapping[str, Any]) -> None:
        files = card["files"]
        with np.load(directory / files["anatomy"], allow_pickle=False) as data:
            self.maps = [data[f"map_{i}"] for i in range(len(files["geometries"]))]
            self.templates = [(data[f"template_{i}"].astype(bool), Geometry.from_dict(g))
                              for i, g in enumerate(files["template_geometries"])]
        self.geometries = [Geometry.from_dict(g) for g in files["geometries"]]
        self.stats = [{ch: {int(c): tuple(v) for c, v in s.items()} for ch, s in st.items()} for st in files["stats"]]
        self.model = LesionIntensityModel.from_dict(card["training"]["intensity_model"])
        self.label_names = {int(k): v for k, v in card["training"].get("label_names", {}).items()}
