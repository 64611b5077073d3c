"""Typed settings of the generator families: one frozen, keyword-only dataclass per family.

Each family's :class:`~.base.Generator` subclass names its settings class in ``config_class``; the generator's
``config`` is an instance of it. Settings are checked when the instance is made (types and ranges; checks that
need the task's grid stay in the generator). The model card stores :meth:`GeneratorConfig.to_dict` (a JSON dict
of settings, sequences as lists) and reads it back with :meth:`GeneratorConfig.from_dict`::

    config = GanConfig(architecture="unet", spacing=(4.0, 4.0, 4.0))
    gen = create_generator("gan3d", task="brain-tumor-mri", config=config)
    gen = create_generator("gan3d", task="brain-tumor-mri", architecture="unet")   # the same, by keywords
    GanConfig.from_dict(card["config"]) == gen.config

This module imports neither torch nor MONAI, so settings can be listed and checked without them.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from typing import Any, ClassVar, Literal, TypeVar, Union

from ..errors import InputError

__all__ = ["GeneratorConfig", "GanConfig", "DiffusionConfig", "LabelToImageConfig", "LesionInsertionConfig",
           "CopyPasteConfig", "HemorrhageAge"]

C = TypeVar("C", bound="GeneratorConfig")

#: CT hemorrhage HU model (see :data:`~.intensity.HEMORRHAGE_HU_BY_AGE`).
HemorrhageAge = Literal["acute", "subacute", "chronic"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class GeneratorConfig:
    """Base of the families' settings: type checks and conversion, JSON form, overrides.

    ``__post_init__`` converts every field to its annotated type (JSON lists to tuples, integral numbers to
    ``int``, numbers to ``float``) and raises :class:`~SyntheticImagingLib.errors.InputError` for a value of
    the wrong type or outside a ``Literal``'s choices. Subclasses extend it with their range checks.
    """

    #: The family the settings belong to (error messages).
    family: ClassVar[str] = "generator"
    #: Settings a model card written before they existed takes: the default of that time (where it differs from
    #: today's), so a saved generator reloads as it was saved. Applied by :func:`~.base.load_generator` only.
    card_defaults: ClassVar[dict[str, Any]] = {}

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = _convert(getattr(self, f.name), hints[f.name], f"{self.family} setting {f.name!r}")
            object.__setattr__(self, f.name, value)

    @classmethod
    def known(cls) -> list[str]:
        """The setting names, sorted."""
        return sorted(f.name for f in dataclasses.fields(cls))

    def to_dict(self) -> dict[str, Any]:
        """JSON form for the model card: every setting, sequences as lists."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls: type[C], settings: Mapping[str, Any]) -> C:
        """Settings from a model card's ``config`` (or keyword overrides); missing ones take their defaults.

        Raises:
            InputError: an unknown setting (the message lists the known ones) or an invalid value.
        """
        unknown = set(settings) - set(cls.known())
        if unknown:
            raise InputError(f"unknown settings for generator {cls.family!r}: {sorted(unknown)}",
                             fix=f"known settings: {cls.known()}")
        return cls(**settings)

    def replace(self: C, **changes: Any) -> C:
        """A copy with some settings changed (checked like :meth:`from_dict`)."""
        return type(self).from_dict({**self.to_dict(), **changes})

    # -- range checks for subclasses ---------------------------------------------------------------------------

    def _fail(self, name: str, problem: str, fix: str) -> typing.NoReturn:
        raise InputError(f"{self.family} setting {name!r} {problem} (got {getattr(self, name)!r})", fix=fix)

    def _at_least(self, minimum: float, *names: str) -> None:
        for name in names:
            value = getattr(self, name)
            for v in value if isinstance(value, tuple) else (value,):
                if v is not None and v < minimum:
                    self._fail(name, f"must be at least {minimum}", f"use a value >= {minimum}")

    def _positive(self, *names: str) -> None:
        for name in names:
            value = getattr(self, name)
            for v in value if isinstance(value, tuple) else (value,):
                if v is not None and not v > 0:
                    self._fail(name, "must be positive", "use a value > 0")

    def _fraction(self, *names: str, below_one: bool = False) -> None:
        for name in names:
            v = getattr(self, name)
            if not (0.0 <= v < 1.0 if below_one else 0.0 <= v <= 1.0):
                self._fail(name, f"must lie in [0, 1{')' if below_one else ']'}",
                           f"use a value from 0 to {'below ' if below_one else ''}1")

    def _length(self, name: str, n: int | None = None, *, non_empty: bool = True) -> None:
        value = getattr(self, name)
        if value is None:
            return
        if n is not None and len(value) != n:
            self._fail(name, f"needs {n} values", f"give {n} values, one per axis")
        if non_empty and not value:
            self._fail(name, "needs at least one value", "give one value per level")


