"""Label-conditioned 3D GAN (Shin et al. 2018, pix2pix-style; SPADE option): lesion label + brain mask -> image.

The generator maps a one-hot lesion label and a brain (anatomy) mask to all image channels of the task (MRI
FLAIR + T1, or CT) in network units; a conditional PatchGAN critic sees (condition, image) pairs. Losses:
least-squares adversarial (:class:`monai.losses.PatchAdversarialLoss`) + L1 to the real image (+ optional
feature matching on the critic's features). Networks are MONAI's: ``architecture="segresnet"`` (default,
:class:`monai.networks.nets.SegResNet` with trilinear upsampling: no checkerboard artefacts), ``"unet"``
(:class:`monai.networks.nets.UNet`: about 4x faster per step on CPU, but its transposed convolutions leave
checkerboard patterns early in training) or ``"spade"``
(:class:`monai.networks.nets.spade_network.SPADEDecoder`, where the label modulates every normalisation layer);
critic :class:`monai.networks.nets.PatchDiscriminator`. The generator predicts a residual over the training set's
mean intensity of each region class (``class_mean_prior``), so short CPU runs already get global contrast right.

Paired with the lesion-mask synthesis it makes new image + label pairs: :meth:`GAN3DGenerator.synthesize` picks a
real anatomy background (a training brain mask kept in the model folder as a uint8 mask, never an image), draws a
new lesion label there, and renders the image. The label of every output is the conditioning mask exactly.
:meth:`GAN3DGenerator.resynthesize` re-renders a real case with its lesion moved, resized or removed, blending the
rendered region into the real image.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from monai.inferers import SlidingWindowInferer
from monai.losses import PatchAdversarialLoss
from monai.networks.nets import PatchDiscriminator, SegResNet, UNet
from monai.networks.nets.spade_network import SPADEDecoder
from scipy import ndimage
from torch import nn

from ..cases import Case, Geometry, LabelTable, Modality
from ..errors import InputError, LabelError
from ..lesions.controls import LesionControls
from ..lesions.draws import LesionDrawer, draw_labels, lesion_jobs
from ..preprocessing import IntensityMap
from ..progress import ProgressCallback, Reporter, as_reporter
from ..tasks import TaskPreset
from ..training import checkpoints, prepare_training_data, training_card
from ..training.data import (
    GridSettings,
    PreparedCase,
    TrainingData,
    data_fingerprint,
    load_masks,
    one_hot_label,
    prepare_case,
    save_masks,
)
from ..training.loop import StepContext, Trainer, TrainingProgram, TrainSettings
from .base import Generator, register_generator
from .config import GanConfig

__all__ = ["GAN3DGenerator", "GanConfig", "edit_label", "model_label", "class_means"]


class _SPADEGenerator(nn.Module):
    """MONAI's SPADE decoder with the call signature of the U-Net (condition in, image out)."""

    def __init__(self, decoder: SPADEDecoder) -> None:
        super().__init__()
        self.decoder = decoder

    def forward(self, cond: torch.Tensor) -> torch.Tensor:
        return self.decoder(cond)


class _ClassMeanPrior(nn.Module):
    """Generator output = mean intensity of each region class (outside the brain, brain, each lesion value; a
    buffer fitted on the training data) + the network's residual, so training starts from the right contrast
    and spends its steps on texture and boundaries."""

    class_means: torch.Tensor

    def __init__(self, net: nn.Module, *, n_lesion: int, n_out: int) -> None:
        super().__init__()
        self.net = net
        self.n_lesion = n_lesion
        self.register_buffer("class_means", torch.zeros(n_lesion + 2, n_out))

    def forward(self, cond: torch.Tensor) -> torch.Tensor:
        lesion, brain = cond[:, : self.n_lesion], cond[:, self.n_lesion: self.n_lesion + 1]
        any_lesion = lesion.sum(1, keepdim=True).clamp(max=1.0)
        inside = torch.maximum(brain, any_lesion)
        weights = torch.cat([1.0 - inside, inside - any_lesion, lesion], 1)
        with torch.autocast(device_type=cond.device.type, enabled=False):  # the prior stays fp32 under autocast
            base = torch.einsum("bk...,kc->bc...", weights.float(), self.class_means.float())
        return base + self.net(cond).float()


