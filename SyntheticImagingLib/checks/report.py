"""The evaluation report: ``report.json``, CSV tables and ``report.html`` with PNG plots, in one folder.

``report.json`` carries a ``summary`` (:mod:`.summary`: the verdicts in sentences) and ``report.html`` opens with
it (:mod:`.report_page`); :func:`render_plain_html` keeps the flat page of every value.

Any :class:`~.base.CheckResult` is rendered generically: its summary as a key/value table (nested values
flattened to dotted keys), each table as a CSV file plus an HTML table, each figure as a PNG file that is also
embedded in the page (so ``report.html`` can be mailed alone). The utility plots (Dice per regime with CIs, Dice
vs real-set size) are made here with matplotlib's Agg canvas (no pyplot: no global backend is changed, which
matters inside Slicer).

:func:`write_report` fills a folder that the caller made (``evaluate`` passes the temporary folder of an
:func:`~SyntheticImagingLib.io.atomic.atomic_dir`, so a report is complete under its final name or absent);
:func:`save_report` does both steps for a standalone use.
"""

from __future__ import annotations

import base64
import csv
import dataclasses
import datetime
import enum
import html
import io
import json
import math
import os
import platform
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..io.atomic import atomic_dir, atomic_file, write_json
from .base import CheckResult

__all__ = ["REPORT_SCHEMA", "to_jsonable", "library_versions", "flatten", "write_csv", "write_report",
           "save_report", "render_html", "render_plain_html", "plot_regime_metric", "plot_size_sweep"]

#: Identifies the layout of ``report.json``.
REPORT_SCHEMA = "synthetic-imaging/evaluation-report/1"

_HTML_ROWS = 60  # longer tables are cut in the page; the CSV has every row
_KIND_COLOURS = {"real": "#4c72b0", "synthetic": "#dd8452", "real+synthetic": "#55a868"}


def to_jsonable(obj: Any) -> Any:
    """A JSON-safe copy: numpy scalars/arrays to Python, NaN/Inf to None, paths/enums to strings.

    Args:
        obj: any nesting of dicts, lists, dataclasses, numpy values.

    Example:
        >>> to_jsonable({"a": np.float32(0.5), "b": float("nan"), "c": (1, 2)})
        {'a': 0.5, 'b': None, 'c': [1, 2]}
    """
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return to_jsonable(dataclasses.asdict(obj))
    if isinstance(obj, enum.Enum):
        return to_jsonable(obj.value)
    if isinstance(obj, (str, bool)) or obj is None:
        return obj
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    return str(obj)


