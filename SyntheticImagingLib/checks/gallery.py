"""Thumbnails of the cases behind an evaluation report, for people who would rather look than read.

Three sets of small PNGs, drawn with matplotlib's Agg canvas (no pyplot: no global backend is changed, which
matters inside Slicer) from the dataset folders the report names (``report.json["data"][set]["root"]``):

* **synthetic cases**: axial, coronal and sagittal slices through each lesion's centre, the label's contour
  (orange) and, where the adherence check saved it, the reference segmenter's prediction (cyan, dashed);
* **closest pairs**: each synthetic case beside the training case closest to it (privacy check), with the distance
  and the real holdout's median distance as the yardstick;
* **real beside synthetic at matched lesion size**: each synthetic case beside the real training case whose
  lesion volume is closest.

Sets recorded without a folder (cases passed in memory) give no thumbnails; the page says so.
"""

from __future__ import annotations

import dataclasses
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..cases import Case
from .report_model import EvaluationReport
from .rounding import fmt

__all__ = ["Thumbnail", "Gallery", "build_gallery", "case_thumbnail", "pair_thumbnail", "lesion_centre"]

_LABEL = "#ff9f1c"
_PREDICTION = "#2ec4f0"
#: Real training cases read to match lesion sizes (a large real set is sampled, not read whole).
MAX_REAL_FOR_MATCHING = 40


@dataclasses.dataclass(frozen=True)
class Thumbnail:
    """A small PNG with its caption.

    Args:
        title: bold first line (case ids).
        caption: what it shows, with numbers.
        png: the PNG bytes.
    """

    title: str
    caption: str
    png: bytes


@dataclasses.dataclass
class Gallery:
    """The report's pictures, by section; ``notes`` says why a section is empty."""

    synthetic: list[Thumbnail] = dataclasses.field(default_factory=list)
    closest_pairs: list[Thumbnail] = dataclasses.field(default_factory=list)
    matched: list[Thumbnail] = dataclasses.field(default_factory=list)
    notes: dict[str, str] = dataclasses.field(default_factory=dict)


def lesion_centre(case: Case) -> tuple[int, int, int]:
    """Voxel ``(z, y, x)`` at the centre of the lesion (of the image when there is none).

    Args:
        case: the case.
    """
    if case.label is not None and np.any(case.label > 0):
        idx = np.argwhere(case.label > 0)
        centre = np.median(idx, axis=0)
        # the nearest lesion voxel, so a curved lesion's slice still cuts it
        return tuple(int(v) for v in idx[np.argmin(((idx - centre) ** 2).sum(axis=1))])  # type: ignore[return-value]
    return tuple(s // 2 for s in case.shape)  # type: ignore[return-value]


def _window(image: np.ndarray, modality: Any = None) -> tuple[float, float]:
    if getattr(modality, "value", modality) == "CT":
        return 0.0, 80.0  # the brain window: blood and brain apart, bone white
    inside = image[image != image.min()] if np.any(image != image.min()) else image.ravel()
    lo, hi = np.percentile(inside, [1, 99.5]) if inside.size else (0.0, 1.0)
    return float(lo), float(hi if hi > lo else lo + 1)


def _planes(volume: np.ndarray, centre: Sequence[int]) -> list[np.ndarray]:
    z, y, x = centre
    return [volume[z], volume[:, y, :], volume[:, :, x]]


def _aspects(spacing_zyx: Sequence[float]) -> list[float]:
    sz, sy, sx = spacing_zyx
    return [sy / sx, sz / sx, sz / sy]


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=72)
    FigureCanvasAgg(fig)
    fig.patch.set_facecolor("black")
    return fig


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", facecolor=fig.get_facecolor())
    return buf.getvalue()


def _draw(ax: Any, image: np.ndarray, window: tuple[float, float], aspect: float, *, flip: bool,
          label: np.ndarray | None = None, prediction: np.ndarray | None = None) -> None:
    origin = "lower" if flip else "upper"  # superior up in coronal and sagittal views
    ax.imshow(image, cmap="gray", vmin=window[0], vmax=window[1], aspect=aspect, origin=origin,
              interpolation="nearest")
    for mask, colour, style in ((label, _LABEL, "solid"), (prediction, _PREDICTION, "dashed")):
        if mask is not None and np.any(mask) and not np.all(mask):
            # no origin here: contour's origin shifts/flips Z against imshow's pixel centres; the axes already
            # carry imshow's orientation
            ax.contour(mask.astype(float), levels=[0.5], colors=[colour], linewidths=1.0, linestyles=style)
    ax.set_axis_off()


def case_thumbnail(case: Case, *, prediction: np.ndarray | None = None, title: str = "", caption: str = "") \
        -> Thumbnail:
    """Axial, coronal and sagittal slices through the lesion with the label (and prediction) contours.

    Args:
        case: the case (its first channel is shown).
        prediction: a 0/1 mask on the case's grid (the reference segmenter's), or None.
        title: first line of the caption (default: the case id).
        caption: the rest of the caption.
    """
    image = next(iter(case.channels.values()))
    centre = lesion_centre(case)
    window = _window(image, case.modality)
    label = case.label > 0 if case.label is not None else None
    fig = _figure(4.5, 1.6)
    for i, (plane, aspect) in enumerate(zip(_planes(image, centre), _aspects(case.geometry.spacing_zyx))):
        ax = fig.add_axes((i / 3, 0, 1 / 3, 1))
        _draw(ax, plane, window, aspect, flip=i > 0,
              label=_planes(label, centre)[i] if label is not None else None,
              prediction=_planes(prediction, centre)[i] if prediction is not None else None)
    return Thumbnail(title or case.case_id, caption, _png(fig))