def class_means(prepared: Sequence[PreparedCase], values: Sequence[int]) -> np.ndarray:
    """Mean image (network units) per region class: outside the brain, normal brain, each lesion value.

    Args:
        prepared: training cases on the model grid.
        values: the lesion label values.

    Returns:
        ``[len(values) + 2, channels]`` float32 (a class absent from the data gets the brain mean).
    """
    n_ch = prepared[0].image.shape[0]
    sums = np.zeros((len(values) + 2, n_ch))
    counts = np.zeros(len(values) + 2)
    for p in prepared:
        masks = [~p.brain & (p.label == 0), p.brain & (p.label == 0)] + [p.label == v for v in values]
        for k, m in enumerate(masks):
            sums[k] += p.image[:, m].sum(axis=1)
            counts[k] += m.sum()
    means = sums / np.maximum(counts, 1)[:, None]
    means[counts == 0] = means[1]
    return means.astype(np.float32)


def _head_anatomy(prepared: Sequence[PreparedCase], grid: GridSettings) -> list[tuple[np.ndarray, Geometry]]:
    """CT: head masks (skull, air, ventricles) of every prepared case, encoded; [] for MR or skull-stripped CT."""
    if grid.modality != Modality.CT:
        return []
    from ..anatomy import encode_head_masks, head_masks

    out = []
    for p in prepared:
        try:
            head = head_masks(p.intensity.inverse_array(p.image[0], grid.channels[0]), p.geometry)
        except InputError:
            return []  # no skull (skull-stripped): lesions are placed from the brain mask alone
        # New lesions stay inside the brain the generator is conditioned on.
        head = dataclasses.replace(head, brain=head.brain & p.brain, ventricles=head.ventricles & p.brain)
        out.append((encode_head_masks(head), p.geometry))
    return out


def _index_offset(geometry: Geometry, offset_mm: Sequence[float]) -> np.ndarray:
    """A physical displacement (x, y, z mm) as an index displacement (z, y, x voxels)."""
    ijk = np.linalg.solve(geometry.direction_matrix, np.asarray(offset_mm, float)) / np.asarray(geometry.spacing)
    return ijk[::-1]


def edit_label(label: np.ndarray, brain: np.ndarray, geometry: Geometry, edit: str, *,
               offset_mm: Sequence[float] | None = None, size_factor: float = 1.5,
               rng: np.random.Generator | None = None) -> np.ndarray:
    """A lesion label moved, resized or removed, kept inside the brain.

    Args:
        label: integer label ``[z, y, x]``.
        brain: boolean brain mask of the same grid.
        geometry: the grid's geometry (offsets are in mm).
        edit: ``"move"``, ``"resize"`` or ``"remove"``.
        offset_mm: move: physical displacement (x, y, z) in mm; None: a random place inside the brain.
        size_factor: resize: linear scale about the lesion's centre (1.5 = 3.4x the volume).
        rng: random generator for a random move.

    Raises:
        LabelError: nothing to move/resize, or the edited lesion left the brain entirely.
    """
    label = np.asarray(label)
    if edit == "remove":
        return np.zeros_like(label, dtype=np.int16)
    if edit not in ("move", "resize"):
        raise InputError(f"unknown edit {edit!r}", fix="use move, resize or remove")
    lesion = np.argwhere(label > 0)
    if not len(lesion):
        raise LabelError(f"the case has no lesion to {edit}", fix="use edit='remove' or a labelled case")
    centre = lesion.mean(0)
    if edit == "move":
        if offset_mm is not None:
            shift = _index_offset(geometry, offset_mm)
        else:
            rng = rng or np.random.default_rng(0)
            inner = np.argwhere(ndimage.binary_erosion(brain, iterations=2) if brain.any() else brain)
            best, best_inside = np.zeros(3), -1.0
            for _ in range(40):  # a random target whose moved lesion stays inside the brain
                target = inner[rng.integers(len(inner))] if len(inner) else centre
                cand = np.round(target - centre)
                moved = lesion + cand
                ok = np.all((moved >= 0) & (moved < label.shape), axis=1)
                idx = tuple(moved[ok].astype(int).T)
                inside = float(brain[idx].sum()) / len(lesion) if ok.any() else 0.0
                if inside > best_inside:
                    best, best_inside = cand, inside
                if inside > 0.97:
                    break
            shift = best
        out = ndimage.shift(label.astype(np.int16), shift, order=0, mode="constant", cval=0)
    else:
        if size_factor <= 0:
            raise InputError(f"size factor must be positive, got {size_factor}")
        matrix = np.eye(3) / float(size_factor)
        out = ndimage.affine_transform(label.astype(np.int16), matrix, offset=centre - matrix @ centre, order=0,
                                       mode="constant", cval=0)
    out = np.where(brain, out, 0).astype(np.int16)
    if not out.any():
        raise LabelError(f"the {edit}d lesion lies entirely outside the brain", fix="use a smaller move or size")
    return out


