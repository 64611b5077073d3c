"""Checks of a synthetic set against real cases (see :mod:`.base`), listed in ``registry.CHECKS``.

Nothing heavy is imported until used: listing the checks imports no torch; asking for one imports its module.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["CheckContext", "CheckResult", "Profile", "PROFILES", "available_checks", "get_check", "register_check"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module(".base", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
