"""The external test in both directions, pooled: enough unseen test cases to rank generators.

Issue 17: a ranking needs enough test cases. One direction of ``bench_external.py`` tests on 6 BRATS 2013
cases, fewer than the 10 the library asks for (``checks.utility.test_set_adequacy``). Run it both ways (generators
and segmenters fitted on BraTS 2018 and tested on BRATS 2013, then fitted on BRATS 2013 and tested on BraTS 2018)
and pool: every one of the 16 cases is then tested by models that never saw its release. Each direction keeps its
own TRTR, so a row's ratio and paired difference compare like with like case by case.

Statistics: a row's pooled Dice is the mean over all (seed, test case) cells; its 95 % CI is a stratified
two-way bootstrap (seeds and test cases resampled independently within each direction: a direction's seed ``s`` and
the other's are different trainings); paired differences use the same bootstrap on per-cell differences. Two
generators are ordered when the CI of their paired TSTR difference excludes 0; otherwise they are tied.

Usage::

    python Testing/benchmarks/bench_external.py --out /tmp/ext_fwd --recipe cpu2mm --seeds 3
    python Testing/benchmarks/bench_external.py --out /tmp/ext_rev --recipe cpu2mm --seeds 3 --direction 2013-to-2018
    python Testing/benchmarks/bench_external_pooled.py /tmp/ext_fwd /tmp/ext_rev --out /tmp/ext_pooled

Writes ``--out/pooled_table.md`` (also printed) and ``--out/pooled_results.json``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench_external import fmt, signed  # noqa: E402

from SyntheticImagingLib.checks.utility import test_set_adequacy  # noqa: E402

__all__ = ["main", "pooled_ci", "pool_rows"]


def pooled_ci(blocks: Sequence[np.ndarray], *, n_boot: int = 4000, seed: int = 0,
              level: float = 0.95) -> dict[str, float]:
    """Mean over all cells of several seeds x cases blocks and a stratified two-way bootstrap CI.

    Args:
        blocks: one seeds x cases matrix per direction (seeds resampled within a block, cases too).
        n_boot: bootstrap resamples.
        seed: bootstrap seed.
        level: the CI's coverage (0.95: a 95 % CI).
    """
    rng = np.random.default_rng(seed)
    mats = [np.asarray(b, dtype=np.float64) for b in blocks]
    weights = np.array([m.shape[1] for m in mats], dtype=np.float64)
    boots = np.empty(n_boot)
    for i in range(n_boot):
        means = []
        for m in mats:
            s, c = m.shape
            means.append(np.nanmean(m[np.ix_(rng.integers(0, s, s), rng.integers(0, c, c))]))
        boots[i] = float(np.average(means, weights=weights))
    tail = 50.0 * (1.0 - level)
    lo, hi = np.nanpercentile(boots, [tail, 100.0 - tail])
    mean = float(np.average([np.nanmean(m) for m in mats], weights=weights))
    return {"mean": mean, "lo": float(lo), "hi": float(hi), "n_cases": int(weights.sum())}


def pool_rows(results: Sequence[dict[str, Any]]) -> dict[str, list[np.ndarray]]:
    """Rows present in every direction, by key, as one seeds x cases block per direction (common seeds only).

    Args:
        results: ``external_results.json`` of each direction.
    """
    n_seeds = min(int(r["seeds"]) for r in results)
    keyed = [{row["key"]: np.asarray(row["per_seed_case"], dtype=np.float64)[:n_seeds] for row in r["rows"]
              if "key" in row} for r in results]
    common = [k for k in keyed[0] if all(k in other for other in keyed[1:])]
    return {k: [rows[k] for rows in keyed] for k in common}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path, help="bench_external.py output folders (one per direction)")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    results = [json.loads((d / "external_results.json").read_text()) for d in args.runs]
    recipes = {r["recipe"]["name"] for r in results}
    if len(recipes) > 1:
        raise SystemExit(f"the runs used different segmenter recipes {sorted(recipes)}: pool like with like")
    rows = pool_rows(results)
    if "TRTR" not in rows:
        raise SystemExit("no TRTR row in common: rerun bench_external.py (rows carry keys since issue 17)")
    trtr = rows["TRTR"]
    n_cases = sum(b.shape[1] for b in trtr)
    table: list[dict[str, Any]] = []
    for key, blocks in rows.items():
        entry: dict[str, Any] = {"key": key, "dice": pooled_ci(blocks)}
        entry["ratio"] = entry["dice"]["mean"] / pooled_ci(trtr)["mean"]
        if key != "TRTR":
            entry["vs_trtr"] = pooled_ci([a - b for a, b in zip(blocks, trtr)])
        if key.startswith("2 real + ") and "2 real" in rows:
            entry["vs_2_real"] = pooled_ci([a - b for a, b in zip(blocks, rows["2 real"])])
        table.append(entry)

    trtr_ci = table[0]["dice"]
    adequacy = test_set_adequacy(n_cases, (trtr_ci["lo"], trtr_ci["hi"]))
    gens = [k.removeprefix("TSTR ") for k in rows if k.startswith("TSTR ") and not k.endswith("(2 real)")]
    pairs: list[dict[str, Any]] = []
    for a, b in itertools.combinations(gens, 2):
        d = pooled_ci([x - y for x, y in zip(rows[f"TSTR {a}"], rows[f"TSTR {b}"])])
        if d["mean"] < 0:  # state each pair as better - worse
            a, b = b, a
            d = {**d, "mean": -d["mean"], "lo": -d["hi"], "hi": -d["lo"]}
        order = f"{a} > {b}" if d["lo"] > 0 else f"{a} ~ {b} (tied)"
        pairs.append({"a": a, "b": b, "diff": d, "order": order, "resolved": d["lo"] > 0})
    ranked = sorted(gens, key=lambda g: -next(e["dice"]["mean"] for e in table if e["key"] == f"TSTR {g}"))

    directions = ", ".join(f"{r['train_source']} -> {r['test_source']} ({len(r['test_cases'])} test cases)"
                           for r in results)
    lines = [f"External test, both directions pooled: {directions}; {n_cases} unseen test cases; recipe "
             f"{results[0]['recipe']['note']}; {min(int(r['seeds']) for r in results)} seeds.", "",
             "| row | Dice [95 % CI] | / TRTR | vs TRTR, paired [95 % CI] |", "|---|---|---|---|"]
    for e in table:
        d, v = e["dice"], e.get("vs_trtr")
        vs = f"{signed(v['mean'])} [{signed(v['lo'])}, {signed(v['hi'])}]" if v else "-"
        lines.append(f"| {e['key']} | {fmt(d['mean'])} [{fmt(d['lo'])}, {fmt(d['hi'])}] | {fmt(e['ratio'], 2)} "
                     f"| {vs} |")
    lines += ["", f"Test set: {adequacy['text']}", "",
              "TSTR order by mean: " + ", ".join(ranked) + "; pairwise (paired CI of the TSTR difference): "
              + "; ".join(f"{p['order']} {signed(p['diff']['mean'])} [{signed(p['diff']['lo'])}, "
                          f"{signed(p['diff']['hi'])}]" for p in pairs) + "."]
    best = ranked[0] if ranked else None
    if best:
        e = next(x for x in table if x["key"] == f"TSTR {best}")
        short = 0.95 * trtr_ci["mean"] - e["dice"]["mean"]
        lines.append(f"Best generator by TSTR: {best}, {fmt(e['ratio'], 2)} x TRTR ("
                     + ("meets 0.95 x TRTR" if e["ratio"] >= 0.95 else f"short of 0.95 x TRTR by {short:.3f} Dice")
                     + ").")
    # every real + synthetic row is one more try at "above TRTR": Bonferroni over all of them
    n_tries = sum(k.startswith("real + ") for k in rows)
    strict = 1.0 - 0.05 / max(n_tries, 1)
    for e in table:
        if e["key"].startswith("real + "):
            v = e["vs_trtr"]
            lines.append(f"{e['key']}: {signed(v['mean'])} [{signed(v['lo'])}, {signed(v['hi'])}] against TRTR, "
                         + ("above it beyond the CI." if v["lo"] > 0 else "not above it beyond the CI."))
            if v["lo"] > 0:
                w = pooled_ci([a - b for a, b in zip(rows[e["key"]], trtr)], level=strict, n_boot=20000)
                e["vs_trtr_bonferroni"] = {**w, "level": strict, "rows_tried": n_tries}
                lines.append(f"  with the {n_tries} real + synthetic rows counted (Bonferroni, "
                             f"{100 * strict:.2f} % CI): [{signed(w['lo'])}, {signed(w['hi'])}]: "
                             + ("still above TRTR." if w["lo"] > 0 else "no longer above TRTR."))
        if e["key"].startswith("2 real + "):
            v, w = e["vs_2_real"], e["vs_trtr"]
            lines.append(f"{e['key']}: vs 2 real {signed(v['mean'])} [{signed(v['lo'])}, {signed(v['hi'])}], "
                         f"vs all real {signed(w['mean'])} [{signed(w['lo'])}, {signed(w['hi'])}].")
    text = "\n".join(lines)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "pooled_table.md").write_text(text + "\n")
    (args.out / "pooled_results.json").write_text(json.dumps(
        {"runs": [str(d) for d in args.runs], "rows": table, "test_set": adequacy, "pairs": pairs,
         "order": ranked}, indent=1, default=float))
    return 0 if all(math.isfinite(e["dice"]["mean"]) for e in table) else 1


if __name__ == "__main__":
    raise SystemExit(main())
