"""The generator families' typed settings: defaults, checks, the model card's JSON form, old cards, unknown names."""

from __future__ import annotations

import dataclasses
import json

import pytest

from SyntheticImagingLib.errors import CheckpointError, InputError
from SyntheticImagingLib.generators.config import (
    DiffusionConfig,
    GanConfig,
    GeneratorConfig,
    LabelToImageConfig,
    LesionInsertionConfig,
)

CONFIGS = [GanConfig, DiffusionConfig, LabelToImageConfig, LesionInsertionConfig]

#: The ``default_config()`` dicts of the families before the settings were typed (model cards hold these).
OLD_DEFAULTS = {
    GanConfig: {"architecture": "segresnet", "spacing": None, "shape": None, "patch_size": None,
                "channels": [16, 32, 64, 128], "num_res_units": 1, "spade_channels": [64, 32, 16],
                "spade_hidden": 32, "disc_channels": 16, "disc_layers": 3, "lambda_l1": 100.0, "lambda_adv": 1.0,
                "lambda_fm": 0.0, "lr_g": 5e-4, "lr_d": 2e-4, "beta1": 0.5, "augment": True,
                "keep_lesion_templates": True, "sw_overlap": 0.25, "blend_margin_mm": 8.0, "class_mean_prior": True},
    DiffusionConfig: {"spacing": None, "shape": None, "model_channels": [32, 64, 64],
                      "attention_levels": [False, False, True], "num_res_blocks": 1, "norm_num_groups": 16,
                      "num_head_channels": 16, "objective": "ddpm", "sampler": "ddim", "train_timesteps": 1000,
                      "inference_steps": 50, "conditioning": "repaint", "p_uncond": 0.2, "guidance": None,
                      "repaint_jumps": 1, "latent_channels": 0, "autoencoder_channels": [32, 64, 64],
                      "autoencoder_steps": 0, "kl_weight": 1e-6, "lr": 1e-4, "lr_autoencoder": 1e-4,
                      "augment": True},
    LabelToImageConfig: {"tissue_classes": 3, "keep_real_lesions": False, "contrast_randomization": 0.1,
                         "elastic_magnitude": 2.0, "bias_field": 0.15, "noise": 0.5, "low_resolution": 0.3,
                         "hemorrhage_age": "acute", "ct_appearance": True, "inner_structure": True,
                         "tissue_texture": 1.0},
    # background_lesions: default changed deliberately from "keep" (issue 17: filled backgrounds transfer better)
    LesionInsertionConfig: {"hemorrhage_age": "acute", "texture": 0.08, "mass_effect": 1.0, "ct_appearance": True,
                            "inner_structure": True, "background_lesions": "fill"},
}


@pytest.mark.parametrize("cls", CONFIGS)
def test_defaults_equal_the_old_defaults_and_are_frozen(cls):
    config = cls()
    assert config.to_dict() == OLD_DEFAULTS[cls]
    assert cls.known() == sorted(OLD_DEFAULTS[cls])
    assert issubclass(cls, GeneratorConfig)
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(config, cls.known()[0], None)
    with pytest.raises(TypeError):
        cls(*OLD_DEFAULTS[cls].values())  # keyword-only


@pytest.mark.parametrize("cls", CONFIGS)
def test_card_round_trip(cls):
    config = cls()
    card = json.loads(json.dumps(config.to_dict()))  # what the model card holds
    assert cls.from_dict(card) == config
    assert isinstance(card, dict) and all(not isinstance(v, tuple) for v in card.values())


def test_values_are_converted_to_their_types():
    gan = GanConfig.from_dict({"spacing": [4, 4, 4], "shape": [40, 48, 40], "lambda_l1": 10, "disc_layers": 2.0})
    assert gan.spacing == (4.0, 4.0, 4.0) and all(isinstance(s, float) for s in gan.spacing)
    assert gan.shape == (40, 48, 40) and gan.lambda_l1 == 10.0 and isinstance(gan.disc_layers, int)
    assert gan.to_dict()["spacing"] == [4.0, 4.0, 4.0]
    assert hash(gan) == hash(GanConfig(spacing=(4.0, 4.0, 4.0), shape=(40, 48, 40), lambda_l1=10.0, disc_layers=2))
    diff = DiffusionConfig(guidance=2, objective="rflow", sampler="rflow")
    assert diff.guidance == 2.0 and not diff.latent


@pytest.mark.parametrize(("cls", "settings", "message"), [
    (GanConfig, {"architecture": "stylegan"}, r"'architecture' must be one of \['segresnet', 'unet', 'spade'\]"),
    (GanConfig, {"lr_g": 0}, "'lr_g' must be positive"),
    (GanConfig, {"spacing": [1, 1]}, "'spacing' needs 3 values"),
    (GanConfig, {"channels": []}, "'channels' needs at least one value"),
    (GanConfig, {"beta1": 1.0}, r"'beta1' must lie in \[0, 1\)"),
    (GanConfig, {"augment": "yes"}, "'augment' must be true or false"),
    (GanConfig, {"disc_layers": 2.5}, "'disc_layers' must be a whole number"),
    (GanConfig, {"channels": 16}, "'channels' must be a list"),
    (DiffusionConfig, {"objective": "rflow"}, "sampler 'ddim' does not fit the rflow objective"),
    (DiffusionConfig, {"latent_channels": 4, "autoencoder_steps": 1}, "RePaint conditioning"),
    (DiffusionConfig, {"latent_channels": 4, "conditioning": "concat"}, "autoencoder_steps >= 1"),
    (DiffusionConfig, {"attention_levels": [False]}, "one entry per model_channels level"),
    (DiffusionConfig, {"p_uncond": 1.5}, r"'p_uncond' must lie in \[0, 1\]"),
    (DiffusionConfig, {"guidance": float("nan")}, "'guidance' must be a finite number"),
    (LabelToImageConfig, {"hemorrhage_age": "ancient"}, "'hemorrhage_age' must be one of"),
    (LabelToImageConfig, {"tissue_classes": 0}, "'tissue_classes' must be positive"),
    (LesionInsertionConfig, {"texture": -0.1}, "'texture' must be at least 0"),
])
def test_invalid_settings_name_the_setting_and_a_fix(cls, settings, message):
    with pytest.raises(InputError, match=message) as err:
        cls.from_dict(settings)
    assert err.value.fix  # every refusal says what to do


