"""``ranking.html`` and the ranking's lines for people: one row per generator, the recommended one marked and why.

Each generator's evaluation report carries its verdicts (:mod:`.summary`); the ranking (``ranking.json``) sorts by
TSTR Dice on real held-out cases. The recommended set is the best-ranked one whose privacy and label adherence
are not red (a useful set that copies patients or whose labels drift is not a candidate); when the fidelity or
utility CIs overlap the next one's, the page says the order between them is not certain.
"""

from __future__ import annotations

import base64
import html
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .report_model import read_report
from .rounding import fmt, fmt_ci
from .summary import ReportSummary, summarize

__all__ = ["RankingSummary", "summarize_ranking", "ranking_text", "render_ranking_page", "write_ranking_page"]

_COLOURS = {"green": "#1a7f37", "amber": "#b7791f", "red": "#c62828", "grey": "#6b7280"}
_KEYS = ("utility", "adherence", "privacy", "fidelity")


class RankingSummary:
    """The ranking with each generator's verdicts and the recommendation.

    Args:
        rows: ``ranking.json`` rows, best first.
        summaries: generator -> its report's summary (absent when its report cannot be read).
        recommended: the recommended generator (None when every set is red on privacy or adherence).
        reason: why, in one sentence.
    """

    def __init__(self, rows: list[dict[str, Any]], summaries: dict[str, ReportSummary], recommended: str | None,
                 reason: str) -> None:
        self.rows, self.summaries, self.recommended, self.reason = rows, summaries, recommended, reason


def _status(summary: ReportSummary | None, key: str) -> str:
    v = summary.verdict(key) if summary else None
    return v.status if v else "grey"


def _headline(summary: ReportSummary | None, key: str) -> str:
    v = summary.verdict(key) if summary else None
    return v.headline if v else "not checked"


def summarize_ranking(folder: str | os.PathLike[str]) -> RankingSummary:
    """Read ``ranking.json`` and every generator's report; choose the recommended generator.

    Args:
        folder: the ranking folder (``rank_generators``' ``out_dir``).
    """
    folder = Path(folder)
    ranking = json.loads((folder / "ranking.json").read_text(encoding="utf-8"))
    rows = list(ranking.get("rows", []))
    summaries: dict[str, ReportSummary] = {}
    for row in rows:
        report_dir = folder / str(row.get("generator"))
        if (report_dir / "report.json").exists():
            summaries[str(row["generator"])] = summarize(read_report(report_dir))
    too_small = [name for name, sm in summaries.items() if (v := sm.verdict("utility")) is not None
                 and v.numbers.get("enough_to_rank") is False]
    if too_small:
        return RankingSummary(rows, summaries, None, "none is recommended: the real test set is too small to rank "
                              "generators (their Dice differences are not resolved); test on more real cases, "
                              "e.g. k-fold over all of them or an external set")
    eligible = [r for r in rows if all(_status(summaries.get(str(r["generator"])), k) != "red"
                                       for k in ("privacy", "adherence"))]
    if not eligible:
        return RankingSummary(rows, summaries, None, "no set passes both privacy and label adherence: none is "
                                                     "recommended; drop flagged cases or regenerate")
    best = eligible[0]
    name = str(best["generator"])
    dice = fmt_ci(best.get("utility_tstr_dice"), best.get("utility_tstr_dice_lo"), best.get("utility_tstr_dice_hi"))
    reason = (f"{name}: highest TSTR Dice on real held-out cases ({dice})"
              " among the sets that are not red on privacy or label adherence")
    skipped = [str(r["generator"]) for r in rows[: rows.index(best)]]
    if skipped:
        reason += f" ({', '.join(skipped)} ranked higher but failed privacy or adherence)"
    nxt = next((r for r in eligible[1:]), None)
    if nxt is not None and _overlaps(best, nxt):
        reason += (f"; its TSTR Dice CI overlaps {nxt['generator']}'s, so the order between them is not certain "
                   "with this many cases")
    return RankingSummary(rows, summaries, name, reason + ".")


