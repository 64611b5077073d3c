"""``report.html``: the verdict first, then pictures, then details; one self-contained file.

Layout, top to bottom (after SDMetrics' quality report: one overall answer, then properties, then details):

1. **Verdict**: the four answers of :mod:`.summary` as traffic-light cards, each with its key numbers as chips
   (``data-key`` / ``data-value`` carry the exact value from ``report.json``, the text is rounded to what its CI
   supports), the thresholds and what to do next.
2. **Pictures**: synthetic cases through their lesions with label and prediction contours, the closest
   synthetic/training pairs, real beside synthetic cases at matched lesion size (:mod:`.gallery`), the utility plots.
3. **Details** per check: a Methods paragraph (:mod:`.methods`), figures and sortable tables (numbers rounded),
   every summary value folded away.
4. Settings, data fingerprints and versions, folded at the bottom.

Every image is an embedded PNG (data URI), so the page opens offline from any folder. The sort script is inline.
"""

from __future__ import annotations

import base64
import html
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .gallery import Gallery, Thumbnail, build_gallery
from .methods import methods_text
from .report import _HTML_ROWS, _cell, _img, _safe, flatten
from .report_model import EvaluationReport
from .rounding import decimals_for_ci, finite, fmt
from .summary import ReportSummary, Verdict, summarize

__all__ = ["render_page", "refresh_report", "verdict_html", "CHIPS", "MAIN_TABLES", "SORT_SCRIPT"]

#: Key numbers shown as chips on each verdict card: (label, number key, CI key or None, decimals or None).
CHIPS: dict[str, list[tuple[str, str, str | None, int | None]]] = {
    "utility": [("TSTR / TRTR Dice", "tstr_over_trtr_dice", "tstr_over_trtr_dice_ci95", None),
                ("worth real cases", "real_equivalent", "real_equivalent_ci95", 0),
                ("TSTR Dice", "tstr_dice", "tstr_dice_ci95", None)],
    "adherence": [("failing cases", "n_below_threshold", None, 0),
                  ("Dice synthetic", "dice_synthetic_mean", None, 2), ("Dice real", "dice_real_mean", None, 2)],
    "privacy": [("privacy verdict", "verdict", None, None),
                ("closest pair distance", "closest_distance", None, None),
                ("holdout median", "holdout_distance_median", None, None)],
    "fidelity": [("FD / real baseline", "fd_over_baseline", None, 1), ("KID", "kid", "kid_ci95", None),
                 ("precision", "precision", None, 2)],
}
#: The table of each check shown open; the others are folded.
MAIN_TABLES = {"utility": "regimes", "adherence": "per_case", "privacy": "closest_pairs",
               "fidelity": "embedding_distances"}