@dataclasses.dataclass(frozen=True, kw_only=True)
class GanConfig(GeneratorConfig):
    """Settings of the label-conditioned 3D GAN (``gan3d``): grid, networks, losses, optimiser, synthesis.

    Args:
        architecture: ``"segresnet"`` (trilinear upsampling), ``"unet"`` (faster on CPU, transposed
            convolutions) or ``"spade"`` (the label modulates every normalisation layer).
        spacing: model grid spacing in mm (None: the task's).
        shape: model grid shape (None: the task's).
        patch_size: training crop and sliding-window size (None: whole volumes).
        channels: widths per level (SegResNet/U-Net).
        num_res_units: U-Net residual units.
        spade_channels: SPADE decoder widths, coarse to fine.
        spade_hidden: SPADE modulation width.
        disc_channels: PatchGAN critic width.
        disc_layers: PatchGAN critic depth.
        lambda_l1: L1 loss weight.
        lambda_adv: adversarial loss weight.
        lambda_fm: feature-matching loss weight (0: off).
        lr_g: generator Adam learning rate.
        lr_d: critic Adam learning rate.
        beta1: Adam beta1.
        augment: flips and gains in training.
        keep_lesion_templates: keep the training lesion masks as shapes for synthesis.
        sw_overlap: sliding-window overlap.
        blend_margin_mm: ``resynthesize()`` blend width.
        class_mean_prior: the network predicts a residual over the training set's mean intensity of each region
            class (outside brain, brain, each lesion value), which it learns much faster than absolute levels.
    """

    family: ClassVar[str] = "gan3d"

    architecture: Literal["segresnet", "unet", "spade"] = "segresnet"
    spacing: tuple[float, ...] | None = None
    shape: tuple[int, ...] | None = None
    patch_size: tuple[int, ...] | None = None
    channels: tuple[int, ...] = (16, 32, 64, 128)
    num_res_units: int = 1
    spade_channels: tuple[int, ...] = (64, 32, 16)
    spade_hidden: int = 32
    disc_channels: int = 16
    disc_layers: int = 3
    lambda_l1: float = 100.0
    lambda_adv: float = 1.0
    lambda_fm: float = 0.0
    lr_g: float = 5e-4
    lr_d: float = 2e-4
    beta1: float = 0.5
    augment: bool = True
    keep_lesion_templates: bool = True
    sw_overlap: float = 0.25
    blend_margin_mm: float = 8.0
    class_mean_prior: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("spacing", "shape", "patch_size"):
            self._length(name, 3)
        self._length("channels")
        self._length("spade_channels")
        self._positive("spacing", "shape", "patch_size", "channels", "spade_channels", "spade_hidden",
                       "disc_channels", "disc_layers", "lr_g", "lr_d")
        self._at_least(0, "num_res_units", "lambda_l1", "lambda_adv", "lambda_fm", "blend_margin_mm")
        self._fraction("beta1", "sw_overlap", below_one=True)


