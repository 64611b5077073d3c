"""The check interface and registry: adding a check is adding a file.

A check compares a synthetic set with real cases and returns a :class:`CheckResult`: headline numbers
(``summary``), tables (lists of rows, written as CSV and shown as Slicer table nodes), figures (PNG paths) and
everything else a report needs (``details``). Checks that need the same expensive model (the feature encoder,
the reference segmenter) share it through ``context.cache``.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from ..cases import Case
from ..progress import Reporter
from ..registry import CHECKS

__all__ = ["Profile", "PROFILES", "CheckContext", "CheckResult", "Check", "register_check", "get_check",
           "available_checks"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class Profile:
    """How big the checks run.

    Args:
        name: ``quick`` (CI-sized, minutes on CPU) or ``full`` (paper-sized, GPU).
        spacing: grid spacing (mm) the checks resample to.
        shape: grid shape (z, y, x) around the brain.
        seeds: repeats (seeds/folds) for means and confidence intervals.
        segmenter_steps: training steps of each utility segmenter.
        encoder_steps: training steps of the self-supervised feature encoder.
        real_sizes: real-training-set sizes of the utility sweep.
        synthetic_ratios: synthetic:real ratios of the real+synthetic regimes.
        repeats: repeats of the privacy validation (planted copier / honest generator).
        check_convergence: the utility check also trains TRTR with twice the steps and says whether the
            segmenter had converged (an undertrained segmenter compresses every set toward parity).
        folds: k of the k-fold protocol used when no real test set is given (every real case tested once).
        segmenter_patch: utility segmenter training patch (z, y, x), biased to the lesion; None: whole volumes.
    """

    name: str
    spacing: tuple[float, float, float]
    shape: tuple[int, int, int]
    seeds: int
    segmenter_steps: int
    encoder_steps: int
    real_sizes: tuple[int, ...]
    synthetic_ratios: tuple[float, ...]
    repeats: int
    check_convergence: bool = True
    folds: int = 5
    segmenter_patch: tuple[int, int, int] | None = None


PROFILES: dict[str, Profile] = {
    "quick": Profile(name="quick", spacing=(4.0, 4.0, 4.0), shape=(40, 48, 40), seeds=3, segmenter_steps=100,
                     encoder_steps=150, real_sizes=(2, 4, 8), synthetic_ratios=(1.0,), repeats=20),
    "full": Profile(name="full", spacing=(2.0, 2.0, 2.0), shape=(80, 96, 80), seeds=5, segmenter_steps=4000,
                    encoder_steps=3000, real_sizes=(2, 4, 8, 16, 32), synthetic_ratios=(0.5, 1.0, 2.0, 4.0),
                    repeats=100),
}


@dataclasses.dataclass
class CheckContext:
    """What every check gets besides the cases.

    Args:
        profile: run size.
        out_dir: where the check may write figures and files.
        progress: progress + cancel.
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``.
        seed: base seed.
        cache: shared between checks of one evaluation (e.g. ``"encoder"``, ``"reference_segmenter"``).
        cache_dir: folder kept across evaluations (trained segmenters, see ``checks.segmenter_store``); None: none.
    """

    profile: Profile
    out_dir: Path
    progress: Reporter = dataclasses.field(default_factory=Reporter)
    device: str = "auto"
    seed: int = 0
    cache: dict[str, Any] = dataclasses.field(default_factory=dict)
    cache_dir: Path | None = None


@dataclasses.dataclass
class CheckResult:
    """What a check found.

    Args:
        name: the check's name.
        summary: headline numbers and verdicts (JSON-serialisable).
        tables: table name -> rows (dicts with the same keys), written as CSV.
        figures: figure name -> PNG path.
        details: anything else for ``report.json``.
    """

    name: str
    summary: dict[str, Any] = dataclasses.field(default_factory=dict)
    tables: dict[str, list[dict[str, Any]]] = dataclasses.field(default_factory=dict)
    figures: dict[str, Path] = dataclasses.field(default_factory=dict)
    details: dict[str, Any] = dataclasses.field(default_factory=dict)


class Check(abc.ABC):
    """One kind of check (utility, fidelity, privacy, ...)."""

    name: ClassVar[str]

    @abc.abstractmethod
    def run(self, *, real_train: Sequence[Case], real_test: Sequence[Case], synthetic: Sequence[Case],
            context: CheckContext) -> CheckResult:
        """Run on cases already on the profile's grid (see ``checks.prepare``)."""


def register_check(cls: type[Check]) -> type[Check]:
    """Class decorator adding a check to the registry."""
    return CHECKS.register(cls)


def available_checks() -> list[str]:
    """Check names (importing none of them)."""
    return CHECKS.names()


def get_check(name: str) -> Check:
    """A new instance of the check called ``name``."""
    check: Check = CHECKS.get(name)()
    return check