@pytest.mark.parametrize("cls", CONFIGS)
def test_unknown_setting_lists_the_known_ones(cls):
    with pytest.raises(InputError, match=rf"unknown settings for generator '{cls.family}': \['stepz'\]") as err:
        cls.from_dict({"stepz": 10})
    assert err.value.fix == f"known settings: {cls.known()}"


def test_replace_checks_the_changes():
    gan = GanConfig(architecture="unet")
    assert gan.replace(lr_g=1e-3) == GanConfig(architecture="unet", lr_g=1e-3)
    with pytest.raises(InputError, match="unknown settings"):
        gan.replace(steps=10)


# -- the generators take them --------------------------------------------------------------------------------


def test_generators_take_keywords_or_a_config_object():
    from SyntheticImagingLib.generators import create_generator
    from SyntheticImagingLib.generators.label_to_image import LabelToImageGenerator
    from SyntheticImagingLib.generators.lesion_insertion import LesionInsertionGenerator

    gen = create_generator("label-to-image", task="brain-tumor-mri", tissue_classes=2)
    assert isinstance(gen, LabelToImageGenerator) and gen.config == LabelToImageConfig(tissue_classes=2)
    assert gen.card()["config"] == {**OLD_DEFAULTS[LabelToImageConfig], "tissue_classes": 2}
    gen = create_generator("lesion-insertion", config=LesionInsertionConfig(texture=0.2), mass_effect=0.0)
    assert isinstance(gen, LesionInsertionGenerator)
    assert gen.config == LesionInsertionConfig(texture=0.2, mass_effect=0.0)
    with pytest.raises(InputError, match="takes LesionInsertionConfig settings, not LabelToImageConfig"):
        create_generator("lesion-insertion", config=LabelToImageConfig())
    with pytest.raises(InputError, match=r"unknown settings for generator 'lesion-insertion': \['steps'\]"):
        create_generator("lesion-insertion", steps=10)


def test_gan_config_checks_needing_the_grid_stay_with_the_generator():
    from SyntheticImagingLib.generators import create_generator

    gen = create_generator("gan3d", task="brain-tumor-mri", spacing=[4, 4, 4], shape=[40, 48, 40],
                           architecture="unet", channels=[8, 16])
    assert gen.config.architecture == "unet" and gen.grid.shape == (40, 48, 40)
    with pytest.raises(InputError, match="divisible by 8"):
        create_generator("gan3d", shape=[36, 48, 40], spacing=[4, 4, 4])


def test_old_cards_load(tmp_path, small_case):
    """A folder saved by the dict-based code (JSON ints where floats are meant, partial settings) still loads."""
    from SyntheticImagingLib.generators import create_generator, load_generator

    gen = create_generator("lesion-insertion", task="brain-tumor-mri")
    gen.fit([small_case]).save(tmp_path / "g")
    card_path = tmp_path / "g" / "model_card.json"
    card = json.loads(card_path.read_text())
    card_path.write_text(json.dumps({**card, "config": {"hemorrhage_age": "acute", "texture": 0, "mass_effect": 1}}))
    loaded = load_generator(tmp_path / "g")
    # a card from before background_lesions existed: "keep", the default then (see the next test)
    assert loaded.config == LesionInsertionConfig(texture=0.0, background_lesions="keep")
    card_path.write_text(json.dumps({**card, "config": {"hemorrhage_age": "acute"}}))  # missing: the defaults
    assert load_generator(tmp_path / "g").config == LesionInsertionConfig(background_lesions="keep")
    card_path.write_text(json.dumps({**card, "config": {"texture": 0.1, "sparkle": 2}}))
    with pytest.raises(CheckpointError, match="unknown settings.*sparkle"):
        load_generator(tmp_path / "g")


@pytest.mark.parametrize("family", ["lesion-insertion", "copy-paste"])
def test_cards_from_before_a_default_changed_reload_as_saved(tmp_path, small_case, family):
    """background_lesions became "fill" by default; a card written before the setting existed made "keep" sets
    and must reload as "keep" (its ``card_defaults``), while a new generator and a card naming it are unchanged."""
    from SyntheticImagingLib.generators import create_generator, load_generator

    gen = create_generator(family, task="brain-tumor-mri")
    assert gen.config.background_lesions == "fill"  # today's default
    gen.fit([small_case]).save(tmp_path / "g")
    card_path = tmp_path / "g" / "model_card.json"
    card = json.loads(card_path.read_text())
    assert card["config"]["background_lesions"] == "fill"  # cards written now name it
    assert load_generator(tmp_path / "g").config == gen.config
    old = {k: v for k, v in card["config"].items() if k != "background_lesions"}
    card_path.write_text(json.dumps({**card, "config": old}))
    loaded = load_generator(tmp_path / "g")
    assert loaded.config == gen.config.replace(background_lesions="keep")
    assert create_generator(family, task="brain-tumor-mri").config.background_lesions == "fill"
    assert type(gen.config).from_dict(old).background_lesions == "fill"  # only loading a card applies them
