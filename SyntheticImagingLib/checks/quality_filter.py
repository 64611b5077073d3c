"""Quality filter: drop (or regenerate) synthetic cases whose image does not follow their label.

A case is dropped when the real-data reference segmenter's Dice against its own label is under the threshold
calibrated on real held-out cases, or (optionally) when its lesion intensity is outside the real range (see
:mod:`.adherence`). With a ``regenerate`` callback, dropped cases are replaced by new ones, screened in turn.
The kept cases are returned as given (not resampled), so :func:`write_filtered` writes them at full resolution.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..cases import Case
from ..io.datasets import write_dataset
from .adherence import calibrate, screen
from .base import CheckContext
from .prepare import prepare_cases
from .privacy_filter import Regenerate
from .segmenter import SegmenterConfig

__all__ = ["quality_filter", "write_filtered", "on_grid"]


def on_grid(cases: Sequence[Case], context: CheckContext) -> list[Case]:
    """The cases on the context profile's grid: prepared ones as they are, others prepared now.

    Args:
        cases: prepared or raw cases.
        context: its profile gives the grid.
    """
    prof = context.profile
    out = []
    for case in cases:
        meta = case.metadata.get("prepared", {})
        done = (case.shape == tuple(prof.shape) and meta.get("profile") == prof.name
                and list(meta.get("spacing", ())) == list(prof.spacing))
        # preparing twice would renormalise already normalised intensities
        out.append(case if done else prepare_cases([case], prof)[0])
    return out


def quality_filter(synthetic: Sequence[Case], real_train: Sequence[Case], real_test: Sequence[Case], *,
                   context: CheckContext, regenerate: Regenerate | None = None, max_rounds: int = 0,
                   config: SegmenterConfig | None = None, check_intensity: bool = True, percentile: float = 5.0,
                   margin: float = 0.1, intensity_margin: float = 0.5, min_lesion_ml: float = 0.05
                   ) -> tuple[list[Case], list[dict[str, Any]]]:
    """Keep the synthetic cases that follow their labels as well as real cases do; list the others.

    Args:
        synthetic: synthetic cases (raw or prepared).
        real_train: real training cases (the reference segmenter's training data).
        real_test: real held-out cases (the calibration).
        context: profile (grid, segmenter steps), device, seed and the shared cache.
        regenerate: called with ``(n_dropped, round)`` to replace dropped cases; replacements are screened too.
        max_rounds: regeneration rounds at most (0: no regeneration).
        config: reference segmenter settings (default: sized by the profile).
        check_intensity: also drop cases whose lesion intensity is outside the real range.
        percentile: low percentile of the real held-out Dice for the threshold.
        margin: subtracted from that percentile.
        intensity_margin: widening of the real intensity range, in units of its spread.
        min_lesion_ml: connected components smaller than this are ignored by the detection.

    Returns:
        ``(kept cases as given, dropped rows)``; each row gives ``synthetic_id``, ``dice``, ``detection``,
        ``volume_error_rel``, ``threshold``, ``intensity``, ``intensity_range``, ``reason`` and ``round``
        (0 = the original set).
    """
    calib = calibrate(on_grid(real_train, context), on_grid(real_test, context), context=context, config=config,
                      percentile=percentile, margin=margin, intensity_margin=intensity_margin,
                      min_lesion_ml=min_lesion_ml)
    kept: list[Case] = []
    dropped: list[dict[str, Any]] = []
    batch = list(synthetic)
    for rnd in range(max(0, int(max_rounds)) + 1):
        if not batch:
            break
        rows = screen(on_grid(batch, context), calib, check_intensity=check_intensity)
        n_dropped = 0
        for case, row in zip(batch, rows):
            if row["reason"]:
                n_dropped += 1
                dropped.append({"synthetic_id": case.case_id, "dice": row["dice"], "detection": row["detection"],
                                "volume_error_rel": row["volume_error_rel"], "threshold": calib["threshold"],
                                "intensity": row["intensity"], "intensity_range": list(calib["intensity_range"]),
                                "reason": row["reason"], "round": rnd})
            else:
                kept.append(case)
        context.progress.report("quality_filter", rnd + 1, max_rounds + 1, f"{n_dropped} dropped")
        if regenerate is None or n_dropped == 0 or rnd == max_rounds:
            break
        batch = list(regenerate(n_dropped, rnd + 1))
    return kept, dropped


def write_filtered(kept: Sequence[Case], dropped_rows: Sequence[Mapping[str, Any]], out_dir: str | os.PathLike[str],
                   info: Mapping[str, Any] | None = None, *, overwrite: bool = False, **kwargs: Any) -> Path:
    """Write the kept cases as a dataset whose ``dataset.json`` lists what was dropped and why.

    Args:
        kept: the cases to write.
        dropped_rows: the filter's dropped rows.
        out_dir: the dataset folder to create.
        info: extra ``dataset.json`` content (generator, settings...).
        overwrite: replace an existing folder.
        **kwargs: passed on to :func:`~SyntheticImagingLib.io.datasets.write_dataset` (formats, progress).
    """
    record = {"filter": "label adherence (checks.quality_filter)", "kept": len(kept),
              "dropped": len(dropped_rows), "dropped_cases": [dict(r) for r in dropped_rows]}
    return write_dataset(kept, out_dir, info={**dict(info or {}), "quality_filter": record}, overwrite=overwrite,
                         **kwargs)
