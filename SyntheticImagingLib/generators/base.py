"""The generator interface and registry: adding a generator family is adding a file.

A family subclasses :class:`Generator`, sets ``family``, ``version`` and ``config_class`` (its settings: a
frozen :class:`~.config.GeneratorConfig` subclass; the built-in families' are in :mod:`.config`), and registers
itself with :func:`register_generator`. Every family is used the same way::

    gen = create_generator("label-to-image", task="brain-tumor-mri")
    gen.fit(real_cases)                      # training-free families only collect references
    for case in gen.synthesize(4, seed=0, controls=LesionControls(volume_ml=30)):
        ...
    gen.save("model_dir"); gen = load_generator("model_dir")
"""

from __future__ import annotations

import abc
import datetime
import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ..cases import Case
from ..errors import CheckpointError, InputError
from ..io.atomic import write_json
from ..label_roles import LabelRoles
from ..lesions.controls import LesionControls
from ..progress import ProgressCallback, Reporter
from ..registry import GENERATORS
from ..tasks import TaskPreset, get_task
from .config import GeneratorConfig
from .inference import InferenceNetwork, InferenceSettings, resolve_precision

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["Generator", "register_generator", "create_generator", "load_generator", "read_card", "available_generators",
           "MODEL_CARD", "library_version"]

#: The model card's file name inside a generator folder.
MODEL_CARD = "model_card.json"



def library_version() -> str:
    """The installed SyntheticImagingLib version."""
    from .. import __version__

    return __version__


class Generator(abc.ABC):
    """A family of generators of labelled cases.

    Args:
        task: task preset name or object (modality, channels, lesion kind, grid).
        config: the family's settings (an instance of ``config_class``; None: the defaults), recorded in the
            model card.
        **settings: single settings by name, applied over ``config`` (the form model cards and the command
            line use); an unknown name raises :class:`~SyntheticImagingLib.errors.InputError`.
    """

    family: ClassVar[str]
    version: ClassVar[str] = "1"
    trainable: ClassVar[bool] = False
    #: The family's settings class (a frozen dataclass, see :mod:`.config`).
    config_class: ClassVar[type[GeneratorConfig]] = GeneratorConfig
    config: GeneratorConfig

    def __init__(self, *, task: str | TaskPreset = "brain-tumor-mri", config: GeneratorConfig | None = None,
                 **settings: Any) -> None:
        self.task = get_task(task) if isinstance(task, str) else task
        if config is not None and not isinstance(config, self.config_class):
            raise InputError(f"generator {self.family!r} takes {self.config_class.__name__} settings, "
                             f"not {type(config).__name__}", fix=f"pass {self.config_class.__name__}(...)")
        if config is None:
            self.config = self.config_class.from_dict(settings)
        else:
            self.config = config.replace(**settings) if settings else config
        self.training: dict[str, Any] = {}
        self.inference = InferenceSettings(device="cpu")
        self.device: torch.device = InferenceSettings(device="cpu").resolve()
        self._wrapped: dict[int, tuple[tuple[Any, ...], InferenceNetwork]] = {}  # by id of the trained network

    @property
    def label_roles(self) -> LabelRoles | None:
        """The roles new lesions are written with: the task's label table when it is a user's (from
        :func:`~SyntheticImagingLib.tasks.task_for_data`), None for an unchanged preset (the library's values)."""
        return None if self.task.is_preset else self.task.roles

    @property
    def subregion_fractions(self) -> dict[str, tuple[float, float]] | None:
        """Tumour sub-region share ranges measured on the training cases (None: not measured)."""
        measured = self.training.get("subregion_fractions")
        return {str(k): (float(v[0]), float(v[1])) for k, v in measured.items()} if measured else None

    def _measure_subregions(self, labels: Sequence[Any]) -> None:
        """Record the training cases' tumour sub-region shares in ``self.training`` (multi-class tumour tables)."""
        roles = self.label_roles
        if roles is None or roles.kind.value != "tumor":
            return
        from ..lesions.tumor_subregions import measure_subregion_fractions

        measured = measure_subregion_fractions(labels, roles)
        if measured:
            self.training["subregion_fractions"] = {k: list(v) for k, v in measured.items()}

    @abc.abstractmethod
    def fit(self, cases: Sequence[Case], *, progress: Reporter | ProgressCallback | None = None,
            out_dir: str | os.PathLike[str] | None = None, resume: bool = False) -> Generator:
        """Learn from real labelled cases (training-free families keep references only). Returns ``self``."""

    @abc.abstractmethod
    def synthesize(self, n: int, *, seed: int = 0, controls: LesionControls | None = None,
                   progress: Reporter | ProgressCallback | None = None) -> Iterator[Case]:
        """Yield ``n`` new labelled cases, reproducibly for a given ``seed``."""

    def to(self, device: str | torch.device = "auto", **settings: Any) -> Generator:
        """Where and how synthesis runs (:class:`~.inference.InferenceSettings`: device, precision, batch size,
        compilation, memory layout, label workers). Families with networks move them (see :meth:`_networks`);
        training-free families compute with NumPy on the CPU and only keep the settings. Everything is checked
        before anything changes. Returns ``self``."""
        inference = InferenceSettings.build(device, **settings)
        self.device, self.inference = inference.resolve(), inference
        for net in self._networks():
            net.to(self.device)
        return self

    def _networks(self) -> list[nn.Module]:
        """The trained networks :meth:`to` moves (none for training-free families)."""
        return []

    def _for_synthesis(self, net: nn.Module) -> InferenceNetwork:
        """``net`` wrapped to run under the synthesis settings (built once per network and settings)."""
        s = self.inference
        key = (self.device, s.precision, s.compile, s.channels_last)
        cached = self._wrapped.get(id(net))  # the wrapper holds the network: its id is not reused meanwhile
        if cached is None or cached[0] != key:
            cached = (key, InferenceNetwork(net, dtype=resolve_precision(s.precision, self.device),
                                            channels_last=s.channels_last, compile=s.compile))
            self._wrapped[id(net)] = cached
        return cached[1]

    @abc.abstractmethod
    def _save_state(self, directory: Path) -> dict[str, Any]:
        """Write the family's own files into ``directory``; return card entries describing them."""

    @abc.abstractmethod
    def _load_state(self, directory: Path, card: Mapping[str, Any]) -> None:
        """Read what :meth:`_save_state` wrote."""

    def card(self) -> dict[str, Any]:
        """The self-description written beside the weights."""
        return {"family": self.family, "family_version": self.version, "library_version": library_version(),
                "task": self.task.name, "task_spec": self.task.to_dict(), "config": self.config.to_dict(),
                "training": self.training}

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write the generator (state files, then the model card last: a folder without card is incomplete)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        files = self._save_state(directory)
        card = {**self.card(), "files": files, "saved": datetime.datetime.now(datetime.UTC).isoformat()}
        write_json(directory / MODEL_CARD, card)
        return directory

    @property
    def name(self) -> str:
        """``family`` plus version, for reports and DICOM derivation descriptions."""
        return f"{self.family}/{self.version}"