@dataclasses.dataclass(frozen=True, kw_only=True)
class DiffusionConfig(GeneratorConfig):
    """Settings of the joint image + mask diffusion family (``diffusion``).

    Args:
        spacing: model grid spacing in mm (None: the task's).
        shape: model grid shape (None: the task's).
        model_channels: DiffusionModelUNet widths per level.
        attention_levels: self-attention per level (one entry per ``model_channels`` level).
        num_res_blocks: residual blocks per level.
        norm_num_groups: group-norm groups.
        num_head_channels: attention head width.
        objective: ``"ddpm"`` (noise prediction) or ``"rflow"`` (rectified flow, velocity).
        sampler: ``"ddim"`` or ``"ddpm"`` for ``ddpm``; ``"rflow"`` for ``rflow``.
        train_timesteps: diffusion steps in training (ddpm sampling uses all of them).
        inference_steps: sampling steps (ddim, rflow).
        conditioning: ``"repaint"`` (mask channels replaced while sampling) or ``"concat"`` (masks as input).
        p_uncond: concat condition dropout in training.
        guidance: classifier-free guidance scale for concat (None: off).
        repaint_jumps: RePaint resampling per step (ddpm only).
        latent_channels: 0 = pixel space, else AutoencoderKL latent channels.
        autoencoder_channels: AutoencoderKL widths per level.
        autoencoder_steps: autoencoder training steps, trained first within the training steps.
        kl_weight: autoencoder KL loss weight.
        lr: diffusion AdamW learning rate.
        lr_autoencoder: autoencoder AdamW learning rate.
        augment: flips and gains in training.
    """

    family: ClassVar[str] = "diffusion"

    spacing: tuple[float, ...] | None = None
    shape: tuple[int, ...] | None = None
    model_channels: tuple[int, ...] = (32, 64, 64)
    attention_levels: tuple[bool, ...] = (False, False, True)
    num_res_blocks: int = 1
    norm_num_groups: int = 16
    num_head_channels: int = 16
    objective: Literal["ddpm", "rflow"] = "ddpm"
    sampler: Literal["ddim", "ddpm", "rflow"] = "ddim"
    train_timesteps: int = 1000
    inference_steps: int = 50
    conditioning: Literal["repaint", "concat"] = "repaint"
    p_uncond: float = 0.2
    guidance: float | None = None
    repaint_jumps: int = 1
    latent_channels: int = 0
    autoencoder_channels: tuple[int, ...] = (32, 64, 64)
    autoencoder_steps: int = 0
    kl_weight: float = 1e-6
    lr: float = 1e-4
    lr_autoencoder: float = 1e-4
    augment: bool = True

    @property
    def latent(self) -> bool:
        """True for latent diffusion (AutoencoderKL first stage)."""
        return self.latent_channels > 0

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("spacing", "shape"):
            self._length(name, 3)
        self._length("model_channels")
        self._length("autoencoder_channels")
        self._positive("spacing", "shape", "model_channels", "autoencoder_channels", "num_res_blocks",
                       "norm_num_groups", "num_head_channels", "train_timesteps", "inference_steps", "lr",
                       "lr_autoencoder")
        self._at_least(0, "guidance", "repaint_jumps", "latent_channels", "autoencoder_steps", "kl_weight")
        self._fraction("p_uncond")
        allowed = ("ddim", "ddpm") if self.objective == "ddpm" else ("rflow",)
        if self.sampler not in allowed:
            raise InputError(f"sampler {self.sampler!r} does not fit the {self.objective} objective",
                             fix=f"use sampler {' or '.join(allowed)}")
        if self.latent and self.conditioning == "repaint":
            raise InputError("RePaint conditioning replaces mask channels, which latent diffusion does not have",
                             fix="use conditioning='concat' with latent_channels > 0")
        if self.objective == "rflow" and self.repaint_jumps > 1:
            raise InputError("RePaint resampling (repaint_jumps > 1) needs the DDPM noise schedule",
                             fix="use objective='ddpm' or repaint_jumps=1")
        if len(self.attention_levels) != len(self.model_channels):
            raise InputError(f"attention_levels needs one entry per model_channels level (got "
                             f"{len(self.attention_levels)} for {len(self.model_channels)})",
                             fix="give attention_levels as many entries as model_channels")
        if self.latent and self.autoencoder_steps < 1:
            raise InputError("latent diffusion needs autoencoder_steps >= 1 (trained before the diffusion model)",
                             fix="set autoencoder_steps (within the training steps), or latent_channels=0")