def model_label(label: np.ndarray, values: Sequence[int]) -> np.ndarray:
    """The label as the model sees it (the output label stays the given one).

    A model with one lesion channel renders every lesion value (tumour core and edema, hemorrhage subtypes) as its
    lesion; a model with several must know every value.

    Args:
        label: integer label map.
        values: the model's label values.

    Raises:
        LabelError: a multi-channel model meets values it does not know.
    """
    present = set(np.unique(label).tolist()) - {0}
    if present <= set(values):
        return label
    if len(values) == 1:
        return np.where(label > 0, values[0], 0).astype(np.int16)
    raise LabelError(f"label values {sorted(present - set(values))} are unknown to this model (it knows "
                     f"{list(values)})", fix="merge them into the model's labels, or train on them")


def _blend_weight(region: np.ndarray, geometry: Geometry, margin_mm: float) -> np.ndarray:
    """1 inside ``region``, falling linearly to 0 at ``margin_mm`` outside it."""
    if not region.any():
        return np.zeros(region.shape, np.float32)
    if margin_mm <= 0:
        return region.astype(np.float32)
    d = ndimage.distance_transform_edt(~region, sampling=geometry.spacing_zyx)
    return np.clip(1.0 - d / margin_mm, 0.0, 1.0).astype(np.float32)


