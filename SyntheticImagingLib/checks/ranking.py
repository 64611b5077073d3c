"""Rank several generators' synthetic sets against the same real train/test split.

Each set gets a full :func:`~.evaluate.evaluate` report in ``out_dir/<name>/``; prepared real cases are shared
through an on-disk cache. Generators are sorted by what matters downstream, utility on REAL held-out data (TSTR
Dice mean, its 95 % CI over seeds, and the real+synthetic Dice), with label adherence, KID and Fréchet distance
with bootstrap CIs (:mod:`.small_sample`, one encoder trained on the real training cases for all sets) and the
privacy verdict beside. A ``warning`` column says when fidelity CIs overlap another generator's, i.e. the
fidelity numbers cannot order those two.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..cases import Case
from ..errors import InputError
from ..io.atomic import atomic_dir, write_json
from ..progress import ProgressCallback, Reporter, as_reporter
from .base import CheckContext, Profile
from .encoder import get_encoder
from .evaluate import evaluate, resolve_profile
from .prepare import prepare_cases
from .report import to_jsonable, write_csv
from .segmenter import cpu_threads, resolve_device
from .small_sample import fidelity_with_cis

__all__ = ["rank_generators", "unique_names", "RANKING_CHECKS", "RANKING_COLUMNS"]

#: The checks run for each set when none are named.
RANKING_CHECKS = ("utility", "adherence", "fidelity", "privacy")

#: Columns of ``ranking.csv``, in order.
RANKING_COLUMNS = (
    "rank", "generator", "n_synthetic", "utility_tstr_dice", "utility_tstr_dice_lo", "utility_tstr_dice_hi",
    "utility_rs_dice", "utility_rs_dice_lo", "utility_rs_dice_hi", "utility_trtr_dice", "adherence_dice",
    "adherence_dice_real", "adherence_share_below", "adherence_verdict", "kid", "kid_lo", "kid_hi", "fd", "fd_lo",
    "fd_hi", "precision", "precision_lo", "precision_hi", "recall", "recall_lo", "recall_hi", "lesion_sd_synthetic",
    "lesion_sd_real", "lesion_texture_within_real_range", "privacy_verdict",
    "status", "warning", "report")

_NAN = float("nan")


def _num(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return _NAN


def _summary(report: Mapping[str, Any], check: str) -> dict[str, Any]:
    entry = report.get("checks", {}).get(check, {})
    return entry.get("summary", {}) if entry.get("status") == "ok" else {}


def _row(name: str, report: Mapping[str, Any], folder: str) -> dict[str, Any]:
    util = _summary(report, "utility").get("regimes", {})
    tstr = util.get("TSTR", {})
    rs_name = next((k for k in sorted(util) if k.startswith("R+S x")), None)
    rs = util.get(rs_name, {}) if rs_name else {}
    adh = _summary(report, "adherence")
    priv = _summary(report, "privacy")
    fid = _summary(report, "fidelity")
    row: dict[str, Any] = {
        "generator": name, "n_synthetic": report.get("data", {}).get("synthetic", {}).get("cases"),
        "utility_tstr_dice": _num(tstr.get("dice")),
        "utility_tstr_dice_lo": _num((tstr.get("dice_ci95") or [None, None])[0]),
        "utility_tstr_dice_hi": _num((tstr.get("dice_ci95") or [None, None])[1]),
        "utility_rs_dice": _num(rs.get("dice")), "utility_rs_dice_lo": _num((rs.get("dice_ci95") or [None])[0]),
        "utility_rs_dice_hi": _num((rs.get("dice_ci95") or [None, None])[1]),
        "utility_trtr_dice": _num(util.get("TRTR", {}).get("dice")),
        "adherence_dice": _num(adh.get("dice_synthetic_mean")), "adherence_dice_real": _num(adh.get("dice_real_mean")),
        "adherence_share_below": _num(adh.get("share_below_threshold")),
        "adherence_verdict": adh.get("verdict", "not run"), "privacy_verdict": priv.get("verdict", "not run"),
        "lesion_sd_synthetic": _num(fid.get("lesion_sd_synthetic")), "lesion_sd_real": _num(fid.get("lesion_sd_real")),
        "lesion_texture_within_real_range": _num(fid.get("lesion_texture_within_real_range")),
        "status": report.get("status", ""), "report": f"{folder}/report.html",
    }
    return row


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    if not all(math.isfinite(v) for v in (*a, *b)):
        return True  # an interval that could not be computed separates nothing
    return a[0] <= b[1] and b[0] <= a[1]


def _warnings(rows: list[dict[str, Any]], fidelity: Mapping[str, dict[str, Any]]) -> None:
    for row in rows:
        notes = []
        if row["generator"] in fidelity:
            others = [o for o in rows if o is not row and o["generator"] in fidelity]
            for metric in ("kid", "fd"):
                hits = [o["generator"] for o in others
                        if _overlap((row[f"{metric}_lo"], row[f"{metric}_hi"]), (o[f"{metric}_lo"], o[f"{metric}_hi"]))]
                if hits:
                    notes.append(f"{metric.upper()} CI overlaps {', '.join(hits)}")
            if fidelity[row["generator"]].get("warning"):
                notes.append(fidelity[row["generator"]]["warning"])
        if row["status"] != "complete":
            notes.append(f"evaluation {row['status']}")
        row["warning"] = "; ".join(notes)


def _plot(rows: Sequence[Mapping[str, Any]], path: Path) -> Path:
    from .report import _figure, _save

    fig = _figure(9.0, 1.2 + 0.5 * max(2, len(rows)))
    names = [str(r["generator"]) for r in rows][::-1]
    y = np.arange(len(names))
    panels = (("utility_tstr_dice", "TSTR Dice on real held-out (95% CI)"), ("kid", "KID vs real train (95% CI)"),
              ("adherence_dice", "label adherence Dice"))
    for i, (key, title) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        vals = np.array([_num(r.get(key)) for r in rows][::-1])
        lo = np.array([_num(r.get(f"{key}_lo", r.get(key))) for r in rows][::-1])
        hi = np.array([_num(r.get(f"{key}_hi", r.get(key))) for r in rows][::-1])
        err = np.vstack([np.nan_to_num(vals - lo, nan=0.0), np.nan_to_num(hi - vals, nan=0.0)]).clip(0)
        ax.errorbar(np.nan_to_num(vals), y, xerr=err, fmt="o", capsize=3)
        if key == "adherence_dice":
            real = [_num(r.get("adherence_dice_real")) for r in rows]
            if any(math.isfinite(v) for v in real):
                ax.axvline(float(np.nanmean(real)), color="k", ls="--", lw=1, label="real held-out")
                ax.legend(fontsize=7)
        ax.set_yticks(y, names if i == 0 else [""] * len(names))
        ax.set_title(title, fontsize=8)
        ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)


def unique_names(names: Iterable[str]) -> list[str]:
    """The names with ``_2``, ``_3``... appended to repeats (two folders called ``synthetic`` stay apart).

    Args:
        names: names in order.

    Example:
        >>> unique_names(["a", "b", "a"])
        ['a', 'b', 'a_2']
    """
    out: list[str] = []
    for name in names:
        base, k = name, 2
        while name in out:
            name, k = f"{base}_{k}", k + 1
        out.append(name)
    return out


def rank_generators(real_train: Sequence[Case], real_test: Sequence[Case] | None,
                    synthetic_sets: Mapping[str, Sequence[Case]], *, out_dir: str | os.PathLike[str],
                    profile: str | Profile = "quick", device: str = "auto", seed: int = 0,
                    progress: Reporter | ProgressCallback | None = None, checks: str | Iterable[str] = RANKING_CHECKS,
                    fidelity_cis: bool = True, n_boot: int = 500, overwrite: bool = False,
                    cache_dir: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Evaluate every synthetic set and write ``ranking.csv``, ``ranking.json``, ``ranking.png`` and ``ranking.html``.

    Args:
        real_train: real cases the generators were made from (Dataset or list of Cases).
        real_test: real held-out cases, disjoint from ``real_train`` by case id; None: k-fold by case over
            ``real_train`` (see :func:`.evaluate.evaluate`).
        synthetic_sets: generator name -> its synthetic cases (names become folder names).
        out_dir: the ranking folder to create (one report folder per generator inside).
        profile: ``quick``, ``full`` or a :class:`Profile`.
        device: ``auto``, ``cpu`` or ``cuda``.
        seed: base seed of every check.
        progress: progress + cancel (stages ``<generator>:...`` and ``ranking:*``).
        checks: checks run for each set.
        fidelity_cis: compute KID / FD / precision / recall with CIs (trains one encoder on the real training set).
        n_boot: bootstrap resamples of the fidelity CIs.
        overwrite: replace an existing non-empty ``out_dir``.
        cache_dir: folder for prepared cases and trained segmenters (None: a temporary one inside the output,
            removed at the end); the real-only segmenters are trained once for all generators either way.

    Returns:
        ``rows`` (sorted by TSTR Dice, best first), ``columns``, ``settings``, ``fidelity`` (per generator) and
        ``files``; the content of ``ranking.json``.
    """
    if not synthetic_sets:
        raise InputError("no synthetic set to rank", fix="give one or more synthetic datasets")
    bad = [n for n in synthetic_sets if not n or "/" in n or n.startswith(".") or n in ("ranking.csv",)]
    if bad:
        raise InputError(f"generator names {bad} cannot be folder names", fix="use plain names such as 'gan'")
    prof = resolve_profile(profile)
    reporter = as_reporter(progress)
    dev = resolve_device(device)
    names = list(synthetic_sets)
    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        cache = Path(cache_dir) if cache_dir is not None else tmp / ".prepared"
        cache.mkdir(parents=True, exist_ok=True)
        rows: list[dict[str, Any]] = []
        reports: dict[str, Any] = {}
        for i, name in enumerate(names):
            reporter.report("ranking", i, len(names), f"evaluating {name}")
            report = evaluate(real_train, real_test, synthetic_sets[name], out_dir=tmp / name, checks=checks,
                              profile=prof, device=device, seed=seed, progress=reporter.child(name),
                              cache_dir=cache)
            reports[name] = {"status": report.get("status"), "folder": name}
            rows.append(_row(name, report, name))
        fidelity: dict[str, dict[str, Any]] = {}
        if fidelity_cis:
            reporter.report("ranking", len(names), len(names), "fidelity CIs")
            context = CheckContext(profile=prof, out_dir=tmp, progress=reporter.child("ranking"), device=str(dev),
                                   seed=seed)
            train = prepare_cases(real_train, prof, cache_dir=cache)
            with cpu_threads(None, dev):
                enc = get_encoder(train, context=context)
                real_emb = enc.embed(train)
                for name in names:
                    syn_emb = enc.embed(prepare_cases(synthetic_sets[name], prof, cache_dir=cache))
                    fidelity[name] = fidelity_with_cis(real_emb, syn_emb, n_boot=n_boot, seed=seed)
        for row in rows:
            fid = fidelity.get(row["generator"], {})
            for key in ("kid", "fd", "precision", "recall"):
                for suffix in ("", "_lo", "_hi"):
                    row[f"{key}{suffix}"] = _num(fid.get(f"{key}{suffix}"))
        _warnings(rows, fidelity)
        # best utility on real held-out data first; a set whose utility is unknown goes last
        rows.sort(key=lambda r: (not math.isfinite(r["utility_tstr_dice"]), -np.nan_to_num(r["utility_tstr_dice"]),
                                 -np.nan_to_num(r["utility_rs_dice"])))
        for k, row in enumerate(rows, start=1):
            row["rank"] = k
        rows = [{c: row.get(c) for c in RANKING_COLUMNS} for row in rows]
        if cache_dir is None:
            shutil.rmtree(cache, ignore_errors=True)
        write_csv(tmp / "ranking.csv", rows)
        _plot(rows, tmp / "ranking.png")
        result: dict[str, Any] = {
            "rows": rows, "columns": list(RANKING_COLUMNS), "sorted_by": "utility_tstr_dice (TSTR Dice on real "
            "held-out cases), then utility_rs_dice", "reports": reports, "fidelity": fidelity,
            "settings": {"profile": prof, "checks": list(checks) if not isinstance(checks, str) else checks,
                         "seed": seed, "device": str(dev), "n_boot": n_boot,
                         "fidelity_space": "self-supervised encoder trained on the real training cases"},
            "files": {"csv": "ranking.csv", "json": "ranking.json", "figure": "ranking.png",
                      "html": "ranking.html"},
        }
        result = to_jsonable(result)
        write_json(tmp / "ranking.json", result)
        from .ranking_page import write_ranking_page

        write_ranking_page(tmp)  # reads ranking.json and the reports just written
    return result
