"""What the CLI prints for people: a short summary per command (``--json`` prints the machine form instead).

``info`` shows a table of cases (channels, labels, lesion volume), ``synthesize`` the cases it wrote, ``evaluate``
and ``demo`` the verdict lines of their reports (:mod:`.checks.summary`) and where everything is. The Slicer
module and scripts read ``--json`` or ``--progress json``; these lines are for the terminal only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .checks.rounding import fmt

__all__ = ["human_text", "dataset_table", "verdict_lines", "table", "MAX_TABLE_ROWS"]

#: Cases listed in a table; the rest are counted.
MAX_TABLE_ROWS = 30


def table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    """A plain-text table with aligned columns (numbers right-aligned).

    Args:
        rows: the cells.
        header: column names.

    Example:
        >>> print(table([["a", 1.5]], ["case", "ml"]))
        case   ml
        a     1.5
    """
    cells = [[str(h) for h in header]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    numeric = [all(_is_number(r[i]) for r in cells[1:]) and len(cells) > 1 for i in range(len(header))]
    lines = ["  ".join(c.rjust(w) if num else c.ljust(w) for c, w, num in zip(r, widths, numeric)).rstrip()
             for r in cells]
    return "\n".join(lines)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def dataset_table(path: str | Path) -> str:
    """Cases of a dataset folder: id, channels, label values and lesion volume (labels read, images not).

    Args:
        path: a dataset folder or ``dataset.json``.
    """
    import numpy as np

    from .io.datasets import load_dataset, read_label

    ds = load_dataset(path)
    rows = []
    for entry in ds.entries[:MAX_TABLE_ROWS]:
        labels, volume = "-", "-"
        if entry.label is not None:
            array, geometry, _ = read_label(entry.label)
            values = sorted(int(v) for v in np.unique(array) if v)
            labels = ",".join(str(v) for v in values) or "none"
            volume = fmt(np.count_nonzero(array) * geometry.voxel_volume_ml, 1)
        rows.append([entry.case_id, ",".join(entry.images), labels, volume])
    out = table(rows, ["case", "channels", "labels", "lesion ml"])
    if len(ds.entries) > MAX_TABLE_ROWS:
        out += f"\n... and {len(ds.entries) - MAX_TABLE_ROWS} more cases"
    return out


def verdict_lines(report_folder: str | Path) -> str:
    """The verdict block of an evaluation folder (recomputed when the report predates the summary).

    Args:
        report_folder: the evaluation folder (or its ``report.html`` / ``report.json``).
    """
    from .checks.report_model import read_report
    from .checks.summary import summarize

    folder = Path(report_folder)
    if folder.suffix in (".html", ".json"):
        folder = folder.parent
    return summarize(read_report(folder)).to_text()


def _info(result: Mapping[str, Any]) -> str:
    if result.get("kind") == "generator":
        lines = [f"Generator {result.get('family', '?')} for {result.get('task', '?')}"]
        training = result.get("training") or {}
        for key in ("cases", "channels", "modality", "steps"):
            if key in training:
                lines.append(f"  {key}: {training[key]}")
        return "\n".join(lines)
    root = result.get("root")
    head = (f"Dataset {root}: {result.get('cases')} {result.get('modality', '')} cases "
            f"({result.get('lesion_kind')}), channels {', '.join(result.get('channels') or [])}, "
            f"labels {result.get('labels')}, shape {result.get('shape_zyx')} at {result.get('spacing')} mm")
    if result.get("synthetic"):
        head += " - synthetic"
    return head + ("\n" + dataset_table(root) if root else "")


def _demo(result: Mapping[str, Any]) -> str:
    outputs = result.get("outputs", {})
    lines = [f"Demo finished in {result.get('seconds')} s; everything is under {result.get('out')}"]
    for name, path in outputs.items():
        if not str(name).startswith("evaluation"):
            lines.append(f"  {name}: {path}")
    for name in ("evaluation", "evaluation_ct"):
        if name in outputs:
            lines.append(f"\n{name}: {outputs[name]}\n{verdict_lines(outputs[name])}")
    return "\n".join(lines)


def _synthesize(result: Mapping[str, Any]) -> str:
    out = result.get("out")
    return (f"Wrote {result.get('cases')} synthetic cases with {result.get('generator')} to {out}\n"
            + dataset_table(str(out)))


def _evaluate(result: Mapping[str, Any]) -> str:
    if "ranking" in result:
        from .checks.ranking_page import ranking_text

        return ranking_text(result["out"])
    return f"{verdict_lines(result['out'])}\nReport: {Path(result['out']) / 'report.html'}"


def human_text(command: str, result: Mapping[str, Any]) -> str:
    """The summary printed at the end of ``command`` (the JSON result, indented, for other commands).

    Args:
        command: the CLI command (``info``, ``demo``, ``synthesize``, ``evaluate``...).
        result: what the command returned (its ``--json`` form).
    """
    import json

    handler = {"info": _info, "demo": _demo, "synthesize": _synthesize, "pool": _synthesize,
               "evaluate": _evaluate}.get(command)
    if handler is None:
        return json.dumps(result, indent=2, default=str)
    return handler(result)