@register_generator
class GAN3DGenerator(Generator):
    """Label-conditioned 3D GAN (see the module docstring).

    Args:
        task: task preset (modality, channels, labels, grid).
        config: settings (:class:`~.config.GanConfig`; None: the defaults); ``spacing``/``shape`` override the
            task's grid.
        **settings: single settings by name, over ``config``.

    Example:
        >>> gen = GAN3DGenerator(task="brain-tumor-mri", spacing=[4, 4, 4], shape=[40, 48, 40])  # doctest: +SKIP
        >>> gen.fit(cases, settings=TrainSettings(steps=200), out_dir="model")  # doctest: +SKIP
        >>> case = next(gen.synthesize(1, seed=0))  # doctest: +SKIP
    """

    family = "gan3d"
    version = "1"
    trainable = True
    config_class = GanConfig
    config: GanConfig

    def __init__(self, *, task: str | TaskPreset = "brain-tumor-mri", config: GanConfig | None = None,
                 **settings: Any) -> None:
        super().__init__(task=task, config=config, **settings)
        self.grid = GridSettings.from_task(self.task, spacing=self.config.spacing, shape=self.config.shape)
        self.patch_size = tuple(self.config.patch_size or self.grid.shape)
        self._check_config()
        self.net: nn.Module | None = None
        self.references: list[tuple[np.ndarray, Geometry]] = []
        self.head_anatomy: list[tuple[np.ndarray, Geometry]] = []  # CT: encoded head masks per reference
        self._heads: dict[int, Any] = {}  # decoded head_anatomy, by reference index
        self.templates: list[tuple[np.ndarray, Geometry]] = []
        self.intensity: IntensityMap | None = None

    # -- networks -----------------------------------------------------------------------------------------------

    @property
    def in_channels(self) -> int:
        """One-hot label channels + the brain mask."""
        return len(self.grid.label_values) + 1

    def _check_config(self) -> None:
        """The checks of the settings that need the grid (the rest are :class:`~.config.GanConfig`'s)."""
        c = self.config
        depth = 2 ** len(c.spade_channels) if c.architecture == "spade" else 2 ** (len(c.channels) - 1)
        if any(p % depth for p in self.patch_size):
            raise InputError(f"the {c.architecture} generator needs sizes divisible by {depth}; the patch/grid is "
                             f"{self.patch_size}", fix="choose shape/patch_size divisible by it")
        if any(p > s for p, s in zip(self.patch_size, self.grid.shape)):
            raise InputError(f"patch size {self.patch_size} exceeds the grid {self.grid.shape}")
        layers = c.disc_layers
        if min(self.patch_size) // 2**layers - 1 < 2:  # the critic's last (normalised) layer needs > 1 voxel
            raise InputError(f"a {layers}-layer patch critic needs patches of at least {3 * 2**layers} voxels per "
                             f"side, got {self.patch_size}", fix="lower disc_layers or enlarge shape/patch_size")

    def build_networks(self) -> dict[str, nn.Module]:
        """Fresh generator and critic (CPU)."""
        c = self.config
        n_out = len(self.grid.channels)
        if c.architecture == "segresnet":
            levels = len(c.channels)
            gen: nn.Module = SegResNet(spatial_dims=3, init_filters=c.channels[0], in_channels=self.in_channels,
                                       out_channels=n_out, norm="INSTANCE", blocks_down=(1,) + (2,) * (levels - 1),
                                       blocks_up=(1,) * (levels - 1), upsample_mode="nontrainable")
        elif c.architecture == "unet":
            gen = UNet(spatial_dims=3, in_channels=self.in_channels, out_channels=n_out,
                                  channels=list(c.channels), strides=[2] * (len(c.channels) - 1),
                                  num_res_units=c.num_res_units, norm="INSTANCE")
        else:
            gen = _SPADEGenerator(SPADEDecoder(spatial_dims=3, out_channels=n_out, label_nc=self.in_channels,
                                               input_shape=list(self.patch_size), channels=list(c.spade_channels),
                                               is_vae=False, spade_intermediate_channels=c.spade_hidden,
                                               last_act=None))
        disc = PatchDiscriminator(spatial_dims=3, channels=c.disc_channels,
                                  in_channels=self.in_channels + n_out, out_channels=1,
                                  num_layers_d=c.disc_layers, norm="INSTANCE")
        if c.class_mean_prior:
            gen = _ClassMeanPrior(gen, n_lesion=len(self.grid.label_values), n_out=n_out)
        return {"generator": gen, "discriminator": disc}

    def condition(self, label: torch.Tensor, brain: torch.Tensor) -> torch.Tensor:
        """Generator input ``[B, labels + 1, ...]`` from labels ``[B, 1, ...]`` and brain masks ``[B, 1, ...]``."""
        return torch.cat([one_hot_label(label, self.grid.label_values), brain.float()], dim=1)

    @property
    def output_range(self) -> tuple[float, float]:
        """Valid network-unit range of the images (MR up to 1.5x the 99.5th percentile; CT [-1, 1])."""
        return (-1.0, 2.0) if self.grid.modality == Modality.MR else (-1.0, 1.0)

    def render(self, cond: torch.Tensor, net: nn.Module | None = None) -> torch.Tensor:
        """Run the generator on a condition tensor, by sliding window when it exceeds the patch size.

        Args:
            cond: ``[B, labels + 1, ...]`` condition on the network's device.
            net: the network to run as is (training previews); None: the trained one under the synthesis
                settings of :meth:`to` (precision, layout, compilation).
        """
        net = net or self._runner()
        if tuple(cond.shape[2:]) == self.patch_size:
            out = net(cond)
        else:  # larger than a patch: windows on the network's device, the whole volume stitched on the CPU
            inferer = SlidingWindowInferer(roi_size=self.patch_size, sw_batch_size=max(1, cond.shape[0]),
                                           overlap=self.config.sw_overlap, mode="gaussian",
                                           sw_device=cond.device, device=torch.device("cpu"))
            out = inferer(cond, net)
        return out.float().clamp(*self.output_range)  # no tanh: clamp to the range the intensity map inverts

    def _runner(self) -> nn.Module:
        """The trained network wrapped for synthesis."""
        return self._for_synthesis(self._require_net())

    def _require_net(self) -> nn.Module:
        if self.net is None or self.intensity is None:
            raise InputError("this generator is not trained", where=self.name,
                             fix="train it (fit / `synthetic-imaging train`) or load a trained folder")
        return self.net

    def _networks(self) -> list[nn.Module]:
        return [self.net] if self.net is not None else []

    # -- training -----------------------------------------------------------------------------------------------

    def fit(self, cases: Sequence[Case], *, progress: Reporter | ProgressCallback | None = None,
            out_dir: str | os.PathLike[str] | None = None, resume: bool = False,
            settings: TrainSettings | None = None, validation: Sequence[Case] | None = None) -> GAN3DGenerator:
        """Train on labelled cases (checkpoints in ``out_dir/checkpoints``; previews in ``out_dir/validation``).

        Args:
            cases: training cases (a lazy dataset is fine; preprocessed results are cached).
            progress: reporter or callback (stages ``prepare`` and ``train``); its cancel stops after a checkpoint.
            out_dir: folder for checkpoints and previews (None: neither).
            resume: continue from the checkpoint in ``out_dir``.
            settings: steps, batch size, device, AMP, seed (default :class:`TrainSettings`).
            validation: held-out cases rendered at previews (``val_l1`` and lesion contrast are reported).
        """
        settings = settings or TrainSettings()
        reporter = as_reporter(progress)
        prepared, val = prepare_training_data(cases, validation, self.grid, settings, reporter)
        if not any(p.label.any() for p in prepared):
            raise LabelError("no training case has a lesion voxel; the GAN cannot learn what a lesion looks like",
                             fix="train on labelled cases")
        fingerprint = data_fingerprint(cases, prepared, self.grid)
        data = TrainingData(prepared, seed=settings.seed, augment=self.config.augment,
                            patch_size=self.patch_size)
        means = class_means(prepared, self.grid.label_values) if self.config.class_mean_prior else None
        program = _GANProgram(self, val or prepared[:1], fingerprint, means)
        trainer = Trainer(settings=settings, progress=reporter,
                          checkpoint_dir=Path(out_dir) / "checkpoints" if out_dir is not None else None)
        result = trainer.run(program, data, resume=resume)
        self.net = result.modules["generator"].eval()
        self.device = torch.device(result.device)
        self.inference = dataclasses.replace(self.inference, device=str(self.device))
        self.references = [(p.brain, p.geometry) for p in prepared]
        self.head_anatomy, self._heads = _head_anatomy(prepared, self.grid), {}
        self.templates = [(p.label > 0, p.geometry) for p in prepared if p.label.any()] \
            if self.config.keep_lesion_templates else []
        self.intensity = IntensityMap.mean_of([p.intensity for p in prepared])
        self.training = training_card(settings, result, fingerprint)
        self._measure_subregions([p.label for p in prepared])
        return self

    # -- state --------------------------------------------------------------------------------------------------

    def _save_state(self, directory: Path) -> dict[str, Any]:
        net = self._require_net()
        files: dict[str, Any] = {
            "weights": checkpoints.save_weights(directory, family=self.family, state={"generator": net.state_dict()}),
            "references": save_masks(directory / "references.npz", self.references),
            "intensity": self.intensity.to_dict() if self.intensity else None,
            "versions": checkpoints.software_versions(),
        }
        if self.templates:
            files["templates"] = save_masks(directory / "lesion_templates.npz", self.templates)
        if self.head_anatomy:
            files["head_anatomy"] = save_masks(directory / "head_anatomy.npz", self.head_anatomy)
        return files

    def _load_state(self, directory: Path, card: Mapping[str, Any]) -> None:
        files = card.get("files", {})
        net = self.build_networks()["generator"]
        weights = checkpoints.load_weights(directory, files.get("weights", {}), family=self.family,
                                           expected=checkpoints.tensor_spec({"generator": net.state_dict()}))
        net.load_state_dict(weights["modules"]["generator"])
        self.net = net.eval()
        self.references = load_masks(directory, files.get("references", {}))
        self.templates = load_masks(directory, files["templates"]) if files.get("templates") else []
        self.head_anatomy = load_masks(directory, files["head_anatomy"], as_bool=False) \
            if files.get("head_anatomy") else []
        self._heads = {}
        self.intensity = IntensityMap.from_dict(files["intensity"])

    # -- synthesis ----------------------------------------------------------------------------------------------

    @torch.inference_mode()
    def generate(self, label: np.ndarray, brain_mask: np.ndarray, geometry: Geometry, *, case_id: str = "gan3d",
                 label_table: LabelTable | None = None, intensity: IntensityMap | None = None,
                 metadata: Mapping[str, Any] | None = None) -> Case:
        """Render the image of one label map on an anatomy background; the output label is ``label`` exactly.

        Args:
            label: integer label ``[z, y, x]`` (values among the task's labels).
            brain_mask: boolean anatomy mask of the same shape.
            geometry: the grid's geometry (kept as the output's geometry).
            case_id: id of the new case.
            label_table: names of the label values (default: the task's).
            intensity: map back to physical units (default: the training set's median map).
            metadata: extra provenance.
        """
        label = np.asarray(label)
        brain = np.asarray(brain_mask, dtype=bool)
        if label.ndim != 3 or label.shape != brain.shape:
            raise InputError(f"label {label.shape} and brain mask {brain.shape} must be 3D arrays of one shape")
        image = self._images([label], [brain])[0]
        return self._case(image, label, brain, geometry, case_id=case_id, label_table=label_table,
                          intensity=intensity, metadata=metadata)

    @torch.inference_mode()
    def _images(self, labels: Sequence[np.ndarray], brains: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Network-unit images ``[C, z, y, x]`` of label/brain pairs of one shape, in one network call."""
        self._require_net()
        lab = np.stack([model_label(np.asarray(x), self.grid.label_values).astype(np.int64) for x in labels])
        cond = self.condition(torch.from_numpy(lab)[:, None].to(self.device),
                              torch.from_numpy(np.stack(brains))[:, None].to(self.device))
        return list(self.render(cond).cpu().numpy())

    def _case(self, image: np.ndarray, label: np.ndarray, brain: np.ndarray, geometry: Geometry, *, case_id: str,
              label_table: LabelTable | None, intensity: IntensityMap | None = None,
              metadata: Mapping[str, Any] | None = None) -> Case:
        """A rendered image (network units) as a labelled case in physical units."""
        imap = intensity or self.intensity
        assert imap is not None
        channels = {c: imap.inverse_array(image[i], c) for i, c in enumerate(self.grid.channels)}
        return Case(case_id=case_id, channels=channels, geometry=geometry, modality=self.task.modality,
                    lesion_kind=self.task.lesion_kind, label=np.asarray(label).astype(np.int16),
                    label_table=label_table or self.task.label_table, brain_mask=brain,
                    metadata={"generator": self.name, "synthetic": True, **dict(metadata or {})})

    def synthesize(self, n: int, *, seed: int = 0, controls: LesionControls | None = None,
                   progress: Reporter | ProgressCallback | None = None) -> Iterator[Case]:
        """New cases: a training anatomy background, a new lesion label from ``controls``, the rendered image.

        Labels are drawn one by one and rendered ``inference.batch_size`` at a time (see :meth:`to`); the cases
        do not depend on the batch size.

        Args:
            n: number of cases.
            seed: makes the draws (background, lesions) reproducible.
            controls: lesion controls (default: the task's lesion kind with default sizes).
            progress: reporter or callback (stage ``synthesize``).
        """
        self._require_net()
        if not self.references:
            raise InputError("this generator has no anatomy references", where=self.name, fix="retrain it")
        reporter = as_reporter(progress)
        controls = controls or LesionControls(kind=self.task.lesion_kind)
        batch_size = self.inference.resolved_batch_size(self.device)
        drawer = LesionDrawer(references=self.references, controls=controls, head_anatomy=self.head_anatomy,
                              templates=self.templates, heads=self._heads, roles=self.label_roles,
                              fractions=self.subregion_fractions)
        jobs = list(lesion_jobs(n, len(self.references), seed))
        pending: list[dict[str, Any]] = []
        # closed on any exit (an error while rendering, a consumer that stops): no drawing thread or process stays
        with contextlib.closing(draw_labels(drawer, jobs, workers=self.inference.label_workers,
                                           depth=batch_size + 1)) as draws:
            for job, label, table, infos in draws:
                brain, geometry = self.references[job.reference]
                if pending and brain.shape != pending[0]["brain"].shape:  # one shape per network call
                    yield from self._render_pending(pending, reporter, n)
                pending.append({"label": label, "brain": brain, "geometry": geometry, "label_table": table,
                                "case_id": f"{self.family}-s{seed}-{job.index:04d}",
                                "metadata": {"seed": seed, "index": job.index, "reference": job.reference,
                                             "controls": controls.to_dict(), "lesions": _plain(infos)}})
                if len(pending) >= batch_size or job.index == n - 1:
                    yield from self._render_pending(pending, reporter, n)

    def _render_pending(self, pending: list[dict[str, Any]], reporter: Reporter, n: int) -> Iterator[Case]:
        """Render drawn labels in one network call and yield their cases (``pending`` is emptied)."""
        images = self._images([p["label"] for p in pending], [p["brain"] for p in pending])
        done = [self._case(image, p.pop("label"), p.pop("brain"), p.pop("geometry"), **p)
                for p, image in zip(pending, images)]
        pending.clear()
        for case in done:
            reporter.report("synthesize", int(case.metadata["index"]) + 1, n, case.case_id)
            yield case

    @torch.inference_mode()
    def resynthesize(self, case: Case, *, edit: str = "move", offset_mm: Sequence[float] | None = None,
                     size_factor: float = 1.5, seed: int = 0, blend: bool = True) -> Case:
        """Re-render a real case with its lesion moved, resized or removed.

        The case is put on the model grid; its label is edited (:func:`edit_label`); the generator renders the
        edited label on the case's own brain mask; with ``blend`` only the region around the old and new lesion
        (plus ``blend_margin_mm``) is replaced, the rest stays the real image. Output intensities use the case's
        own intensity map; the output label is the edited label exactly; the geometry is the case's model grid.

        Args:
            case: a real labelled case of the task's modality and channels.
            edit: ``"move"``, ``"resize"`` or ``"remove"``.
            offset_mm: move: displacement (x, y, z) in mm (None: a random place in the brain).
            size_factor: resize: linear scale factor.
            seed: for a random move.
            blend: keep the real image outside the edited region.
        """
        self._require_net()
        p = prepare_case(case, self.grid)
        new_label = edit_label(p.label, p.brain, p.geometry, edit, offset_mm=offset_mm, size_factor=size_factor,
                               rng=np.random.default_rng(seed))
        rendered = self._images([new_label], [p.brain])[0]
        if blend:
            w = _blend_weight((p.label > 0) | (new_label > 0), p.geometry, self.config.blend_margin_mm)
            rendered = w[None] * rendered + (1.0 - w[None]) * p.image
        channels = {c: p.intensity.inverse_array(rendered[i], c) for i, c in enumerate(self.grid.channels)}
        return Case(case_id=f"{case.case_id}-{edit}", channels=channels, geometry=p.geometry,
                    modality=self.task.modality, lesion_kind=self.task.lesion_kind, label=new_label,
                    label_table=case.label_table, brain_mask=p.brain,
                    metadata={"generator": self.name, "synthetic": True, "source_case": case.case_id, "edit": edit,
                              "offset_mm": list(offset_mm) if offset_mm is not None else None,
                              "size_factor": size_factor if edit == "resize" else None, "blended": blend})


class _GANProgram(TrainingProgram):
    """One pix2pix step: generator (adversarial + L1 [+ feature matching]), then the critic."""

    def __init__(self, gen: GAN3DGenerator, val: Sequence[PreparedCase], fingerprint: Mapping[str, Any],
                 means: np.ndarray | None) -> None:
        self.gen = gen
        self.means = means
        self.val = list(val)[:2]
        self.fingerprint = dict(fingerprint)
        self.adv = PatchAdversarialLoss(criterion="least_squares")

    def signature(self) -> dict[str, Any]:
        return {"family": self.gen.family, "family_version": self.gen.version, "task": self.gen.task.name,
                "config": self.gen.config.to_dict(), "data": self.fingerprint}

    def build(self) -> dict[str, nn.Module]:
        nets = self.gen.build_networks()
        if self.means is not None:
            prior = nets["generator"]
            assert isinstance(prior, _ClassMeanPrior)  # means are fitted only with class_mean_prior
            prior.class_means.copy_(torch.from_numpy(self.means))
        return nets

    def make_optimizers(self, modules: Mapping[str, nn.Module]) -> dict[str, torch.optim.Optimizer]:
        c = self.gen.config
        betas = (c.beta1, 0.999)
        return {"generator": torch.optim.Adam(modules["generator"].parameters(), lr=c.lr_g, betas=betas),
                "discriminator": torch.optim.Adam(modules["discriminator"].parameters(), lr=c.lr_d,
                                                  betas=betas)}

    def train_step(self, ctx: StepContext, batch: Mapping[str, torch.Tensor]) -> dict[str, float]:
        c = self.gen.config
        cond = self.gen.condition(batch["label"], batch["brain"])
        real = batch["image"]
        disc_raw = ctx.raw["discriminator"]
        with ctx.autocast():
            fake = ctx.modules["generator"](cond)
        # generator step: the critic is frozen and called unwrapped (no gradient sync for it here)
        disc_raw.requires_grad_(False)
        with ctx.autocast():
            feats_fake = disc_raw(torch.cat([cond, fake], 1))
            loss_adv = self.adv(feats_fake[-1], target_is_real=True, for_discriminator=False)
        loss_l1 = F.l1_loss(fake.float(), real)
        loss_g = c.lambda_adv * loss_adv.float() + c.lambda_l1 * loss_l1
        loss_fm = torch.zeros((), device=real.device)
        if c.lambda_fm > 0:
            with torch.no_grad(), ctx.autocast():
                feats_real = disc_raw(torch.cat([cond, real], 1))
            for f, r in zip(feats_fake[:-1], feats_real[:-1]):
                loss_fm = loss_fm + F.l1_loss(f.float(), r.float())
            loss_g = loss_g + c.lambda_fm * loss_fm
        ctx.optimize(loss_g, "generator")
        disc_raw.requires_grad_(True)
        # critic step: one forward over real and fake pairs (one DDP call per step)
        n = real.shape[0]
        with ctx.autocast():
            logits = ctx.modules["discriminator"](torch.cat([torch.cat([cond, real], 1),
                                                             torch.cat([cond, fake.detach()], 1)], 0))[-1]
            loss_d = 0.5 * (self.adv(logits[:n], target_is_real=True, for_discriminator=True)
                            + self.adv(logits[n:], target_is_real=False, for_discriminator=True))
        ctx.optimize(loss_d.float(), "discriminator")
        return {k: float(v.detach()) for k, v in (("loss_g", loss_g), ("loss_l1", loss_l1), ("loss_adv", loss_adv),
                                                   ("loss_fm", loss_fm), ("loss_d", loss_d))}

    def validate(self, ctx: StepContext) -> tuple[dict[str, np.ndarray], dict[str, float]]:
        arrays: dict[str, np.ndarray] = {}
        l1s, ratios = [], []
        for i, p in enumerate(self.val):
            lab = torch.from_numpy(p.label.astype(np.int64))[None, None].to(ctx.device)
            cond = self.gen.condition(lab, torch.from_numpy(p.brain)[None, None].to(ctx.device))
            with ctx.autocast():
                fake = self.gen.render(cond, ctx.raw["generator"])[0].cpu().numpy()
            l1s.append(float(np.abs(fake - p.image).mean()))
            lesion, normal = p.label > 0, p.brain & (p.label == 0)
            if lesion.any() and normal.any():  # first channel's lesion/normal contrast, physical units
                phys = p.intensity.inverse_array(fake[0], self.gen.grid.channels[0])
                phys = phys - p.intensity.offset(self.gen.grid.channels[0])  # ratios above the zero point
                ratios.append(float(phys[lesion].mean() / max(phys[normal].mean(), 1e-6)))
            for j, name in enumerate(self.gen.grid.channels):
                arrays[f"val{i}_{name}"] = fake[j].astype(np.float16)
            arrays[f"val{i}_label"] = p.label.astype(np.uint8)
        metrics = {"val_l1": float(np.mean(l1s))} if l1s else {}
        if ratios:
            metrics["val_lesion_ratio"] = float(np.mean(ratios))
        return arrays, metrics


def _plain(value: Any) -> Any:
    """JSON-friendly copy of lesion info (dataclasses, numpy values)."""
    import dataclasses

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _plain(dataclasses.asdict(value))
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist() if value.size <= 16 else f"array{list(value.shape)}"
    if isinstance(value, np.generic):
        return value.item()
    return value