_COLOURS = {"green": "#1a7f37", "amber": "#b7791f", "red": "#c62828", "grey": "#6b7280"}

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:1.2em auto;max-width:1180px;color:#222;
padding:0 1em;line-height:1.35}
h1{font-size:1.45em;margin:.2em 0}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
h3{margin:1em 0 .4em}.sub{color:#555;margin:.1em 0 .7em}
.verdicts{display:grid;grid-template-columns:1fr 1fr;gap:.6em}
.card{border:1px solid #ddd;border-left:8px solid var(--c);border-radius:6px;padding:.45em .7em;font-size:.88em}
.card .q{font-weight:600;font-size:1.08em}.pill{display:inline-block;color:#fff;background:var(--c);
border-radius:9px;padding:0 .55em;font-size:.8em;font-weight:600;margin-right:.4em;text-transform:uppercase}
.chips{margin:.3em 0}.chip{display:inline-block;background:#f4f4f5;border-radius:5px;padding:.05em .45em;
margin:.1em .3em .1em 0;font-size:.95em}.chip b{font-variant-numeric:tabular-nums}
.thr{color:#666;font-size:.86em;margin:.25em 0 0}.next{margin:.25em 0 0}.next b{color:var(--c)}
.overall{display:inline-block;color:#fff;background:var(--c);border-radius:6px;padding:.1em .6em;font-weight:600}
.gallery{display:flex;flex-wrap:wrap;gap:.6em}.thumb{margin:0;font-size:.8em;color:#444;max-width:330px}
.thumb img{display:block;width:324px;border:1px solid #ccc}
table{border-collapse:collapse;margin:.4em 0;font-size:.82em}
td,th{border:1px solid #ddd;padding:.15em .45em;text-align:left;vertical-align:top}
td.n{text-align:right;font-variant-numeric:tabular-nums}
th{background:#f2f2f2}table.sortable th{cursor:pointer}table.sortable th:after{content:' \\2195';color:#aaa}
figure{display:inline-block;margin:.4em}figcaption{font-size:.85em;color:#555}
figure img{max-width:520px;border:1px solid #ddd}.note{color:#555;font-size:.9em}
.methods{background:#fafafa;border-left:3px solid #ccc;padding:.4em .7em;font-size:.9em}
details{margin:.4em 0}summary{cursor:pointer;color:#333}.failed{color:#c62828}.skipped{color:#8a6d00}
.scroll{overflow-x:auto;max-width:100%}td{overflow-wrap:anywhere}
.legend span{display:inline-block;width:1.4em;border-top:2px solid;margin:0 .3em .2em .6em}
"""

#: Click a column head to sort a ``table.sortable`` (numbers numerically, text alphabetically).
SORT_SCRIPT = """
document.querySelectorAll('table.sortable').forEach(function(t){
  t.querySelectorAll('th').forEach(function(th,i){
    th.addEventListener('click',function(){
      var rows=Array.prototype.slice.call(t.querySelectorAll('tr')).slice(1);
      var asc=th.dataset.dir!=='asc';th.dataset.dir=asc?'asc':'desc';
      rows.sort(function(a,b){
        var x=a.children[i].textContent,y=b.children[i].textContent,fx=parseFloat(x),fy=parseFloat(y);
        var r=(!isNaN(fx)&&!isNaN(fy))?fx-fy:x.localeCompare(y);return asc?r:-r;});
      rows.forEach(function(r){t.appendChild(r);});});});});
"""


def _e(text: Any) -> str:
    return html.escape(str(text))


def _chip(label: str, key: str, numbers: Mapping[str, Any], ci_key: str | None, decimals: int | None) -> str:
    value = numbers.get(key)
    if value is None and key == "real_equivalent" and numbers.get("real_equivalent_outcome"):
        bound = fmt(numbers.get("real_equivalent_bound"), 0)
        text = f"more than {bound}" if "more" in str(numbers["real_equivalent_outcome"]) else f"fewer than {bound}"
        return f"<span class='chip'>{_e(label)}: <b data-key='{_e(key)}' data-value=''>{_e(text)}</b></span>"
    if isinstance(value, str) or value is None:
        return (f"<span class='chip'>{_e(label)}: <b data-key='{_e(key)}' data-value='{_e(value or '')}'>"
                f"{_e(value if value is not None else 'n/a')}</b></span>")
    ci = numbers.get(ci_key) if ci_key else None
    lo, hi = (ci[0], ci[1]) if isinstance(ci, (list, tuple)) and len(ci) == 2 else (None, None)
    d = decimals if decimals is not None else decimals_for_ci(lo, hi, value=value)
    text = fmt(value, d)
    ci_text = f" [{fmt(lo, d)}, {fmt(hi, d)}]" if finite(lo) is not None and finite(hi) is not None else ""
    return (f"<span class='chip'>{_e(label)}: <b data-key='{_e(key)}' data-value='{_e(json.dumps(value))}' "
            f"data-decimals='{d}'>{_e(text)}</b>{_e(ci_text)}</span>")


def _card(v: Verdict) -> str:
    chips = "".join(_chip(label, key, v.numbers, ci, d) for label, key, ci, d in CHIPS.get(v.key, [])
                    if v.status != "grey")
    nxt = f"<p class='next'><b>Next:</b> {_e(v.next_step)}</p>" if v.next_step else ""
    thr = f"<p class='thr'>Status rule: {_e(v.threshold_text)}</p>" if v.threshold_text else ""
    return (f"<div class='card' id='verdict-{_e(v.key)}' data-status='{_e(v.status)}' "
            f"style='--c:{_COLOURS[v.status]}'><div><span class='pill'>{_e(v.status)}</span>"
            f"<span class='q'>{_e(v.question)}</span> {_e(v.headline)}</div>"
            f"{f'<div class=chips>{chips}</div>' if chips else ''}<div>{_e(v.sentence)}</div>{nxt}{thr}</div>")


def verdict_html(summary: ReportSummary) -> str:
    """The verdict block: overall status, then one card per question.

    Args:
        summary: the report's summary.
    """
    return (f"<section id='verdict'><p class='sub'><span class='overall' style='--c:{_COLOURS[summary.overall]}'>"
            f"Overall: {_e(summary.overall)}</span> {_e(summary.description)}</p>"
            f"<div class='verdicts'>{''.join(_card(v) for v in summary.verdicts)}</div></section>")


def _thumbs(items: Sequence[Thumbnail]) -> str:
    parts = []
    for t in items:
        data = base64.b64encode(t.png).decode("ascii")
        parts.append(f"<figure class='thumb'><img alt='{_e(t.title)}' src='data:image/png;base64,{data}'>"
                     f"<figcaption><b>{_e(t.title)}</b><br>{_e(t.caption)}</figcaption></figure>")
    return f"<div class='gallery'>{''.join(parts)}</div>"


def _pictures(gallery: Gallery, report: Mapping[str, Any], directory: Path) -> str:
    parts = ["<h2 id='pictures'>Pictures</h2>"]
    sections = (("synthetic", "Synthetic cases", "axial, coronal, sagittal through the lesion; "
                 "<span style='border-color:#ff9f1c'></span>label <span style='border-color:#2ec4f0;"
                 "border-top-style:dashed'></span>reference segmenter's prediction", gallery.synthetic),
                ("closest_pairs", "Closest synthetic / training pairs", "synthetic left, its closest training case "
                 "right (axial, coronal)", gallery.closest_pairs),
                ("matched", "Real beside synthetic at matched lesion size", "synthetic left, the real training "
                 "case with the closest lesion volume right", gallery.matched))
    for key, title, legend, items in sections:
        parts.append(f"<h3 id='gallery-{key}'>{title}</h3><p class='note legend'>{legend}</p>")
        parts.append(_thumbs(items) if items else f"<p class='note'>{_e(gallery.notes.get(key, 'nothing to show'))}"
                                                  "</p>")
        if items and key in gallery.notes:
            parts.append(f"<p class='note'>{_e(gallery.notes[key])}</p>")
    utility = report.get("checks", {}).get("utility", {})
    if utility.get("figures"):
        parts.append("<h3 id='utility-plots'>Utility</h3>")
        parts.extend(_img(directory, rel, name.replace("_", " ")) for name, rel in utility["figures"].items())
    return "\n".join(parts)


def _round_cell(row: Mapping[str, Any], col: str) -> tuple[str, bool]:
    value = row.get(col)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return _cell(value), False
    if isinstance(value, int):
        return str(value), True
    base = col[:-3] if col.endswith(("_lo", "_hi")) else col
    if f"{base}_lo" in row and f"{base}_hi" in row:
        return fmt(value, decimals_for_ci(row[f"{base}_lo"], row[f"{base}_hi"], value=row.get(base))), True
    v = finite(value)
    return (f"{v:.3g}" if v is not None else ""), True


def _table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    body = []
    for r in rows[:_HTML_ROWS]:
        cells = []
        for c in columns:
            text, numeric = _round_cell(r, c)
            cells.append(f"<td class='n'>{_e(text)}</td>" if numeric else f"<td>{_e(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<div class='scroll'><table class='sortable'><tr>{head}</tr>{''.join(body)}</table></div>"


def _kv(pairs: Sequence[tuple[str, Any]]) -> str:
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(_cell(v))}</td></tr>" for k, v in pairs)
    return f"<div class='scroll'><table>{rows}</table></div>"


def _check_details(name: str, c: Mapping[str, Any], model: EvaluationReport, directory: Path) -> str:
    parts = [f"<h3 id='check-{_safe(name)}'>{_e(name.capitalize())}</h3>"]
    if c.get("status") != "ok":
        parts.append(f"<p class='{_e(c.get('status'))}'>{_e(c.get('status'))}: {_e(c.get('message', ''))}</p>")
        return "\n".join(parts)
    methods = methods_text(model, name)
    if methods:
        parts.append(f"<p class='methods'><b>Methods.</b> {_e(methods.split('. ', 1)[1])}</p>")
    if name != "utility" and c.get("figures"):
        parts.extend(_img(directory, rel, fname.replace("_", " ")) for fname, rel in c["figures"].items())
    for tname, t in (c.get("tables") or {}).items():
        n = len(t["rows"])
        cut = f"first {_HTML_ROWS} of {n} rows" if n > _HTML_ROWS else f"{n} rows"
        body = (f"<p class='note'>{cut}, click a column to sort; every row: <a href='{_e(t['csv'])}'>"
                f"{_e(t['csv'])}</a></p>" + _table(t["rows"], t["columns"]))
        is_open = " open" if MAIN_TABLES.get(name) == tname else ""
        parts.append(f"<details{is_open}><summary>Table: {_e(tname.replace('_', ' '))}</summary>{body}</details>")
    parts.append(f"<details><summary>Every summary value</summary>{_kv(flatten(c.get('summary', {})))}</details>")
    return "\n".join(parts)


def render_page(report: Mapping[str, Any], directory: str | os.PathLike[str],
                gallery: Gallery | None = None) -> str:
    """The report page.

    Args:
        report: the ``report.json`` content (its ``summary`` is used when present).
        directory: the report folder (figures and predictions are read from it).
        gallery: the thumbnails (default: built from the datasets the report names).
    """
    directory = Path(directory)
    model = EvaluationReport.from_dict(report, directory)
    summary = ReportSummary.from_dict(report["summary"]) if report.get("summary") else summarize(model)
    if gallery is None:
        try:
            gallery = build_gallery(model)
        except Exception as err:  # noqa: BLE001  (pictures are a help: a broken case must not lose the report)
            gallery = Gallery(notes={k: f"no pictures: {type(err).__name__}: {err}"
                                     for k in ("synthetic", "closest_pairs", "matched")})
    checks: Mapping[str, Any] = report.get("checks", {})
    parts = ["<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
             "<meta name='viewport' content='width=device-width, initial-scale=1'>",
             "<title>Synthetic data evaluation</title>", f"<style>{_CSS}</style></head><body>",
             "<h1>Synthetic data evaluation</h1>", verdict_html(summary),
             f"<p class='note'>Report {_e(report.get('status'))}, created {_e(report.get('created'))}. "
             "<a href='#pictures'>Pictures</a> &middot; <a href='#details'>Details</a> &middot; "
             "<a href='#settings'>Settings</a> &middot; <a href='report.json'>report.json</a></p>",
             _pictures(gallery, report, directory), "<h2 id='details'>Details</h2>"]
    parts.extend(_check_details(name, c, model, directory) for name, c in checks.items())
    timing = (report.get("settings") or {}).get("timing_s", {})
    parts.append("<h2 id='settings'>Settings, data and versions</h2>")
    if timing.get("total") is not None:
        parts.append(f"<p class='note'>Ran in {fmt(timing['total'], 0)} s on "
                     f"{_e((report.get('settings') or {}).get('device', '?'))}.</p>")
    parts.append(f"<details><summary>Settings</summary>{_kv(flatten(report.get('settings', {})))}</details>")
    for set_name, info in (report.get("data") or {}).items():
        parts.append(f"<details><summary>Data: {_e(set_name)}</summary>{_kv(flatten(info))}</details>")
    parts.append(f"<details><summary>Versions</summary>{_kv(flatten(report.get('versions', {})))}</details>")
    parts.append(f"<script>{SORT_SCRIPT}</script></body></html>")
    return "\n".join(parts)


def refresh_report(folder: str | os.PathLike[str]) -> Path:
    """Recompute the summary of an existing report folder and rewrite its ``report.json`` and ``report.html``
    (reports written by an earlier version get the verdict block); returns the page.

    Args:
        folder: the evaluation folder.
    """
    from ..io.atomic import atomic_file, write_json
    from .report import to_jsonable
    from .report_model import read_report

    folder = Path(folder)
    model = read_report(folder)
    report = json.loads((model.folder / "report.json").read_text(encoding="utf-8"))
    report["summary"] = to_jsonable(summarize(model).to_dict())
    write_json(model.folder / "report.json", report)
    page = model.folder / "report.html"
    with atomic_file(page) as tmp:
        tmp.write_text(render_page(report, model.folder), encoding="utf-8")
    return page
