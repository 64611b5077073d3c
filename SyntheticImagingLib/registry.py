"""Name -> class registries that list their built-in members without importing them.

Generator families and checks import torch and MONAI; a panel or a ``--help`` that only lists their names must
not pay for that (seconds, and on a fresh Slicer the packages may not be installed yet). A registry knows the
module of each built-in member by name and imports it on first use; members registered from other modules
(plug-ins) are added by their class decorator as before.

>>> reg = Registry("colour", {"red": "colorsys"}, key="name")
>>> reg.names()
['red']
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any, Generic, TypeVar

from .errors import InputError

__all__ = ["Registry", "GENERATORS", "CHECKS"]

T = TypeVar("T")


class Registry(Generic[T]):
    """Classes by name; built-in members are imported when first asked for.

    Args:
        kind: what the members are (for error messages), e.g. ``"generator family"``.
        builtin: name -> module that registers the member when imported.
        key: the class attribute holding a member's name.
    """

    def __init__(self, kind: str, builtin: Mapping[str, str], *, key: str) -> None:
        self.kind = kind
        self._builtin = dict(builtin)
        self._key = key
        self._classes: dict[str, type[T]] = {}

    def register(self, cls: type[T]) -> type[T]:
        """Class decorator: add ``cls`` under its name."""
        self._classes[getattr(cls, self._key)] = cls
        return cls

    def names(self) -> list[str]:
        """Every member's name, built-in or registered; imports nothing."""
        return sorted(set(self._builtin) | set(self._classes))

    def __contains__(self, name: object) -> bool:
        return name in self._builtin or name in self._classes

    def get(self, name: str) -> type[T]:
        """The class registered as ``name`` (importing its module first if it is a built-in).

        Raises:
            InputError: no member has that name.
        """
        if name not in self._classes and name in self._builtin:
            importlib.import_module(self._builtin[name])
        if name not in self._classes:
            raise InputError(f"unknown {self.kind} {name!r}", fix=f"use one of {self.names()}")
        return self._classes[name]

    def load_all(self) -> dict[str, type[T]]:
        """Every member's class (imports every built-in module)."""
        return {name: self.get(name) for name in self.names()}


def _lib(module: str) -> str:
    return f"{__package__}.{module}"


#: Generator families (``Generator.family``).
GENERATORS: Registry[Any] = Registry("generator family", {
    "label-to-image": _lib("generators.label_to_image"),
    "lesion-insertion": _lib("generators.lesion_insertion"),
    "copy-paste": _lib("generators.copy_paste"),
    "gan3d": _lib("generators.gan3d"),
    "diffusion": _lib("generators.diffusion"),
}, key="family")

#: Checks (``Check.name``).
CHECKS: Registry[Any] = Registry("check", {
    "utility": _lib("checks.utility"),
    "adherence": _lib("checks.adherence"),
    "fidelity": _lib("checks.fidelity"),
    "privacy": _lib("checks.privacy"),
}, key="name")