def pair_thumbnail(left: Case, right: Case, *, title: str, caption: str) -> Thumbnail:
    """Two cases side by side: axial and coronal slices through each one's lesion.

    Args:
        left: the synthetic case.
        right: the real case.
        title: first line of the caption.
        caption: the rest.
    """
    fig = _figure(4.5, 1.2)
    for j, case in enumerate((left, right)):
        image = next(iter(case.channels.values()))
        centre = lesion_centre(case)
        window = _window(image, case.modality)
        label = case.label > 0 if case.label is not None else None
        aspects = _aspects(case.geometry.spacing_zyx)
        for i in range(2):
            ax = fig.add_axes(((2 * j + i) / 4, 0, 1 / 4, 1))
            _draw(ax, _planes(image, centre)[i], window, aspects[i], flip=i > 0,
                  label=_planes(label, centre)[i] if label is not None else None)
    return Thumbnail(title, caption, _png(fig))


def _prediction_on(case: Case, path: Path) -> np.ndarray | None:
    """The saved prediction resampled (nearest neighbour) onto the case's grid; None when unreadable."""
    try:
        import SimpleITK as sitk

        from ..io.images import to_sitk

        pred = sitk.ReadImage(str(path))
        ref = to_sitk(next(iter(case.channels.values())), case.geometry)
        out = sitk.Resample(pred, ref, sitk.Transform(), sitk.sitkNearestNeighbor, 0, pred.GetPixelID())
        return sitk.GetArrayFromImage(out) > 0
    except (RuntimeError, OSError):
        return None


def _load(root: str | None, ids: Sequence[str] | None = None) -> dict[str, Case]:
    from ..io.datasets import load_dataset

    if not root or not Path(root).exists():
        return {}
    ds = load_dataset(root)
    wanted = [i for i in (ids if ids is not None else ds.case_ids) if i in ds.case_ids]
    return {c.case_id: c for c in ds.subset(wanted)} if wanted else {}


def build_gallery(report: EvaluationReport, *, max_cases: int = 6, max_pairs: int = 3) -> Gallery:
    """The thumbnails of one evaluation report.

    Args:
        report: the report, read from (or about to be written to) its folder (predictions are read from it).
        max_cases: synthetic cases shown (and matched to real ones).
        max_pairs: closest synthetic/training pairs shown.
    """
    out = Gallery()
    roots = report.dataset_roots()
    if "synthetic" not in roots:
        out.notes["synthetic"] = "the synthetic set was given in memory, not as a dataset folder: no thumbnails"
        return out
    syn_ids = [str(i) for i in (report.data.get("synthetic", {}).get("case_ids") or [])][:max_cases]
    synthetic = _load(roots["synthetic"], syn_ids or None)
    if not synthetic:
        out.notes["synthetic"] = f"the synthetic dataset folder {roots['synthetic']} cannot be read any more"
        return out
    adherence = {r.case_id: r for r in report.adherence_rows()}
    for sid, case in list(synthetic.items())[:max_cases]:
        row = adherence.get(sid)
        pred = _prediction_on(case, report.folder / row.prediction) if row and row.prediction else None
        caption = f"lesion {fmt(case.lesion_volume_ml(), 1)} ml"
        if row is not None:
            caption += f"; label vs prediction Dice {fmt(row.dice, 2)}" + (" (fails)" if row.reason else "")
        out.synthetic.append(case_thumbnail(case, prediction=pred, caption=caption))
    if not adherence:
        out.notes["synthetic"] = "the adherence check did not run: label contours only, no prediction"

    pairs = report.closest_pairs()[:max_pairs]
    train_root = roots.get("real_train")
    if pairs and train_root:
        real = _load(train_root, sorted({p.training_id for p in pairs}))
        extra = _load(roots["synthetic"], sorted({p.synthetic_id for p in pairs} - set(synthetic)))
        baseline = report.holdout_distances().get(pairs[0].space, [])
        median = float(np.median(baseline)) if baseline else math.nan
        for p in pairs:
            left, right = synthetic.get(p.synthetic_id) or extra.get(p.synthetic_id), real.get(p.training_id)
            if left is None or right is None:
                continue
            out.closest_pairs.append(pair_thumbnail(
                left, right, title=f"{p.synthetic_id} | {p.training_id}",
                caption=f"{p.space} distance {fmt(p.distance, 2)} vs holdout median {fmt(median, 2)}"
                        + (" - under the memorization threshold" if p.memorized else "")))
    elif not pairs:
        out.notes["closest_pairs"] = "the privacy check did not run"
    if train_root:
        ids = [str(i) for i in (report.data.get("real_train", {}).get("case_ids") or [])]
        if len(ids) > MAX_REAL_FOR_MATCHING:
            ids = [ids[int(k)] for k in np.linspace(0, len(ids) - 1, MAX_REAL_FOR_MATCHING)]
        real_all = _load(train_root, ids or None)
        volumes = {rid: c.lesion_volume_ml() for rid, c in real_all.items() if c.label is not None}
        for sid, case in list(synthetic.items())[:max_cases]:
            if not volumes:
                break
            v = case.lesion_volume_ml()
            rid = min(volumes, key=lambda k: abs(volumes[k] - v))
            out.matched.append(pair_thumbnail(case, real_all[rid], title=f"{sid} | {rid}",
                                              caption=f"lesion {fmt(v, 1)} ml (synthetic) vs "
                                                      f"{fmt(volumes[rid], 1)} ml (real)"))
    else:
        out.notes["matched"] = "the real training set was given in memory: no real cases to show"
    return out