def library_versions() -> dict[str, Any]:
    """Versions of Python, this library and the numerical stack, and the accelerator seen by torch."""
    from importlib import metadata

    from .. import __version__

    out: dict[str, Any] = {"SyntheticImagingLib": __version__, "python": platform.python_version(),
                           "platform": platform.platform()}
    for dist in ("torch", "monai", "numpy", "scipy", "SimpleITK", "matplotlib"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    try:
        import torch

        out["torch_cuda"] = torch.version.cuda
        out["cuda_device"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except Exception:  # noqa: BLE001  (a broken CUDA setup must not stop the report)
        out["cuda_device"] = None
    return out


def flatten(obj: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Nested dicts as ``(dotted.key, value)`` pairs; lists of numbers stay one value.

    Args:
        obj: the nested value.
        prefix: key prefix.

    Example:
        >>> flatten({"a": {"b": 1, "c": [1, 2]}})
        [('a.b', 1), ('a.c', [1, 2])]
    """
    if isinstance(obj, Mapping) and obj:
        out: list[tuple[str, Any]] = []
        for k, v in obj.items():
            out.extend(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return [(prefix, obj)]


def _columns(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    cols: dict[str, None] = {}
    for row in rows:
        cols.update(dict.fromkeys(row))
    return list(cols)


def _cell(value: Any) -> str:
    value = to_jsonable(value)
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def write_csv(path: str | os.PathLike[str], rows: Sequence[Mapping[str, Any]]) -> Path:
    """Rows (dicts) as a CSV file, columns in order of first appearance; atomically.

    Args:
        path: the CSV file.
        rows: the rows; missing values and NaN are written empty, lists/dicts as JSON.
    """
    path = Path(path)
    cols = _columns(rows)
    with atomic_file(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(cols)
            for row in rows:
                w.writerow([_cell(row.get(c)) for c in cols])
    return path


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name) or "item"


def _figure_path(figure: Path, directory: Path, check: str, name: str) -> str:
    """The figure's path relative to the report folder, copying it in when it lives elsewhere."""
    figure = Path(figure)
    try:
        return figure.resolve().relative_to(directory.resolve()).as_posix()
    except ValueError:
        target = directory / "figures" / f"{_safe(check)}_{_safe(name)}{figure.suffix or '.png'}"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(figure, target)
        return target.relative_to(directory).as_posix()


def _check_entry(result: CheckResult, directory: Path, seconds: float | None) -> dict[str, Any]:
    tables: dict[str, Any] = {}
    for tname, rows in result.tables.items():
        rel = f"tables/{_safe(result.name)}_{_safe(tname)}.csv"
        write_csv(directory / rel, rows)
        tables[tname] = {"csv": rel, "columns": _columns(rows), "rows": to_jsonable(rows)}
    figures = {}
    for fname, fpath in result.figures.items():
        if fpath is not None and Path(fpath).exists():
            figures[fname] = _figure_path(Path(fpath), directory, result.name, fname)
    return {"status": "ok", "seconds": seconds, "summary": to_jsonable(result.summary), "tables": tables,
            "figures": figures, "details": to_jsonable(result.details)}


def write_report(directory: str | os.PathLike[str], *, results: Sequence[CheckResult],
                 settings: Mapping[str, Any], data: Mapping[str, Any], requested: Sequence[str] | None = None,
                 skipped: Mapping[str, str] | None = None, failed: Mapping[str, str] | None = None,
                 seconds: Mapping[str, float] | None = None) -> dict[str, Any]:
    """Write ``report.json``, ``tables/*.csv`` and ``report.html`` into ``directory``; return the report.

    Args:
        directory: an existing folder (normally the temporary folder of an atomic output).
        results: the checks' results, in run order.
        settings: how the evaluation ran (profile, seed, device, ...).
        data: fingerprints of the data sets (counts, ids hash, spacing, modality, ...).
        requested: the checks asked for, in order (default: those of ``results``).
        skipped: check name -> why it did not run (not registered...).
        failed: check name -> the error that stopped it.
        seconds: check name -> wall time.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    skipped, failed, seconds = dict(skipped or {}), dict(failed or {}), dict(seconds or {})
    checks: dict[str, Any] = {}
    by_name = {r.name: r for r in results}
    order = list(requested) if requested is not None else list(by_name)
    for name in [*order, *[n for n in by_name if n not in order]]:
        if name in by_name:
            checks[name] = _check_entry(by_name[name], directory, seconds.get(name))
        elif name in failed:
            checks[name] = {"status": "failed", "message": failed[name], "seconds": seconds.get(name)}
        else:
            checks[name] = {"status": "skipped", "message": skipped.get(name, "not run")}
    complete = all(c["status"] == "ok" for c in checks.values())
    report: dict[str, Any] = {
        "schema": REPORT_SCHEMA,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),  # noqa: UP017
        "status": "complete" if complete else "incomplete",
        "settings": to_jsonable(settings), "data": to_jsonable(data), "versions": library_versions(),
        "checks": checks, "files": {"json": "report.json", "html": "report.html", "tables": "tables/"},
    }
    from .report_model import EvaluationReport
    from .summary import summarize

    # the verdict in sentences, stored so that readers (the Slicer module, scripts) need not recompute it
    report["summary"] = to_jsonable(summarize(EvaluationReport.from_dict(report, directory)).to_dict())
    write_json(directory / "report.json", report)
    with atomic_file(directory / "report.html") as tmp:
        tmp.write_text(render_html(report, directory), encoding="utf-8")
    return report


def save_report(out_dir: str | os.PathLike[str], *, overwrite: bool = False, **kwargs: Any) -> dict[str, Any]:
    """:func:`write_report` into a new folder, atomically (complete under its name, or absent).

    Args:
        out_dir: the report folder.
        overwrite: replace an existing non-empty folder.
        **kwargs: as :func:`write_report`.
    """
    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        report = write_report(tmp, **kwargs)
    return report


# ---------------------------------------------------------------- HTML

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}h3{margin-top:1.2em}
table{border-collapse:collapse;margin:.5em 0;font-size:.85em}
td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left;vertical-align:top}
th{background:#f2f2f2}.ok{color:#1a7f37}.failed{color:#c62828}.skipped{color:#8a6d00}
figure{display:inline-block;margin:.5em}figcaption{font-size:.85em;color:#555}
img{max-width:520px;border:1px solid #ddd}.note{color:#555;font-size:.9em}
"""


def _esc(value: Any) -> str:
    return html.escape(_cell(value))


def _kv_table(pairs: Sequence[tuple[str, Any]]) -> str:
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{_esc(v)}</td></tr>" for k, v in pairs)
    return f"<table>{rows}</table>"


def _rows_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_esc(r.get(c))}</td>" for c in columns) + "</tr>"
                   for r in rows[:_HTML_ROWS])
    return f"<table><tr>{head}</tr>{body}</table>"


def _img(directory: Path, rel: str, caption: str) -> str:
    path = directory / rel
    try:
        data = base64.b64encode(path.read_bytes()).decode("ascii")
    except OSError:
        return f"<p class='failed'>figure {html.escape(rel)} is missing</p>"
    mime = "image/png" if path.suffix.lower() == ".png" else "image/" + path.suffix.lstrip(".").lower()
    return (f"<figure><a href='{html.escape(rel)}'><img alt='{html.escape(caption)}' "
            f"src='data:{mime};base64,{data}'></a><figcaption>{html.escape(caption)}</figcaption></figure>")


def render_html(report: Mapping[str, Any], directory: str | os.PathLike[str]) -> str:
    """The report page: the verdict, pictures of the cases, then details (:func:`.report_page.render_page`).

    Args:
        report: the ``report.json`` content.
        directory: the report folder (figures are read from it and embedded).
    """
    from .report_page import render_page

    return render_page(report, directory)


def render_plain_html(report: Mapping[str, Any], directory: str | os.PathLike[str]) -> str:
    """Every value of the report, flattened: overview, settings, data, versions, then one section per check.

    Args:
        report: the ``report.json`` content.
        directory: the report folder (figures are read from it and embedded).
    """
    directory = Path(directory)
    checks: Mapping[str, Any] = report.get("checks", {})
    parts = ["<!DOCTYPE html><html><head><meta charset='utf-8'><title>Synthetic data evaluation</title>",
             f"<style>{_CSS}</style></head><body>",
             "<h1>Synthetic data evaluation</h1>",
             f"<p>Status: <b class='{'ok' if report.get('status') == 'complete' else 'failed'}'>"
             f"{_esc(report.get('status'))}</b> &middot; created {_esc(report.get('created'))} &middot; "
             "<a href='report.json'>report.json</a></p>",
             "<h2 id='overview'>Overview</h2><table><tr><th>check</th><th>status</th><th>seconds</th>"
             "<th>message</th></tr>"]
    for name, c in checks.items():
        parts.append(f"<tr><td><a href='#check-{_safe(name)}'>{html.escape(name)}</a></td>"
                     f"<td class='{html.escape(c['status'])}'>{html.escape(c['status'])}</td>"
                     f"<td>{_esc(c.get('seconds'))}</td><td>{_esc(c.get('message', ''))}</td></tr>")
    parts.append("</table>")
    parts.append("<h2 id='settings'>Settings</h2>" + _kv_table(flatten(report.get("settings", {}))))
    data = report.get("data", {})
    parts.append("<h2 id='data'>Data</h2>")
    for set_name, info in data.items():
        parts.append(f"<h3>{html.escape(str(set_name))}</h3>" + _kv_table(flatten(info)))
    parts.append("<h2 id='versions'>Versions</h2>" + _kv_table(flatten(report.get("versions", {}))))
    for name, c in checks.items():
        parts.append(f"<h2 id='check-{_safe(name)}'>Check: {html.escape(name)}</h2>")
        if c["status"] != "ok":
            parts.append(f"<p class='{html.escape(c['status'])}'>{html.escape(c['status'])}: "
                         f"{_esc(c.get('message', ''))}</p>")
            continue
        parts.append("<h3>Summary</h3>" + _kv_table(flatten(c.get("summary", {}))))
        if c.get("figures"):
            parts.append("<h3>Figures</h3>")
            parts.extend(_img(directory, rel, fname) for fname, rel in c["figures"].items())
        for tname, t in c.get("tables", {}).items():
            n = len(t["rows"])
            cut = f" (first {_HTML_ROWS} of {n} rows)" if n > _HTML_ROWS else f" ({n} rows)"
            parts.append(f"<h3>Table: {html.escape(tname)}</h3><p class='note'><a href='{html.escape(t['csv'])}'>"
                         f"{html.escape(t['csv'])}</a>{cut}</p>" + _rows_table(t["rows"], t["columns"]))
    parts.append("</body></html>")
    return "\n".join(parts)


# ---------------------------------------------------------------- plots


def _figure(width: float = 6.4, height: float = 4.0) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    with atomic_file(path) as tmp:
        tmp.write_bytes(buf.getvalue())
    return path


def _num(v: Any) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return float("nan")
    return f


def plot_regime_metric(rows: Sequence[Mapping[str, Any]], path: str | os.PathLike[str], *, metric: str = "dice",
                       label: str = "Dice") -> Path:
    """Bar chart of one metric per regime with 95 % CI error bars (from the utility ``regimes`` table).

    Args:
        rows: rows with ``regime``, ``kind``, ``{metric}``, ``{metric}_lo``, ``{metric}_hi``.
        path: PNG to write.
        metric: the column to plot.
        label: y-axis label.
    """
    fig = _figure(max(5.0, 0.8 * len(rows) + 2), 4.0)
    ax = fig.add_subplot(111)
    x = np.arange(len(rows))
    means = np.array([_num(r.get(metric)) for r in rows])
    lo = np.array([_num(r.get(f"{metric}_lo")) for r in rows])
    hi = np.array([_num(r.get(f"{metric}_hi")) for r in rows])
    err = np.vstack([np.where(np.isfinite(lo), means - lo, 0), np.where(np.isfinite(hi), hi - means, 0)])
    colours = [_KIND_COLOURS.get(str(r.get("kind")), "#888888") for r in rows]
    ax.bar(x, np.nan_to_num(means), color=colours, yerr=np.clip(err, 0, None), capsize=4)
    top = float(np.nanmax(np.concatenate([means, hi]))) if np.isfinite(means).any() else 1.0
    for xi, m in zip(x, means):
        if np.isfinite(m):  # inside the bar, clear of the error bar caps
            ax.text(xi, 0.02 * top, f"{m:.2f}", ha="center", va="bottom", fontsize=8, color="white")
    ax.set_xticks(x)
    ax.set_xticklabels([str(r.get("regime")) for r in rows], rotation=30, ha="right")
    ax.set_ylabel(label)
    if metric == "dice" or metric.endswith("sensitivity"):
        ax.set_ylim(0, 1.2)  # headroom for the legend
    elif np.isfinite(top):
        ax.set_ylim(0, 1.2 * top)
    from matplotlib.patches import Patch

    kinds = [k for k in _KIND_COLOURS if any(r.get("kind") == k for r in rows)]
    if kinds:
        ax.legend(handles=[Patch(color=_KIND_COLOURS[k], label=k) for k in kinds], fontsize=8, loc="upper center",
                  ncol=len(kinds))
    ax.set_title(f"{label}: mean and 95 % CI over seeds")
    return _save(fig, Path(path))


def plot_size_sweep(rows: Sequence[Mapping[str, Any]], path: str | os.PathLike[str], *,
                    tstr: Mapping[str, Any] | None = None, equivalent: Mapping[str, Any] | None = None) -> Path:
    """Dice vs number of real training cases, without and with the synthetic set (utility ``size_sweep``).

    Args:
        rows: rows with ``n_real``, ``with_synthetic``, ``dice``, ``dice_lo``, ``dice_hi``.
        path: PNG to write.
        tstr: the synthetic-only result (``dice``, ``dice_ci95``), drawn as a horizontal band.
        equivalent: the real-equivalent result (``value``, ``outcome``, ``text``), marked on the curve.
    """
    fig = _figure(6.4, 4.2)
    ax = fig.add_subplot(111)
    for with_syn, name, colour in ((False, "real only", _KIND_COLOURS["real"]),
                                   (True, "real + synthetic", _KIND_COLOURS["real+synthetic"])):
        pts = sorted((r for r in rows if bool(r.get("with_synthetic")) == with_syn), key=lambda r: _num(r["n_real"]))
        if not pts:
            continue
        n = np.array([_num(r["n_real"]) for r in pts])
        m = np.array([_num(r["dice"]) for r in pts])
        lo = np.array([_num(r.get("dice_lo")) for r in pts])
        hi = np.array([_num(r.get("dice_hi")) for r in pts])
        ax.plot(n, m, "o-", color=colour, label=name)
        ok = np.isfinite(lo) & np.isfinite(hi)
        if ok.any():
            ax.fill_between(n[ok], lo[ok], hi[ok], color=colour, alpha=0.2)
    if tstr is not None and math.isfinite(_num(tstr.get("dice"))):
        t = _num(tstr["dice"])
        ax.axhline(t, color=_KIND_COLOURS["synthetic"], ls="--", label="synthetic only (TSTR)")
        ci = tstr.get("dice_ci95") or [None, None]
        if all(v is not None and math.isfinite(_num(v)) for v in ci):
            ax.axhspan(_num(ci[0]), _num(ci[1]), color=_KIND_COLOURS["synthetic"], alpha=0.12)
        if equivalent and equivalent.get("value") is not None:
            ax.plot([equivalent["value"]], [t], "*", color="k", ms=12, label="real-equivalent")
    if equivalent and equivalent.get("text"):
        ax.set_title(str(equivalent["text"]), fontsize=9)
    sizes = sorted({_num(r["n_real"]) for r in rows})
    if sizes:
        ax.set_xticks(sizes)
        ax.set_xticklabels([f"{s:g}" for s in sizes])
    ax.set_xlabel("real training cases")
    ax.set_ylabel("Dice on real test cases")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, Path(path))
