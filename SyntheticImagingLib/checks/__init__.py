"""Checks of a synthetic set against real cases (see :mod:`.base`). Importing this package registers them."""

from .base import PROFILES, CheckContext, CheckResult, Profile, available_checks, get_check, register_check

__all__ = ["CheckContext", "CheckResult", "Profile", "PROFILES", "available_checks", "get_check", "register_check"]

from . import utility  # noqa: E402,F401  (registers the utility check)
from .adherence import AdherenceCheck  # noqa: E402,F401  (registers the adherence check)
from .fidelity import FidelityCheck  # noqa: E402,F401  (registers the fidelity check)
from .privacy import PrivacyCheck  # noqa: E402,F401  (registers the privacy check)
