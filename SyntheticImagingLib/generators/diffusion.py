"""Joint image + mask diffusion: one 3D diffusion model generates the image channels, the brain mask and the lesion
mask together (masks as continuous channels in ``[-1, 1]``, thresholded at 0 on output).

Built from MONAI's generative components: :class:`monai.networks.nets.DiffusionModelUNet`, the schedulers
:class:`~monai.networks.schedulers.DDPMScheduler` (training, ``objective="ddpm"``; sampling with ``sampler="ddpm"``
over all training timesteps, or the much faster ``"ddim"``) and :class:`~monai.networks.schedulers.RFlowScheduler`
(rectified flow: ``objective="rflow"``, training and sampling), :class:`monai.inferers.DiffusionInferer` and, for
latent diffusion, :class:`monai.networks.nets.AutoencoderKL` with :class:`monai.inferers.LatentDiffusionInferer`.

Conditioning on a given mask (generate an image for *this* lesion in *this* brain):

* ``conditioning="repaint"`` (pixel space): inpainting by replacement (RePaint, Lugmayr et al. 2022): at every
  reverse step the mask channels are replaced by the given masks noised to that step, so the image is generated
  around them; ``repaint_jumps > 1`` adds RePaint's resampling for better harmony. Needs no extra training.
* ``conditioning="concat"``: the masks are also concatenated to the network input during training, dropped (set to
  0) with probability ``p_uncond``, so one model samples jointly (null condition) or conditioned (given masks,
  optional classifier-free ``guidance``); this also works in latent space.

Configurations: :data:`TINY_CONFIG` trains and samples on CPU in seconds (tests); :data:`CUDA_LATENT_128_CONFIG`
is a real 128^3 latent rectified-flow configuration for a CUDA GPU (AutoencoderKL 4x downsampling to a 32^3x4
latent, then a 3-level DiffusionModelUNet with attention on the two coarse levels), e.g.::

    train_generator(DATA, task="brain-tumor-mri", family="diffusion", out_dir="model", steps=60000,
                    batch_size=2, device="cuda", **CUDA_LATENT_128_CONFIG)

Its memory use and speed have not been measured in this project's CI (CPU only).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
from collections.abc import Generator as GeneratorOf
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from monai.inferers import DiffusionInferer, LatentDiffusionInferer
from monai.networks.nets import AutoencoderKL, DiffusionModelUNet
from monai.networks.schedulers import DDIMScheduler, DDPMScheduler, RFlowScheduler
from torch import nn

from ..cases import Case, Geometry, LabelTable, Modality
from ..errors import InputError
from ..lesions.controls import LesionControls
from ..lesions.draws import LesionDrawer, LesionJob, draw_labels, lesion_jobs
from ..preprocessing import IntensityMap
from ..progress import ProgressCallback, Reporter, as_reporter
from ..tasks import TaskPreset
from ..training import checkpoints, distributed, prepare_training_data, training_card
from ..training.data import GridSettings, PreparedCase, TrainingData, data_fingerprint, load_masks, save_masks
from ..training.loop import StepContext, Trainer, TrainingProgram, TrainSettings
from .base import Generator, register_generator
from .config import DiffusionConfig
from .gan3d import model_label

__all__ = ["DiffusionGenerator", "DiffusionConfig", "TINY_CONFIG", "CUDA_LATENT_128_CONFIG"]

#: Trains and samples on CPU in seconds (a 16^3 grid, two UNet levels, 10 DDIM steps): for tests and demos.
TINY_CONFIG: dict[str, Any] = {"shape": [16, 16, 16], "model_channels": [16, 32], "attention_levels": [False, False],
                               "num_res_blocks": 1, "norm_num_groups": 8, "inference_steps": 10}

#: A real configuration for one CUDA GPU: 128^3 at 1.5 mm, latent rectified flow, mask-conditioned by concat.
CUDA_LATENT_128_CONFIG: dict[str, Any] = {
    "spacing": [1.5, 1.5, 1.5], "shape": [128, 128, 128],
    "latent_channels": 4, "autoencoder_channels": [64, 128, 128], "autoencoder_steps": 20000, "kl_weight": 1e-6,
    "model_channels": [128, 256, 512], "attention_levels": [False, True, True], "num_res_blocks": 2,
    "norm_num_groups": 32, "num_head_channels": 32, "objective": "rflow", "sampler": "rflow",
    "inference_steps": 30, "conditioning": "concat", "p_uncond": 0.15, "lr": 1e-4,
}


class _LatentScale(nn.Module):
    """Holds the latent scale factor (1 / std of the latents) as a buffer, so checkpoints carry it."""

    scale: torch.Tensor
    ready: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("scale", torch.ones(()))
        self.register_buffer("ready", torch.zeros((), dtype=torch.bool))


def _label_from_channels(channels: np.ndarray, values: Sequence[int]) -> np.ndarray:
    """Lesion channels ``[K, ...]`` in ``[-1, 1]`` -> label map: the value of the strongest channel above 0."""
    best = np.argmax(channels, axis=0)
    label = np.asarray(values, dtype=np.int16)[best]
    return np.where(channels.max(axis=0) > 0, label, 0).astype(np.int16)


@register_generator
class DiffusionGenerator(Generator):
    """Joint image + mask diffusion (see the module docstring).

    Args:
        task: task preset.
        config: settings (:class:`~.config.DiffusionConfig`; None: the defaults).
        **settings: single settings by name, over ``config``; e.g. ``**TINY_CONFIG`` or
            ``**CUDA_LATENT_128_CONFIG``.

    Example:
        >>> gen = DiffusionGenerator(task="brain-tumor-mri", **TINY_CONFIG)  # doctest: +SKIP
        >>> gen.fit(cases, settings=TrainSettings(steps=50, device="cpu"))  # doctest: +SKIP
        >>> case = next(gen.synthesize(1, seed=0))  # image channels + label + brain mask  # doctest: +SKIP
    """

    family = "diffusion"
    version = "1"
    trainable = True
    config_class = DiffusionConfig
    config: DiffusionConfig

    def __init__(self, *, task: str | TaskPreset = "brain-tumor-mri", config: DiffusionConfig | None = None,
                 **settings: Any) -> None:
        super().__init__(task=task, config=config, **settings)
        self.grid = GridSettings.from_task(self.task, spacing=self.config.spacing, shape=self.config.shape)
        self._check_config()
        self.nets: dict[str, nn.Module] = {}
        self.references: list[tuple[np.ndarray, Geometry]] = []
        self.templates: list[tuple[np.ndarray, Geometry]] = []
        self.intensity: IntensityMap | None = None

    # -- layout ---------------------------------------------------------------------------------------------

    @property
    def latent(self) -> bool:
        """True for latent diffusion (AutoencoderKL first stage)."""
        return self.config.latent

    @property
    def n_image(self) -> int:
        """Image channels."""
        return len(self.grid.channels)

    @property
    def n_mask(self) -> int:
        """Mask channels: brain + one per lesion label value."""
        return 1 + len(self.grid.label_values)

    @property
    def n_total(self) -> int:
        """Channels generated jointly."""
        return self.n_image + self.n_mask

    @property
    def space_shape(self) -> tuple[int, ...]:
        """Spatial shape the diffusion runs on (the grid, or the latent grid)."""
        if not self.latent:
            return tuple(self.grid.shape)
        f = 2 ** (len(self.config.autoencoder_channels) - 1)
        return tuple(s // f for s in self.grid.shape)

    def _check_config(self) -> None:
        """The check of the settings that needs the grid (the rest are :class:`~.config.DiffusionConfig`'s)."""
        c = self.config
        levels = len(c.model_channels) - 1 + (len(c.autoencoder_channels) - 1 if self.latent else 0)
        if any(s % (2 ** levels) for s in self.grid.shape):
            raise InputError(f"the grid {self.grid.shape} must be divisible by {2 ** levels} for these networks",
                             fix="choose a shape divisible by 2^(levels)")

    def build_networks(self) -> dict[str, nn.Module]:
        """Fresh networks (CPU): ``unet`` (+ ``autoencoder`` and ``latent_scale`` in latent mode).

        Raises:
            InputError: MONAI's attention blocks need ``einops``, and it is not installed.
        """
        try:
            import einops  # noqa: F401  (MONAI imports it lazily, deep inside the UNet's attention blocks)
        except ImportError:
            raise InputError("the diffusion family needs the 'einops' package (used by MONAI's attention blocks)",
                             fix="pip install einops") from None
        c = self.config
        space_channels = c.latent_channels if self.latent else self.n_total
        cond_channels = self.n_mask if c.conditioning == "concat" else 0
        nets: dict[str, nn.Module] = {"unet": DiffusionModelUNet(
            spatial_dims=3, in_channels=space_channels + cond_channels, out_channels=space_channels,
            channels=list(c.model_channels), attention_levels=list(c.attention_levels),
            num_res_blocks=c.num_res_blocks, norm_num_groups=c.norm_num_groups,
            num_head_channels=c.num_head_channels)}
        if self.latent:
            ae_ch = list(c.autoencoder_channels)
            nets["autoencoder"] = AutoencoderKL(
                spatial_dims=3, in_channels=self.n_total, out_channels=self.n_total, channels=ae_ch,
                latent_channels=c.latent_channels, num_res_blocks=1, attention_levels=[False] * len(ae_ch),
                norm_num_groups=min(c.norm_num_groups, min(ae_ch)), with_encoder_nonlocal_attn=False,
                with_decoder_nonlocal_attn=False)
            nets["latent_scale"] = _LatentScale()
        return nets

    def training_scheduler(self) -> DDPMScheduler | RFlowScheduler:
        """The noise schedule used in training."""
        c = self.config
        if c.objective == "rflow":
            return RFlowScheduler(num_train_timesteps=c.train_timesteps, use_discrete_timesteps=True,
                                  sample_method="logit-normal", use_timestep_transform=True,
                                  base_img_size_numel=int(np.prod(self.space_shape)), spatial_dim=3)
        return DDPMScheduler(num_train_timesteps=c.train_timesteps, schedule="scaled_linear_beta",
                             beta_start=0.0015, beta_end=0.0195, clip_sample=not self.latent)

    def sampling_scheduler(self) -> DDPMScheduler | DDIMScheduler | RFlowScheduler:
        """The sampler, with its inference timesteps set."""
        c = self.config
        steps = c.inference_steps
        if c.sampler == "rflow":
            flow = self.training_scheduler()
            assert isinstance(flow, RFlowScheduler)  # the rflow sampler goes with the rflow objective (checked)
            flow.set_timesteps(num_inference_steps=steps, input_img_size_numel=int(np.prod(self.space_shape)))
            return flow
        if c.sampler == "ddim":
            ddim = DDIMScheduler(num_train_timesteps=c.train_timesteps, schedule="scaled_linear_beta",
                                 beta_start=0.0015, beta_end=0.0195, clip_sample=not self.latent)
            ddim.set_timesteps(steps)
            return ddim
        s = self.training_scheduler()  # MONAI's DDPM step assumes consecutive timesteps: use all of them
        s.set_timesteps(c.train_timesteps)
        return s

    # -- units ----------------------------------------------------------------------------------------------

    def _image_to_unit(self, image: torch.Tensor) -> torch.Tensor:
        # MR network units span [-1, 2] (1.5x the 99.5th percentile); diffusion wants [-1, 1]
        return (image + 1.0) / 1.5 - 1.0 if self.grid.modality == Modality.MR else image

    def _unit_to_image(self, unit: np.ndarray) -> np.ndarray:
        image = (unit + 1.0) * 1.5 - 1.0 if self.grid.modality == Modality.MR else unit
        return np.clip(image, -1.0, 2.0 if self.grid.modality == Modality.MR else 1.0)

    def masks_tensor(self, label: torch.Tensor, brain: torch.Tensor) -> torch.Tensor:
        """``[B, 1 + K, ...]`` mask channels in ``[-1, 1]`` (brain, then one per lesion label value)."""
        chans = [brain.float()] + [(label == v).float() for v in self.grid.label_values]
        return torch.cat(chans, dim=1) * 2.0 - 1.0

    def joint_tensor(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """``[B, C + 1 + K, ...]``: image channels (in ``[-1, 1]``) and mask channels."""
        return torch.cat([self._image_to_unit(batch["image"]), self.masks_tensor(batch["label"], batch["brain"])], 1)

    def condition_tensor(self, masks: torch.Tensor | None, batch: int) -> torch.Tensor | None:
        """Concat condition on the diffusion grid (zeros = no condition); None for RePaint models."""
        if self.config.conditioning != "concat":
            return None
        if masks is None:
            return torch.zeros((batch, self.n_mask, *self.space_shape), device=self.device)
        if tuple(masks.shape[2:]) != self.space_shape:
            masks = F.interpolate(masks, size=self.space_shape, mode="area")
        return masks

    # -- training -------------------------------------------------------------------------------------------

    def fit(self, cases: Sequence[Case], *, progress: Reporter | ProgressCallback | None = None,
            out_dir: str | os.PathLike[str] | None = None, resume: bool = False,
            settings: TrainSettings | None = None, validation: Sequence[Case] | None = None) -> DiffusionGenerator:
        """Train (the autoencoder first in latent mode, then the diffusion model) within ``settings.steps``.

        Args:
            cases: training cases or dataset.
            progress: reporter or callback; its cancel stops after a checkpoint.
            out_dir: folder for checkpoints and previews (None: neither).
            resume: continue from the checkpoint in ``out_dir``.
            settings: steps, batch size, device, AMP, seed.
            validation: unused for scoring (previews are unconditional samples); kept for a uniform API.
        """
        settings = settings or TrainSettings()
        if self.latent and self.config.autoencoder_steps >= settings.steps:
            raise InputError(f"autoencoder_steps ({self.config.autoencoder_steps}) leaves no step of the "
                             f"{settings.steps} for the diffusion model", fix="raise steps or lower autoencoder_steps")
        reporter = as_reporter(progress)
        prepared, _ = prepare_training_data(cases, validation, self.grid, settings, reporter)
        fingerprint = data_fingerprint(cases, prepared, self.grid)
        data = TrainingData(prepared, seed=settings.seed, augment=self.config.augment)
        trainer = Trainer(settings=settings, progress=reporter,
                          checkpoint_dir=Path(out_dir) / "checkpoints" if out_dir is not None else None)
        result = trainer.run(_DiffusionProgram(self, fingerprint), data, resume=resume)
        self.nets = {k: m.eval() for k, m in result.modules.items()}
        self.device = torch.device(result.device)
        self.inference = dataclasses.replace(self.inference, device=str(self.device))
        self._set_references(prepared)
        self.training = training_card(settings, result, fingerprint)
        self._measure_subregions([p.label for p in prepared])
        return self

    def _set_references(self, prepared: Sequence[PreparedCase]) -> None:
        self.references = [(p.brain, p.geometry) for p in prepared]
        self.templates = [(p.label > 0, p.geometry) for p in prepared if p.label.any()]
        self.intensity = IntensityMap.mean_of([p.intensity for p in prepared])

    # -- state ----------------------------------------------------------------------------------------------

    def _save_state(self, directory: Path) -> dict[str, Any]:
        self._require_nets()
        files: dict[str, Any] = {
            "weights": checkpoints.save_weights(directory, family=self.family,
                                                state={k: m.state_dict() for k, m in self.nets.items()}),
            "references": save_masks(directory / "references.npz", self.references),
            "intensity": self.intensity.to_dict() if self.intensity else None,
            "versions": checkpoints.software_versions(),
        }
        if self.templates:
            files["templates"] = save_masks(directory / "lesion_templates.npz", self.templates)
        return files

    def _load_state(self, directory: Path, card: Mapping[str, Any]) -> None:
        files = card.get("files", {})
        nets = self.build_networks()
        weights = checkpoints.load_weights(directory, files.get("weights", {}), family=self.family,
                                           expected=checkpoints.tensor_spec({k: m.state_dict()
                                                                             for k, m in nets.items()}))
        for k, m in nets.items():
            m.load_state_dict(weights["modules"][k])
        self.nets = {k: m.eval() for k, m in nets.items()}
        self.references = load_masks(directory, files.get("references", {}))
        self.templates = load_masks(directory, files["templates"]) if files.get("templates") else []
        self.intensity = IntensityMap.from_dict(files["intensity"])

    def _require_nets(self) -> dict[str, nn.Module]:
        if not self.nets or self.intensity is None:
            raise InputError("this generator is not trained", where=self.name,
                             fix="train it (fit / `synthetic-imaging train`) or load a trained folder")
        return self.nets

    def _networks(self) -> list[nn.Module]:
        return list(self.nets.values())

    def _sampling_nets(self) -> dict[str, nn.Module]:
        """The trained networks, the denoiser wrapped to run under the synthesis settings (the schedulers and the
        autoencoder stay fp32)."""
        nets = self._require_nets()
        return {**nets, "unet": self._for_synthesis(nets["unet"])}

    # -- sampling -------------------------------------------------------------------------------------------

    @torch.inference_mode()
    def sample_tensor(self, *, seed: int, masks: torch.Tensor | None = None, nets: Mapping[str, nn.Module] | None = None
                      ) -> torch.Tensor:
        """One joint sample ``[1, C + 1 + K, *grid]`` in diffusion units (``[-1, 1]``).

        Args:
            seed: seeds the noise (the same seed gives the same sample on one device).
            masks: ``[1, 1 + K, *grid]`` given mask channels (None: masks are generated too).
            nets: networks to use (default: the trained ones).
        """
        nets = nets or self._sampling_nets()
        unet = nets["unet"]
        sampler = self.sampling_scheduler()
        space_channels = self.config.latent_channels if self.latent else self.n_total
        gen = torch.Generator().manual_seed(int(seed))
        noise = torch.randn((1, space_channels, *self.space_shape), generator=gen).to(self.device)
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):  # sampler noise from the seed, without touching the caller's RNG
            torch.manual_seed(int(seed))
            if masks is not None and self.config.conditioning == "repaint":
                return self._repaint(unet, sampler, noise, masks.to(self.device))
            cond = self.condition_tensor(masks.to(self.device) if masks is not None else None, 1)
            mode = "concat" if cond is not None else "crossattn"
            cfg = self.config.guidance if (masks is not None and cond is not None) else None
            # MONAI annotates diffusion_model as DiffusionModelUNet but only calls it: here it is the synthesis
            # wrapper (precision, layout, compilation) around one, hence the arg-type ignores below.
            if self.latent:
                holder, autoencoder = nets["latent_scale"], nets["autoencoder"]
                assert isinstance(holder, _LatentScale) and isinstance(autoencoder, AutoencoderKL)
                inferer = LatentDiffusionInferer(sampler, scale_factor=float(holder.scale))
                out = inferer.sample(input_noise=noise, autoencoder_model=autoencoder,
                                     diffusion_model=unet,  # type: ignore[arg-type]
                                     scheduler=sampler, conditioning=cond, mode=mode, verbose=False,
                                     cfg=cfg, cfg_fill_value=0.0)
            else:
                out = DiffusionInferer(sampler).sample(input_noise=noise,
                                                       diffusion_model=unet,  # type: ignore[arg-type]
                                                       scheduler=sampler, conditioning=cond, mode=mode, verbose=False,
                                                       cfg=cfg, cfg_fill_value=0.0)
        assert isinstance(out, torch.Tensor)
        if masks is not None:
            out[:, self.n_image:] = masks.to(out.device)
        return out

    def _repaint(self, unet: nn.Module, sampler: Any, noise: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """RePaint: known mask channels replaced by their noised version at every step (+ optional resampling)."""
        x = noise
        known = slice(self.n_image, self.n_total)
        jumps = max(1, self.config.repaint_jumps)
        rflow = isinstance(sampler, RFlowScheduler)
        timesteps = sampler.timesteps
        nexts = torch.cat((timesteps[1:], torch.tensor([0], dtype=timesteps.dtype)))
        for t, nt in zip(timesteps, nexts):
            t_batch = torch.full((1,), t.item(), device=self.device, dtype=timesteps.dtype)
            for j in range(jumps):
                x = x.clone()
                x[:, known] = sampler.add_noise(masks, torch.randn_like(masks), t_batch.long() if not rflow
                                                else t_batch)
                out = unet(x, timesteps=t_batch)
                prev = sampler.step(out, t, x, nt)[0] if rflow else sampler.step(out, int(t), x)[0]
                if j < jumps - 1:  # RePaint resampling: diffuse x_{t-1} back to x_t and redo the step
                    a_t = sampler.alphas_cumprod[int(t)]
                    a_prev = self._alpha_prev(sampler, int(t))
                    ratio = (a_t / a_prev).to(self.device)
                    x = ratio.sqrt() * prev + (1 - ratio).sqrt() * torch.randn_like(prev)
                else:
                    x = prev
        x[:, known] = masks
        return x

    @staticmethod
    def _alpha_prev(sampler: Any, t: int) -> torch.Tensor:
        if isinstance(sampler, DDIMScheduler):
            prev = t - sampler.num_train_timesteps // sampler.num_inference_steps
            return sampler.alphas_cumprod[prev] if prev >= 0 else sampler.final_alpha_cumprod
        return sampler.alphas_cumprod[t - 1] if t > 0 else sampler.one

    def _to_case(self, sample: torch.Tensor, geometry: Geometry, *, case_id: str, label: np.ndarray | None,
                 brain: np.ndarray | None, label_table: LabelTable | None, metadata: Mapping[str, Any]) -> Case:
        y = sample[0].float().cpu().numpy()
        image = self._unit_to_image(y[: self.n_image])
        assert self.intensity is not None
        channels = {c: self.intensity.inverse_array(image[i], c) for i, c in enumerate(self.grid.channels)}
        if label is None:
            label = _label_from_channels(y[self.n_image + 1:], self.grid.label_values)
        if brain is None:
            brain = (y[self.n_image] > 0) | (label > 0)
        return Case(case_id=case_id, channels=channels, geometry=geometry, modality=self.task.modality,
                    lesion_kind=self.task.lesion_kind, label=label.astype(np.int16),
                    label_table=label_table or self.task.label_table, brain_mask=brain,
                    metadata={"generator": self.name, "synthetic": True, **dict(metadata)})

    def generate(self, label: np.ndarray, brain_mask: np.ndarray, geometry: Geometry, *, seed: int = 0,
                 case_id: str = "diffusion", label_table: LabelTable | None = None,
                 metadata: Mapping[str, Any] | None = None) -> Case:
        """Sample an image for a given lesion label and brain mask (the output label is ``label`` exactly).

        Args:
            label: integer label on the model grid (values among the task's labels).
            brain_mask: boolean brain mask on the model grid.
            geometry: the grid's geometry.
            seed: noise seed.
            case_id: id of the new case.
            label_table: label names (default: the task's).
            metadata: extra provenance.
        """
        self._require_nets()
        label = np.asarray(label)
        brain = np.asarray(brain_mask, dtype=bool)
        if label.shape != tuple(self.grid.shape) or brain.shape != label.shape:
            raise InputError(f"label {label.shape} and brain mask {brain.shape} must be on the model grid "
                             f"{tuple(self.grid.shape)}", fix="resample them onto the model grid first")
        cond_label = model_label(label, self.grid.label_values)
        masks = self.masks_tensor(torch.from_numpy(cond_label.astype(np.int64))[None, None],
                                  torch.from_numpy(brain)[None, None])
        out = self.sample_tensor(seed=seed, masks=masks)
        return self._to_case(out, geometry, case_id=case_id, label=label.astype(np.int16), brain=brain,
                             label_table=label_table, metadata={"seed": seed, "conditioned": True,
                                                                **dict(metadata or {})})

    def synthesize(self, n: int, *, seed: int = 0, controls: LesionControls | None = None,
                   progress: Reporter | ProgressCallback | None = None) -> Iterator[Case]:
        """New cases. Without ``controls`` image and masks are sampled jointly; with ``controls`` a new lesion
        label is drawn on a training anatomy background and the image is sampled conditioned on it.

        Args:
            n: number of cases.
            seed: reproducibility seed.
            controls: lesion controls (None: joint sampling of image and masks).
            progress: reporter or callback (stage ``synthesize``).
        """
        self._require_nets()
        reporter = as_reporter(progress)
        jobs = list(lesion_jobs(n, len(self.references), seed))
        if controls is None:
            # a generator (not just an iterator): closing it stops the background drawing
            draws: GeneratorOf[tuple[LesionJob, Any, Any, Any], None, None] = ((job, None, None, None) for job in jobs)
        else:  # new labels drawn ahead, in the background, while the denoiser samples
            drawer = LesionDrawer(references=self.references, controls=controls, templates=self.templates,
                                  roles=self.label_roles, fractions=self.subregion_fractions)
            draws = draw_labels(drawer, jobs, workers=self.inference.label_workers, depth=2)
        with contextlib.closing(draws):  # no drawing thread or process outlives an error or an early stop
            for job, label, table, _ in draws:
                brain, geometry = self.references[job.reference]
                case_id = f"{self.family}-s{seed}-{job.index:04d}"
                sample_seed = job.seed % 2**31
                if label is None:
                    out = self.sample_tensor(seed=sample_seed)
                    case = self._to_case(out, geometry, case_id=case_id, label=None, brain=None, label_table=None,
                                         metadata={"seed": seed, "index": job.index, "conditioned": False})
                else:
                    case = self.generate(label, brain, geometry, seed=sample_seed, case_id=case_id,
                                         label_table=table,
                                         metadata={"index": job.index, "reference": job.reference,
                                                   "controls": controls.to_dict() if controls else None})
                reporter.report("synthesize", job.index + 1, n, case.case_id)
                yield case


class _DiffusionProgram(TrainingProgram):
    """Autoencoder steps first (latent mode), then diffusion steps (noise or velocity regression)."""

    def __init__(self, gen: DiffusionGenerator, fingerprint: Mapping[str, Any]) -> None:
        self.gen = gen
        self.fingerprint = dict(fingerprint)
        self.scheduler = gen.training_scheduler()

    def signature(self) -> dict[str, Any]:
        return {"family": self.gen.family, "family_version": self.gen.version, "task": self.gen.task.name,
                "config": self.gen.config.to_dict(), "data": self.fingerprint}

    def build(self) -> dict[str, nn.Module]:
        return self.gen.build_networks()

    def make_optimizers(self, modules: Mapping[str, nn.Module]) -> dict[str, torch.optim.Optimizer]:
        c = self.gen.config
        opts: dict[str, torch.optim.Optimizer] = {"unet": torch.optim.AdamW(modules["unet"].parameters(), lr=c.lr)}
        if "autoencoder" in modules:
            opts["autoencoder"] = torch.optim.AdamW(modules["autoencoder"].parameters(),
                                                    lr=c.lr_autoencoder)
        return opts

    def train_step(self, ctx: StepContext, batch: Mapping[str, torch.Tensor]) -> dict[str, float]:
        gen, c = self.gen, self.gen.config
        x = gen.joint_tensor(batch)
        if gen.latent and ctx.step < c.autoencoder_steps:
            return self._autoencoder_step(ctx, x)
        target_space = x
        if gen.latent:
            ae, holder = ctx.raw["autoencoder"], ctx.raw["latent_scale"]
            assert isinstance(ae, AutoencoderKL) and isinstance(holder, _LatentScale)
            ae.requires_grad_(False)
            with torch.no_grad():
                z = ae.encode_stage_2_inputs(x)
                if not bool(holder.ready):  # first diffusion step: scale latents to unit variance (all ranks agree)
                    std = distributed.all_reduce_mean({"std": float(z.float().std())}, ctx.device)["std"]
                    holder.scale.fill_(1.0 / max(std, 1e-6))
                    holder.ready.fill_(True)
            target_space = z * holder.scale
        noise = torch.randn_like(target_space)
        b = target_space.shape[0]
        if isinstance(self.scheduler, RFlowScheduler):
            timesteps = self.scheduler.sample_timesteps(target_space)
        else:
            timesteps = torch.randint(0, self.scheduler.num_train_timesteps, (b,), device=ctx.device).long()
        cond = None
        if c.conditioning == "concat":
            masks = gen.masks_tensor(batch["label"], batch["brain"])
            if tuple(masks.shape[2:]) != gen.space_shape:
                masks = F.interpolate(masks, size=gen.space_shape, mode="area")
            keep = (torch.rand((b, 1, 1, 1, 1), device=ctx.device) >= c.p_uncond).float()
            cond = masks * keep  # dropped conditions are zeros: the "no mask given" input
        with ctx.autocast():
            pred = DiffusionInferer(self.scheduler)(inputs=target_space,
                                                    diffusion_model=ctx.modules["unet"],  # type: ignore[arg-type]  # (*)
                                                    noise=noise, timesteps=timesteps, condition=cond,
                                                    mode="concat" if cond is not None else "crossattn")
            # (*) MONAI annotates DiffusionModelUNet, but only calls it: here DDP-wrapped in distributed runs
        target = noise if not isinstance(self.scheduler, RFlowScheduler) else target_space - noise
        loss = F.mse_loss(pred.float(), target.float())
        ctx.optimize(loss, "unet", max_grad_norm=1.0)
        return {"loss": float(loss.detach())}

    def _autoencoder_step(self, ctx: StepContext, x: torch.Tensor) -> dict[str, float]:
        with ctx.autocast():
            recon, mu, sigma = ctx.modules["autoencoder"](x)
        recon, mu, sigma = recon.float(), mu.float(), sigma.float()
        l1 = F.l1_loss(recon, x)
        kl = 0.5 * torch.sum(mu.pow(2) + sigma.pow(2) - torch.log(sigma.pow(2) + 1e-12) - 1,
                             dim=list(range(1, mu.ndim))).mean()
        loss = l1 + self.gen.config.kl_weight * kl
        ctx.optimize(loss, "autoencoder", max_grad_norm=1.0)
        return {"loss_ae": float(l1.detach()), "loss_kl": float(kl.detach())}

    def validate(self, ctx: StepContext) -> tuple[dict[str, np.ndarray], dict[str, float]]:
        gen = self.gen
        if gen.latent and not bool(ctx.raw["latent_scale"].ready):
            return {}, {}
        saved = gen.device
        gen.device = ctx.device
        try:
            out = gen.sample_tensor(seed=0, nets=ctx.raw)[0].float().cpu().numpy()
        finally:
            gen.device = saved
        arrays = {f"sample_{c}": out[i].astype(np.float16) for i, c in enumerate(gen.grid.channels)}
        arrays["sample_brain"] = (out[gen.n_image] > 0).astype(np.uint8)
        lesion = _label_from_channels(out[gen.n_image + 1:], gen.grid.label_values)
        arrays["sample_label"] = lesion.astype(np.uint8)
        return arrays, {"sample_lesion_fraction": float((lesion > 0).mean()),
                        "sample_finite": float(math.isfinite(float(out.sum())))}