def register_generator(cls: type[Generator]) -> type[Generator]:
    """Class decorator adding a family to the registry."""
    return GENERATORS.register(cls)


def available_generators() -> list[str]:
    """Family names (importing none of them)."""
    return GENERATORS.names()


def create_generator(family: str, *, task: str | TaskPreset = "brain-tumor-mri", config: GeneratorConfig | None = None,
                     **settings: Any) -> Generator:
    """A new, unfitted generator of ``family``: settings as a ``config`` object and/or single ``settings``."""
    return GENERATORS.get(family)(task=task, config=config, **settings)


def read_card(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """The model card of a generator folder, with a clear error when absent or broken."""
    path = Path(directory) / MODEL_CARD
    if not path.exists():
        raise CheckpointError("no model card: this is not a (complete) generator folder", where=str(directory),
                              fix="point at a folder written by `synthetic-imaging train` or Generator.save")
    try:
        card = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise CheckpointError(f"model card cannot be read ({err})", where=str(path)) from None
    if not isinstance(card, dict) or "family" not in card:
        raise CheckpointError("model card has no 'family'", where=str(path))
    return card


def load_generator(directory: str | os.PathLike[str], *,
                   on_card: Callable[[dict[str, Any]], None] | None = None) -> Generator:
    """Load a saved generator, checking its card against the registry (family and version)."""
    directory = Path(directory)
    card = read_card(directory)
    family = card["family"]
    if family not in GENERATORS:
        raise CheckpointError(f"generator family {family!r} is not known to this version",
                              where=str(directory), fix=f"known families: {GENERATORS.names()}")
    cls = GENERATORS.get(family)
    if str(card.get("family_version")) != str(cls.version):
        raise CheckpointError(
            f"checkpoint is {family} version {card.get('family_version')}, this library reads version {cls.version}",
            where=str(directory), fix="retrain with this version, or install the library version that wrote it "
            f"({card.get('library_version')})")
    if on_card:
        on_card(card)
    try:
        # the task as trained (a user's channels and label table); older cards name a preset only
        task = TaskPreset.from_dict(card["task_spec"]) if isinstance(card.get("task_spec"), Mapping) \
            else card["task"]
        # settings the card predates take the default of its time, not today's (a saved generator stays as saved)
        gen = cls(task=task, **{**cls.config_class.card_defaults, **card.get("config", {})})
        gen.training = dict(card.get("training", {}))
        gen._load_state(directory, card)
    except CheckpointError:
        raise
    except (InputError, KeyError, TypeError, ValueError, AttributeError, IndexError, OSError) as err:
        raise CheckpointError(f"the generator folder is incomplete or inconsistent with its model card "
                              f"({type(err).__name__}: {str(err)[:160]})", where=str(directory),
                              fix="re-save the generator, or retrain it") from None
    return gen