@dataclasses.dataclass(frozen=True, kw_only=True)
class LabelToImageConfig(GeneratorConfig):
    """Settings of the SynthSeg-style label-to-image family (``label-to-image``).

    Args:
        tissue_classes: brain tissue classes found by k-means (3: CSF, grey, white matter).
        keep_real_lesions: keep the references' own lesions (labelled) in the anatomy; by default they are
            filled with surrounding tissue and every lesion of a synthetic case is new.
        contrast_randomization: 0 = class means as fitted (realistic contrast); 1 = SynthSeg-like random
            contrasts (domain randomisation).
        elastic_magnitude: elastic deformation strength (voxels).
        bias_field: maximum bias-field coefficient (MR only; CT is calibrated in HU).
        noise: noise level relative to the class spread.
        low_resolution: probability of resolution randomisation (down- and up-sampling).
        hemorrhage_age: CT hemorrhage HU model: ``acute``, ``subacute`` or ``chronic``.
        ct_appearance: CT: correlated scanner noise up to a real head CT's level, grey/white contrast where
            missing and clot heterogeneity (swirl sign, retraction, hematocrit levels); see
            :mod:`.ct_appearance`. False: uniform blood and the plain noise of ``noise``.
        inner_structure: MR tumours with a whole-tumour-only label table: paint a hidden BraTS structure and
            real heterogeneity inside each new tumour, as ``lesion-insertion`` does; the label stays the whole
            tumour. False: one level plus a weak texture.
        tissue_texture: MR: spatially correlated multiplicative texture per brain tissue class, as a share of
            the reference's own within-class SD over its mean (fitted per reference case; 0 = off, the smooth
            piecewise-constant classes of before).
    """

    family: ClassVar[str] = "label-to-image"

    tissue_classes: int = 3
    keep_real_lesions: bool = False
    contrast_randomization: float = 0.1
    elastic_magnitude: float = 2.0
    bias_field: float = 0.15
    noise: float = 0.5
    low_resolution: float = 0.3
    hemorrhage_age: HemorrhageAge = "acute"
    ct_appearance: bool = True
    inner_structure: bool = True
    tissue_texture: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        self._positive("tissue_classes")
        self._at_least(0, "contrast_randomization", "elastic_magnitude", "bias_field", "noise", "tissue_texture")
        self._fraction("low_resolution")


@dataclasses.dataclass(frozen=True, kw_only=True)
class LesionInsertionConfig(GeneratorConfig):
    """Settings of the training-free lesion insertion family (``lesion-insertion``).

    Args:
        hemorrhage_age: CT hemorrhage HU model: ``acute``, ``subacute`` or ``chronic``.
        texture: relative strength of lesion texture.
        mass_effect: share of a space-occupying lesion's volume pushed into the surrounding brain (0 = none);
            tumours, intraparenchymal, subdural and epidural blood push, subarachnoid and intraventricular blood
            take the place of CSF and do not.
        ct_appearance: CT: scanner noise where the background is noise-free (the template), grey/white contrast
            where missing and clot heterogeneity (swirl sign, retraction, hematocrit levels); see
            :mod:`.ct_appearance`. False: uniform blood with noise matched to the background.
        inner_structure: MR tumours with a whole-tumour-only label table: paint a hidden BraTS structure inside
            each new tumour (necrotic core, enhancing rim, edema falling off towards the border) and the
            heterogeneity of real tumours; the written label stays the whole tumour (see
            :data:`~.intensity.SUBREGION_CONTRAST`). False: one level plus the weak texture ``texture``.
        background_lesions: a background's own lesions: ``"fill"`` them with the surrounding tissue first (the
            default: every lesion of a synthetic case is new and the lesion burden follows the controls, which
            transfers better to unseen real cases; see :mod:`.lesion_fill`) or ``"keep"`` them (labelled; each
            synthetic case then has them and the new ones).
    """

    family: ClassVar[str] = "lesion-insertion"
    card_defaults: ClassVar[dict[str, Any]] = {"background_lesions": "keep"}  # the default before "fill"

    hemorrhage_age: HemorrhageAge = "acute"
    texture: float = 0.08
    mass_effect: float = 1.0
    ct_appearance: bool = True
    inner_structure: bool = True
    background_lesions: Literal["keep", "fill"] = "fill"

    def __post_init__(self) -> None:
        super().__post_init__()
        self._at_least(0, "texture", "mass_effect")