def _overlaps(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    lo_a, hi_a = a.get("utility_tstr_dice_lo"), a.get("utility_tstr_dice_hi")
    lo_b, hi_b = b.get("utility_tstr_dice_lo"), b.get("utility_tstr_dice_hi")
    if lo_a is None or hi_a is None or lo_b is None or hi_b is None:
        return True
    return lo_a <= hi_b and lo_b <= hi_a


def _cells(row: Mapping[str, Any], summary: ReportSummary | None) -> list[str]:
    util = summary.verdict("utility") if summary else None
    ratio = util.numbers.get("tstr_over_trtr_dice") if util else None
    return [str(row.get("rank")), str(row.get("generator")),
            fmt_ci(row.get("utility_tstr_dice"), row.get("utility_tstr_dice_lo"), row.get("utility_tstr_dice_hi")),
            fmt(ratio, 2), fmt_ci(row.get("utility_rs_dice"), row.get("utility_rs_dice_lo"),
                                  row.get("utility_rs_dice_hi")),
            str(row.get("adherence_verdict")), str(row.get("privacy_verdict")),
            fmt_ci(row.get("kid"), row.get("kid_lo"), row.get("kid_hi"))]


_HEADER = ["rank", "generator", "TSTR Dice [95 % CI]", "TSTR/TRTR", "real+synthetic Dice", "label adherence",
           "privacy", "KID [95 % CI]"]


def ranking_text(folder: str | os.PathLike[str]) -> str:
    """The ranking as lines for the terminal: a table, the recommendation and where the reports are.

    Args:
        folder: the ranking folder.
    """
    from ..cli_text import table

    rs = summarize_ranking(folder)
    rows = []
    for row in rs.rows:
        summary = rs.summaries.get(str(row["generator"]))
        mark = "*" if row["generator"] == rs.recommended else " "
        rows.append([mark + c if i == 0 else c for i, c in enumerate(_cells(row, summary))]
                    + [summary.overall if summary else "n/a"])
    return (table(rows, [*_HEADER, "overall"]) + f"\nRecommended (*): {rs.reason}\n"
            f"Ranking: {Path(folder) / 'ranking.html'}")


def _e(text: Any) -> str:
    return html.escape(str(text))


def render_ranking_page(folder: str | os.PathLike[str]) -> str:
    """The ranking page: recommendation, one row per generator with its verdict lights, the ranking plot.

    Args:
        folder: the ranking folder.
    """
    folder = Path(folder)
    rs = summarize_ranking(folder)
    head = "".join(f"<th>{_e(h)}</th>" for h in [*_HEADER, *(k for k in _KEYS), "report"])
    body = []
    for row in rs.rows:
        name = str(row["generator"])
        summary = rs.summaries.get(name)
        rec = name == rs.recommended
        cells = "".join(f"<td>{_e(c)}</td>" for c in _cells(row, summary))
        lights = "".join(
            f"<td><span class='dot' style='background:{_COLOURS[_status(summary, k)]}' "
            f"title='{_e(_headline(summary, k))}'>"
            f"</span>{_e(_status(summary, k))}</td>" for k in _KEYS)
        link = f"<td><a href='{_e(row.get('report', name + '/report.html'))}'>report</a></td>"
        body.append(f"<tr class='{'rec' if rec else ''}' data-generator='{_e(name)}'>{cells}{lights}{link}</tr>")
        if row.get("warning"):
            body.append(f"<tr><td></td><td colspan='{len(_HEADER) + len(_KEYS)}' class='warn'>"
                        f"{_e(row['warning'])}</td></tr>")
    img = ""
    if (folder / "ranking.png").exists():
        data = base64.b64encode((folder / "ranking.png").read_bytes()).decode("ascii")
        img = f"<img alt='ranking' src='data:image/png;base64,{data}'>"
    css = ("body{font-family:system-ui,sans-serif;max-width:1180px;margin:1.2em auto;padding:0 1em;color:#222}"
           "table{border-collapse:collapse;font-size:.88em}td,th{border:1px solid #ddd;padding:.2em .5em;"
           "text-align:left}th{background:#f2f2f2}tr.rec{background:#eaf6ec;font-weight:600}"
           ".dot{display:inline-block;width:.8em;height:.8em;border-radius:50%;margin-right:.3em}"
           ".warn{color:#8a6d00;font-size:.85em}.box{border-left:8px solid #1a7f37;padding:.4em .8em;"
           "background:#f6fbf7;margin:.6em 0}img{max-width:100%;border:1px solid #ddd;margin-top:1em}")
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>Generator ranking</title>"
            f"<style>{css}</style></head><body><h1>Generator ranking</h1>"
            f"<div class='box' id='recommendation'><b>Recommended:</b> {_e(rs.reason)}</div>"
            "<p>Sorted by TSTR Dice on real held-out cases (a segmenter trained on each synthetic set alone, "
            "tested on real cases). Lights: each generator's verdicts (see its report for the rules).</p>"
            f"<div style='overflow-x:auto'><table><tr>{head}</tr>{''.join(body)}</table></div>{img}</body></html>")


def write_ranking_page(folder: str | os.PathLike[str]) -> Path:
    """Write ``ranking.html`` into the ranking folder; returns its path.

    Args:
        folder: the ranking folder.
    """
    from ..io.atomic import atomic_file

    path = Path(folder) / "ranking.html"
    with atomic_file(path) as tmp:
        tmp.write_text(render_ranking_page(folder), encoding="utf-8")
    return path

