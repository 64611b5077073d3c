"""Generator families behind one interface (see :mod:`.base`), listed in ``registry.GENERATORS``.

Nothing is imported until used: listing the families (``available_generators()``) imports no torch; asking for a
family imports its module, which registers it.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["Generator", "available_generators", "create_generator", "load_generator", "register_generator",
           "GeneratorConfig", "GanConfig", "DiffusionConfig", "LabelToImageConfig", "LesionInsertionConfig",
           "CopyPasteConfig"]

_FROM_BASE = {"Generator", "create_generator", "load_generator", "register_generator"}
#: The families' settings classes (their module imports neither torch nor MONAI).
_FROM_CONFIG = {"GeneratorConfig", "GanConfig", "DiffusionConfig", "LabelToImageConfig", "LesionInsertionConfig",
                "CopyPasteConfig"}


def available_generators() -> list[str]:
    """Family names (importing none of them)."""
    from ..registry import GENERATORS

    return GENERATORS.names()


def __getattr__(name: str) -> Any:
    if name in _FROM_BASE:
        return getattr(importlib.import_module(".base", __name__), name)
    if name in _FROM_CONFIG:
        return getattr(importlib.import_module(".config", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