@dataclasses.dataclass(frozen=True, kw_only=True)
class CopyPasteConfig(GeneratorConfig):
    """Settings of the training-free lesion copy-paste family (``copy-paste``: CarveMix + TumorCP).

    Args:
        placement: ``"random"`` (TumorCP: anywhere the transformed lesion fits inside the target's brain) or
            ``"same"`` (CarveMix: where the lesion sat in its donor, relative to the brain's centroid; the
            nearest place it fits).
        margin_fraction: ``(low, high)`` range of CarveMix's lambda: the carved region is the lesion grown by
            ``lambda * r`` mm, ``r`` the lesion's largest inner distance (CarveMix draws lambda from
            ``[-r/2, r]``; only the non-negative part is used here, so the donor's lesion is copied whole).
        feather_mm: width (mm) of the blend at the border of the carved region (alpha falls from 1 to 0); the
            lesion itself is never blended.
        rotation_deg: largest rotation (degrees) about each axis (TumorCP's object-level rotation; 0 = none).
        scale_range: ``(low, high)`` isotropic scale of the lesion when the controls ask for no volume (with
            controls, the lesion is scaled to a volume drawn from their ``volume_ml`` range).
        flip_lr: probability of mirroring the lesion left-right (physical x, LPS).
        elastic_mm: RMS size (mm) of a smooth random deformation of the lesion (0 = rigid + scale only).
        match_intensity: map each donor channel onto the target's normal-brain median and interquartile range
            (MR; CT stays in Hounsfield units).
        mass_effect: share of the pasted lesion's volume pushed into the target's brain (0 = none; see
            :mod:`~SyntheticImagingLib.lesions.mass_effect`); tumours, intraparenchymal, subdural and epidural
            blood push.
        background_lesions: the target's own lesions: ``"fill"`` them with the surrounding tissue first (the
            default: every lesion of a synthetic case is pasted, which transfers better to unseen real cases; see
            :mod:`.lesion_fill`) or ``"keep"`` them (CarveMix/TumorCP: the target keeps its lesion beside the
            pasted one).
    """

    family: ClassVar[str] = "copy-paste"
    card_defaults: ClassVar[dict[str, Any]] = {"background_lesions": "keep"}  # the default before "fill"

    placement: Literal["random", "same"] = "random"
    margin_fraction: tuple[float, ...] = (0.0, 0.5)
    feather_mm: float = 4.0
    rotation_deg: float = 30.0
    scale_range: tuple[float, ...] = (0.8, 1.25)
    flip_lr: float = 0.5
    elastic_mm: float = 2.0
    match_intensity: bool = True
    mass_effect: float = 1.0
    background_lesions: Literal["keep", "fill"] = "fill"

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("margin_fraction", "scale_range"):
            self._length(name, 2)
            low, high = getattr(self, name)
            if low > high:
                self._fail(name, "needs low <= high", "give (low, high) with low <= high")
        self._at_least(0, "margin_fraction", "feather_mm", "rotation_deg", "elastic_mm", "mass_effect")
        self._positive("scale_range")
        self._fraction("flip_lr")
        if self.rotation_deg > 180:
            self._fail("rotation_deg", "must be at most 180", "use a value from 0 to 180")


# -- conversion ----------------------------------------------------------------------------------------------


def _convert(value: Any, hint: Any, what: str) -> Any:
    """``value`` as type ``hint`` (a JSON value or a Python one), or an InputError naming ``what``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            return _convert(value, inner[0], what)
    if origin is Literal:
        if isinstance(value, str) and value in args:
            return value
        raise InputError(f"{what} must be one of {list(args)}, got {value!r}", fix=f"use one of {list(args)}")
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        if isinstance(value, (str, bytes, Mapping)) or not hasattr(value, "__iter__"):
            raise InputError(f"{what} must be a list, got {value!r}", fix="give a list such as [1, 2, 3]")
        return tuple(_convert(v, args[0], f"{what} (an entry)") for v in value)
    if hint is bool:
        if isinstance(value, bool) or type(value).__name__ == "bool_":  # numpy booleans too
            return bool(value)
        raise InputError(f"{what} must be true or false, got {value!r}", fix="use true or false")
    if hint is int:
        if _is_number(value) and float(value).is_integer():
            return int(value)
        raise InputError(f"{what} must be a whole number, got {value!r}", fix="use a whole number")
    if hint is float:
        if _is_number(value) and math.isfinite(float(value)):
            return float(value)
        raise InputError(f"{what} must be a finite number, got {value!r}", fix="use a number")
    if hint is str:
        if isinstance(value, str):
            return value
        raise InputError(f"{what} must be text, got {value!r}", fix="use a text value")
    raise TypeError(f"{what}: no conversion to {hint!r}")  # a settings class with an unsupported field type


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return not isinstance(value, (str, bytes))


def _plain(value: Any) -> Any:
    return [_plain(v) for v in value] if isinstance(value, tuple) else value
