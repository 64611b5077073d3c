"""Segmentation utility: is a synthetic set worth training a lesion segmenter on? (Shin 2018, DuMont Schütte 2021)

The same small MONAI segmenter (see :mod:`.segmenter`) is trained under several regimes and always evaluated on
REAL held-out cases (Dice, HD95 in mm, lesion-wise sensitivity):

* ``TRTR``: all real training cases ("train real, test real", the reference);
* ``TSTR``: all synthetic cases ("train synthetic, test real");
* ``R+S x{r}``: all real cases plus ``r`` times as many synthetic cases, for each ``profile.synthetic_ratios``;
* a real-set-size sweep ``R{n}`` / ``R{n}+S``: ``n`` real cases (a random subset per seed, nested across sizes)
  without and with the whole synthetic set, for each ``profile.real_sizes`` up to the real set's size; the
  whole real set is always the last point (TRTR without synthetic, ``R{N}+S`` with).

Every regime is repeated over ``profile.seeds`` seeds (weights, batches, subsets). A regime's mean is taken over
seeds (each seed's value is the mean over test cases); its 95 % CI resamples both the real test cases and the
seeds (:func:`.stats.case_seed_ci`), so a small test set gives a wide interval. Regimes are compared pairwise on
the same (seed, test case) pairs by paired bootstrap and Wilcoxon signed-rank. The "real-equivalent" figure places the
TSTR Dice on the monotone real-only sweep: how many real cases the synthetic set is worth.

Multi-label data (the sets share a table of several labels, see ``checks.prepare``): the segmenter is trained on
every label, and besides the whole-lesion numbers above (the headline the verdicts use) each regime gets Dice and
HD95 per label (``per_label``, named as the user's table names them) and, for tumours, per BraTS region
(``per_region``: whole tumour, tumour core, enhancing tumour), with the same seeds, t intervals and a paired
comparison with TRTR on (seed, test case).

Identical training sets with the same seed (e.g. ``R+S x1`` and ``R8+S`` when there are 8 real and 8 synthetic
cases) are trained once. The seed-0 TRTR model is the evaluation's reference segmenter, shared through
``context.cache`` (see :func:`.segmenter_store.reference_segmenter`). The result is also left in
``context.cache["utility"]`` for later checks (e.g. a fidelity-vs-utility plot).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..cases import Case
from ..errors import InputError, LabelError
from .base import Check, CheckContext, CheckResult, register_check
from .metrics import LABEL, REGION, Structure, evaluation_structures, segmentation_metrics, structure_metrics
from .segmenter import SegmenterConfig, TrainedSegmenter, segment
from .segmenter_store import reference_segmenter, trained_segmenter
from .stats import ABOVE_LARGEST, BELOW_SMALLEST, WITHIN, case_seed_ci, compare_paired, mean_ci, real_equivalent

__all__ = ["UtilityCheck", "Regime", "plan_regimes", "METRICS", "STRUCTURE_METRICS", "structure_tables",
           "kfold_splits", "test_set_adequacy", "MIN_RANK_TEST_CASES", "MAX_RANK_CI_HALF_WIDTH", "CONVERGENCE_GAIN"]

#: Fewest real test cases (pooled over folds) with which generators are ranked.
MIN_RANK_TEST_CASES = 10
#: Widest TRTR Dice CI half-width with which generators are ranked: wider, and differences between generators of
#: that size are not resolved.
MAX_RANK_CI_HALF_WIDTH = 0.10
#: TRTR Dice gain at twice the steps above which the segmenter is called not converged (when its CI excludes 0).
CONVERGENCE_GAIN = 0.02


def _sources(case: Case) -> set[str]:
    """The real case ids a synthetic case was made from (its provenance metadata)."""
    meta = case.metadata
    out = {str(meta[k]) for k in ("background", "source_case_id", "reference_case") if meta.get(k)}
    out |= {str(v) for v in meta.get("source_case_ids", []) or []}
    return out


def kfold_splits(real: Sequence[Case], synthetic: Sequence[Case], *, folds: int = 5, seed: int = 0
                 ) -> list[tuple[list[Case], list[Case], list[Case]]]:
    """``(real train, real test, synthetic)`` per fold, split by case: every real case is tested exactly once.

    Synthetic cases whose provenance names a test-fold case (lesion insertion's ``background``, or
    ``source_case_ids``) are left out of that fold, so no test patient reaches training through a synthetic copy
    of its scan. (A trained generator's weights carry no per-case provenance: the report says so.)

    Args:
        real: all real labelled cases.
        synthetic: the synthetic cases.
        folds: number of folds (at most the number of real cases, at least 2).
        seed: shuffles the cases before splitting.

    Example:
        >>> import numpy as np
        >>> from ..cases import Geometry
        >>> cs = [Case(f"r{i}", {"FLAIR": np.zeros((2, 2, 2))}, Geometry()) for i in range(5)]
        >>> sorted(c.case_id for _, te, _ in kfold_splits(cs, cs[:1], folds=5) for c in te)
        ['r0', 'r1', 'r2', 'r3', 'r4']
    """
    n = len(real)
    k = min(int(folds), n)
    if k < 2:
        raise InputError(f"k-fold needs at least 2 real cases and 2 folds, got {n} cases and {folds} folds",
                         fix="give more real cases, or a separate real test set (--real-test)")
    order = np.random.default_rng([seed, 4242]).permutation(n)
    parts = [sorted(int(i) for i in part) for part in np.array_split(order, k)]
    out = []
    for part in parts:
        test = [real[i] for i in part]
        ids = {c.case_id for c in test}
        train = [real[i] for i in range(n) if i not in part]
        kept = [c for c in synthetic if not (_sources(c) & ids)]
        if not kept:
            raise InputError(f"every synthetic case was made from the test fold {sorted(ids)}",
                             fix="make more synthetic cases from more real cases, or give --real-test")
        out.append((train, test, kept))
    return out


def test_set_adequacy(n_test: int, trtr_ci: tuple[float, float]) -> dict[str, Any]:
    """Whether a test set is large enough to rank generators, and the sentence that says so.

    Args:
        n_test: real test cases (pooled over folds).
        trtr_ci: the TRTR Dice 95 % CI (test cases and seeds resampled).

    Example:
        >>> test_set_adequacy(2, (0.55, 0.85))["enough_to_rank"]
        False
    """
    lo, hi = trtr_ci
    half = (hi - lo) / 2 if math.isfinite(lo) and math.isfinite(hi) else math.inf
    enough = n_test >= MIN_RANK_TEST_CASES and half <= MAX_RANK_CI_HALF_WIDTH
    if enough:
        text = (f"{n_test} real test cases: the TRTR Dice is known to +/- {half:.2f}, enough to rank generators "
                "whose Dice differ by more than that.")
    else:
        why = [f"only {n_test} real test cases (at least {MIN_RANK_TEST_CASES} needed)"] \
            if n_test < MIN_RANK_TEST_CASES else []
        if half > MAX_RANK_CI_HALF_WIDTH:
            width = "cannot be estimated" if not math.isfinite(half) else f"is +/- {half:.3f}"
            why.append(f"the TRTR Dice CI {width} (at most +/- {MAX_RANK_CI_HALF_WIDTH:.3f} needed)")
        text = ("The test set is too small to rank generators: " + " and ".join(why)
                + ". Test on more real cases (k-fold over all of them: leave out --real-test; or an external set).")
    return {"cases": n_test, "trtr_ci_half_width": half if math.isfinite(half) else None,
            "enough_to_rank": enough, "text": text}

#: Per-test-case metrics aggregated per regime (higher is better except HD95).
METRICS = ("dice", "hd95_mm", "lesion_sensitivity")
#: Per-label and per-region metrics of multi-label data.
STRUCTURE_METRICS = ("dice", "hd95_mm")


@dataclasses.dataclass(frozen=True)
class Regime:
    """One training regime.

    Args:
        name: ``TRTR``, ``TSTR``, ``R+S x1``, ``R2``, ``R2+S``...
        kind: ``real``, ``synthetic`` or ``real+synthetic``.
        n_real: real training cases.
        n_synthetic: synthetic training cases.
        sweep: part of the real-set-size sweep (TRTR is its largest real-only point).
    """

    name: str
    kind: str
    n_real: int
    n_synthetic: int
    sweep: bool = False


def plan_regimes(n_real: int, n_synthetic: int, *, real_sizes: Sequence[int],
                 synthetic_ratios: Sequence[float]) -> tuple[list[Regime], list[int]]:
    """The regimes to train, and the requested real sizes that were skipped (larger than the real set).

    Args:
        n_real: real training cases available.
        n_synthetic: synthetic cases available.
        real_sizes: real-set sizes of the sweep.
        synthetic_ratios: synthetic:real ratios of the mixed regimes.

    Example:
        >>> [r.name for r in plan_regimes(8, 8, real_sizes=(2,), synthetic_ratios=(1.0,))[0]]
        ['TRTR', 'TSTR', 'R+S x1', 'R2', 'R2+S', 'R8+S']
    """
    regimes = [Regime("TRTR", "real", n_real, 0, sweep=True), Regime("TSTR", "synthetic", 0, n_synthetic)]
    for r in synthetic_ratios:
        k = min(n_synthetic, max(1, round(r * n_real)))
        regimes.append(Regime(f"R+S x{r:g}", "real+synthetic", n_real, k))
    skipped = sorted({int(n) for n in real_sizes if n > n_real})
    # the whole real set is always the sweep's last point (TRTR without, all real + synthetic with)
    for n in sorted({int(n) for n in real_sizes if 0 < n <= n_real} | {n_real}):
        if n < n_real:
            regimes.append(Regime(f"R{n}", "real", n, 0, sweep=True))
        regimes.append(Regime(f"R{n}+S", "real+synthetic", n, n_synthetic, sweep=True))
    return regimes, skipped


def _check_inputs(real_train: Sequence[Case], real_test: Sequence[Case], synthetic: Sequence[Case]) -> None:
    for name, cases in (("real_train", real_train), ("real_test", real_test), ("synthetic", synthetic)):
        if not cases:
            raise InputError(f"the utility check needs {name} cases, got none",
                             fix="give at least one labelled case in each of real-train, real-test and synthetic")
        unlabelled = [c.case_id for c in cases if c.label is None]
        if unlabelled:
            raise LabelError(f"{name} has cases without a label map: {unlabelled[:5]}",
                             fix="the utility check trains and tests a segmenter: every case needs a label")
    shapes = {c.shape for c in (*real_train, *real_test, *synthetic)}
    if len(shapes) != 1:
        raise InputError(f"cases are on different grids {sorted(shapes)}",
                         fix="prepare all sets with checks.prepare.prepare_cases and one profile (evaluate does)")
    channels = list(real_train[0].channel_names)
    for case in (*real_test, *synthetic):
        if any(ch not in case.channels for ch in channels):
            raise InputError(f"case has channels {case.channel_names}, the real training set has {channels}",
                             where=case.case_id, fix="synthesize the same channels as the real data")
    table = real_train[0].label_table
    if len(table.values) > 1:
        for case in (*real_train, *real_test, *synthetic):
            if case.label_table != table:
                raise LabelError(f"case has the labels {case.label_table.names}, the real training set "
                                 f"{table.names}", where=case.case_id,
                                 fix="prepare every set onto the real training labels (evaluate does; "
                                     "checks.prepare.prepare_cases(labels=...))")


#: Possible range of each metric (t intervals are clipped to it).
_BOUNDS = {"dice": (0.0, 1.0), "hd95_mm": (0.0, math.inf), "lesion_sensitivity": (0.0, 1.0)}


@register_check
class UtilityCheck(Check):
    """Segmentation utility of a synthetic set (TRTR / TSTR / real+synthetic / real-size sweep).

    Args:
        config: segmenter settings (default: sized by the profile, see ``SegmenterConfig.for_profile``).
        min_lesion_ml: connected components smaller than this are ignored by lesion-wise sensitivity.
    """

    name = "utility"

    def __init__(self, *, config: SegmenterConfig | None = None, min_lesion_ml: float = 0.1) -> None:
        self.config = config
        self.min_lesion_ml = float(min_lesion_ml)

    def run(self, *, real_train: Sequence[Case], real_test: Sequence[Case], synthetic: Sequence[Case],
            context: CheckContext) -> CheckResult:
        """Train every regime over the profile's seeds and evaluate on the real test cases.

        With no real test case (``real_test`` empty) the real cases are split by case into ``profile.folds``
        folds (:func:`kfold_splits`): every real case is tested once, by segmenters that never saw it, and the
        synthetic cases made from a test fold's cases (their ``background``/``source_case_ids`` provenance) are
        left out of that fold's training.
        """
        splits: list[tuple[list[Case], list[Case], list[Case]]]
        if len(real_test):
            splits = [(list(real_train), list(real_test), list(synthetic))]
        else:
            splits = kfold_splits(real_train, synthetic, folds=int(getattr(context.profile, "folds", 5)),
                                  seed=context.seed)
        for tr, te, sy in splits:
            _check_inputs(tr, te, sy)
        profile = context.profile
        config = self.config or SegmenterConfig.for_profile(profile)
        # one plan for every fold: the smallest fold's sizes (folds differ by at most one case)
        n_real_plan = min(len(tr) for tr, _, _ in splits)
        n_syn_plan = min(len(sy) for _, _, sy in splits)
        splits = [(tr[:n_real_plan], te, sy[:n_syn_plan]) for tr, te, sy in splits]
        real_test = [c for _, te, _ in splits for c in te]  # every test case once (all folds)
        regimes, skipped = plan_regimes(n_real_plan, n_syn_plan, real_sizes=profile.real_sizes,
                                        synthetic_ratios=profile.synthetic_ratios)
        n_seeds = max(1, int(profile.seeds))
        geometry = real_test[0].geometry
        min_voxels = max(1, math.ceil(self.min_lesion_ml / geometry.voxel_volume_ml))
        structures = evaluation_structures(splits[0][0][0].label_table, splits[0][0][0].lesion_kind)

        # plan every (fold, regime, seed) run; identical training sets with the same seed share one model
        Key = tuple[int, int, tuple[int, ...], tuple[int, ...]]
        plan: list[tuple[Regime, int, int, tuple[int, ...], tuple[int, ...]]] = []
        for f in range(len(splits)):
            for s in range(n_seeds):
                rng = np.random.default_rng([context.seed, s, 1729] if len(splits) == 1 else [context.seed, s, f, 1729])
                real_perm = tuple(int(i) for i in rng.permutation(n_real_plan))
                syn_perm = tuple(int(i) for i in rng.permutation(n_syn_plan))
                for reg in regimes:
                    # all-real runs keep the given order, so TRTR seed 0 is exactly the reference segmenter
                    real_idx = tuple(range(n_real_plan)) if reg.n_real == n_real_plan else real_perm[:reg.n_real]
                    syn_idx = tuple(range(n_syn_plan)) if reg.n_synthetic == n_syn_plan else \
                        syn_perm[:reg.n_synthetic]
                    plan.append((reg, f, s, real_idx, syn_idx))
        unique: list[Key] = list(dict.fromkeys((f, s, r, y) for _, f, s, r, y in plan))
        reporter = context.progress
        runs: dict[Key, dict[str, Any]] = {}
        for i, key in enumerate(unique):
            f, s, real_idx, syn_idx = key
            names = [reg.name for reg, f2, s2, r, y in plan if (f2, s2, r, y) == key]
            fold = f" fold {f + 1}/{len(splits)}" if len(splits) > 1 else ""
            reporter.report("runs", i, len(unique), f"{'/'.join(names)} seed {s}{fold}")
            tr, te, sy = splits[f]
            runs[key] = self._train_and_test(tr, te, sy, real_idx, syn_idx, s, config, context, min_voxels,
                                             structures)
        reporter.report("runs", len(unique), len(unique), "done")

        # tables: one row per (regime, seed, test case) and per (fold, regime, seed)
        per_case: list[dict[str, Any]] = []
        per_run: list[dict[str, Any]] = []
        per_case_structures: list[dict[str, Any]] = []
        first_name: dict[Key, str] = {}
        for reg, f, s, real_idx, syn_idx in plan:
            key = (f, s, real_idx, syn_idx)
            run = runs[key]
            shared = first_name.setdefault(key, reg.name)
            fold_col = {"fold": f} if len(splits) > 1 else {}
            for row in run["cases"]:
                per_case.append({"regime": reg.name, "seed": s, **fold_col, **row})
            for row in run["structures"]:
                per_case_structures.append({"regime": reg.name, "seed": s, **row})
            per_run.append({
                "regime": reg.name, "kind": reg.kind, "seed": s, **fold_col, "n_real": len(real_idx),
                "n_synthetic": len(syn_idx),
                **{m: float(np.nanmean([r[m] for r in run["cases"]])) if run["cases"] else float("nan")
                   for m in METRICS},
                "train_seconds": run["seconds"], "final_loss": run["final_loss"],
                "same_training_as": "" if shared == reg.name else shared,
                "real_ids": " ".join(splits[f][0][i].case_id for i in real_idx),
            })
        # one value per (regime, seed): the mean over every real test case (all folds pooled)
        seed_runs: list[dict[str, Any]] = [{"regime": reg.name, "seed": s,
                      **{m: float(np.nanmean([r[m] for r in per_case if r["regime"] == reg.name and r["seed"] == s]))
                         for m in METRICS}}
                     for reg in regimes for s in range(n_seeds)]

        regime_rows: list[dict[str, Any]] = []
        stats_by_regime: dict[str, dict[str, dict[str, float]]] = {}
        test_ids = [c.case_id for c in real_test]
        for reg in regimes:
            rows = [r for r in seed_runs if r["regime"] == reg.name]
            table = {(r["seed"], r["case_id"]): r for r in per_case if r["regime"] == reg.name}
            seeds_run = sorted({int(r["seed"]) for r in rows})
            st = {m: case_seed_ci(np.array([[table[(sd, c)][m] if (sd, c) in table else np.nan for c in test_ids]
                                            for sd in seeds_run]), bounds=_BOUNDS[m], seed=context.seed)
                  for m in METRICS}
            stats_by_regime[reg.name] = st
            regime_rows.append({"regime": reg.name, "kind": reg.kind, "n_real": reg.n_real,
                                "n_synthetic": reg.n_synthetic, "seeds": len(rows),
                                **{f"{m}{suffix}": st[m][k] for m in METRICS
                                   for suffix, k in (("", "mean"), ("_lo", "lo"), ("_hi", "hi"), ("_sd", "sd"))}})

        def paired(a: str, b: str, metric: str) -> dict[str, float]:
            va = {(r["seed"], r["case_id"]): r[metric] for r in per_case if r["regime"] == a}
            vb = {(r["seed"], r["case_id"]): r[metric] for r in per_case if r["regime"] == b}
            keys = sorted(set(va) & set(vb))
            return compare_paired([va[k] for k in keys], [vb[k] for k in keys], seed=context.seed)

        candidates = [("TSTR", "TRTR")] + [(r.name, "TRTR") for r in regimes if r.name.startswith("R+S x")]
        candidates += [(f"R{r.n_real}+S", "TRTR" if r.n_real == n_real_plan else f"R{r.n_real}")
                       for r in regimes if r.sweep and r.kind == "real+synthetic"]
        # a regime trained exactly like one already compared (R8+S = R+S x1 with 8+8 cases) adds nothing
        trainings: dict[str, list[Key]] = {reg.name: [] for reg in regimes}
        for reg, f, s, real_idx, syn_idx in plan:
            trainings[reg.name].append((f, s, real_idx, syn_idx))
        pairs: list[tuple[str, str]] = []
        for a, b in candidates:
            if not any(trainings[a] == trainings[a2] and b == b2 for a2, b2 in pairs):
                pairs.append((a, b))
        comparisons = [{"a": a, "b": b, "metric": m, **paired(a, b, m)} for a, b in pairs for m in METRICS]

        # real-equivalent: place TSTR (and each R{n}+S) on the real-only sweep
        sweep_real = sorted((r for r in regimes if r.sweep and r.kind == "real"), key=lambda r: r.n_real)
        sizes = [r.n_real for r in sweep_real]
        curve = [stats_by_regime[r.name]["dice"]["mean"] for r in sweep_real]
        tstr_dice = stats_by_regime["TSTR"]["dice"]["mean"]
        equivalent = real_equivalent(sizes, curve, tstr_dice)
        equivalent["ci"] = self._equivalent_ci(seed_runs, sweep_real, "TSTR", n_seeds, context.seed)
        equivalent["text"] = _equivalent_text(equivalent, n_syn_plan)
        sweep_rows: list[dict[str, Any]] = []
        for r in sorted((r for r in regimes if r.sweep), key=lambda r: (r.n_real, r.kind)):
            dice_stats = stats_by_regime[r.name]["dice"]
            sweep_row: dict[str, Any] = {"n_real": r.n_real, "with_synthetic": r.kind != "real",
                                         "n_synthetic": r.n_synthetic, "regime": r.name, "dice": dice_stats["mean"],
                                         "dice_lo": dice_stats["lo"], "dice_hi": dice_stats["hi"]}
            if r.kind != "real":
                eq = real_equivalent(sizes, curve, dice_stats["mean"])
                sweep_row.update(real_equivalent=eq["value"], real_equivalent_outcome=eq["outcome"],
                                 synthetic_gain_cases=None if eq["value"] is None else eq["value"] - r.n_real)
            sweep_rows.append(sweep_row)

        label_rows, region_rows = structure_tables(regimes, per_case_structures, structures, seed=context.seed)
        trtr_st = stats_by_regime["TRTR"]["dice"]
        adequacy = test_set_adequacy(len(real_test), (trtr_st["lo"], trtr_st["hi"]))
        protocol = ({"kind": "holdout", "text": f"{n_real_plan} real training cases, {len(real_test)} real test cases "
                                                "given apart"} if len(splits) == 1 else
                    {"kind": "k-fold", "folds": len(splits), "fold_test_ids": [[c.case_id for c in te]
                                                                               for _, te, _ in splits],
                     "text": f"{len(splits)}-fold by case over {len(real_test)} real cases: each real case tested "
                             f"once, by segmenters trained on {n_real_plan} others; synthetic cases made from a "
                             "test fold's cases left out of that fold's training (on the project's BraTS benchmark "
                             "this protocol ordered generators as an external test set did: BENCHMARKS.md)"})
        convergence = None
        if getattr(profile, "check_convergence", True):
            first_trtr = {r["case_id"]: r["dice"] for r in per_case if r["regime"] == "TRTR" and r["seed"] == 0}
            convergence = self._convergence(splits, config, context, min_voxels, first_trtr)

        summary: dict[str, Any] = {
            "seeds": n_seeds, "real_train_cases": n_real_plan, "real_test_cases": len(real_test),
            "synthetic_cases": n_syn_plan, "test_set": adequacy, "convergence": convergence,
            "protocol": protocol,
            "regimes": {name: {**{m: st[m]["mean"] for m in METRICS},
                               **{f"{m}_ci95": [st[m]["lo"], st[m]["hi"]] for m in METRICS}}
                        for name, st in stats_by_regime.items()
                        if name in ("TRTR", "TSTR") or name.startswith("R+S x")},
            "tstr_over_trtr_dice": _ratio(tstr_dice, stats_by_regime["TRTR"]["dice"]["mean"]),
            "real_equivalent": {k: equivalent[k] for k in ("value", "outcome", "bound", "ci", "text")},
            "comparisons": {f"{c['a']} vs {c['b']}": {k: c[k] for k in ("mean_diff", "lo", "hi", "bootstrap_p",
                                                                         "wilcoxon_p", "n_pairs")}
                            for c in comparisons if c["metric"] == "dice"},
        }
        tables: dict[str, list[dict[str, Any]]] = {
            "regimes": regime_rows, "size_sweep": sweep_rows, "comparisons": comparisons, "runs": per_run,
            "per_case": per_case}
        details_labels: dict[str, Any] = {}
        if structures:
            headline = ("TRTR", "TSTR", *(r.name for r in regimes if r.name.startswith("R+S x")))
            for summary_key, rows, col in (("label_dice", label_rows, "label"),
                                           ("region_dice", region_rows, "region")):
                if rows:
                    summary[summary_key] = {regime: {r[col]: r["dice"] for r in rows if r["regime"] == regime}
                                    for regime in headline}
            tables["per_label"] = label_rows
            if region_rows:
                tables["per_region"] = region_rows
            details_labels = {
                "labels": {st.name: list(st.values) for st in structures if st.kind == LABEL},
                "regions": {st.name: list(st.values) for st in structures if st.kind == REGION},
                "per_label_rule": "Dice and HD95 of each label's (region's) voxels per real test case, both empty: "
                                  "Dice 1 and HD95 0 (BraTS convention); mean over test cases per seed, Student t "
                                  "over seeds; dice_vs_trtr: paired bootstrap over (seed, test case)"}
        result = CheckResult(
            name=self.name, summary=summary,
            tables=tables,
            details={**details_labels,
                     "segmenter": config.to_dict(), "regimes": [dataclasses.asdict(r) for r in regimes],
                     "skipped_real_sizes": skipped, "unique_trainings": len(unique),
                     "min_lesion_voxels": min_voxels, "real_equivalent_curve": equivalent["curve"],
                     "ci": "bootstrap over real test cases and seeds (two-level), so the interval carries the "
                           "test-set size",
                     "paired_unit": "(seed, real test case)",
                     "hd95_empty": "grid diagonal in mm when exactly one of prediction/reference is empty"})
        result.figures.update(self._figures(result, context, equivalent))
        context.cache["utility"] = result
        return result

    def _train_and_test(self, real_train: Sequence[Case], real_test: Sequence[Case], synthetic: Sequence[Case],
                        real_idx: tuple[int, ...], syn_idx: tuple[int, ...], s: int, config: SegmenterConfig,
                        context: CheckContext, min_voxels: int,
                        structures: Sequence[Structure] = ()) -> dict[str, Any]:
        train = [real_train[i] for i in real_idx] + [synthetic[i] for i in syn_idx]
        model: TrainedSegmenter
        if s == 0 and real_idx == tuple(range(len(real_train))) and not syn_idx:
            model = reference_segmenter(real_train, context, config=config)
        else:
            model = trained_segmenter(train, config=config, seed=context.seed + s, context=context, stage="train")
        preds = segment(model, real_test)
        rows = []
        by_structure = []
        for case, pred in zip(real_test, preds):
            assert case.label is not None  # test cases are checked for labels on entry
            m = segmentation_metrics(pred, case.label, spacing_zyx=case.geometry.spacing_zyx,
                                     min_lesion_voxels=min_voxels)
            rows.append({"case_id": case.case_id, **m})
            if structures:
                by_structure += [{"case_id": case.case_id, **r} for r in
                                 structure_metrics(pred, case.label, structures, spacing_zyx=case.geometry.spacing_zyx)]
        info = model.describe()
        return {"cases": rows, "structures": by_structure, "seconds": info["seconds"],
                "final_loss": info["final_loss"]}

    def _convergence(self, splits: Sequence[tuple[list[Case], list[Case], list[Case]]], config: SegmenterConfig,
                     context: CheckContext, min_voxels: int, at_budget: dict[str, float]) -> dict[str, Any]:
        """TRTR (seed 0, every fold) trained with twice the steps against the budget: has the segmenter converged?"""
        longer = dataclasses.replace(config, steps=2 * config.steps)
        twice, base = [], []
        for real_train, real_test, _ in splits:
            model = trained_segmenter(list(real_train), config=longer, seed=context.seed, context=context,
                                      stage="convergence")
            for case, pred in zip(real_test, segment(model, real_test)):
                assert case.label is not None
                twice.append(segmentation_metrics(pred, case.label, spacing_zyx=case.geometry.spacing_zyx,
                                                  min_lesion_voxels=min_voxels)["dice"])
                base.append(at_budget[case.case_id])
        cmp = compare_paired(twice, base, seed=context.seed)
        gain, lo = float(cmp["mean_diff"]), cmp.get("lo")
        converged = not (gain > CONVERGENCE_GAIN and lo is not None and math.isfinite(lo) and lo > 0)
        text = (f"TRTR Dice {float(np.mean(base)):.3f} at {config.steps} steps, {float(np.mean(twice)):.3f} at "
                f"{longer.steps} (gain {gain:+.3f}, 95 % CI [{cmp.get('lo', float('nan')):+.3f}, "
                f"{cmp.get('hi', float('nan')):+.3f}]): ")
        text += ("the segmenter has converged at this budget." if converged else
                 "the segmenter has NOT converged: an undertrained segmenter lifts every synthetic set toward parity "
                 "with real data; use more steps (--profile full) before trusting TSTR/TRTR ratios.")
        return {"steps": config.steps, "dice": float(np.mean(base)), "steps_2x": longer.steps,
                "dice_2x": float(np.mean(twice)), "gain": gain, "gain_ci95": [cmp.get("lo"), cmp.get("hi")],
                "converged": converged, "rule": f"not converged when the gain at twice the steps exceeds "
                f"{CONVERGENCE_GAIN:g} Dice and its paired 95 % CI excludes 0", "text": text}

    @staticmethod
    def _equivalent_ci(per_run: list[dict[str, Any]], sweep_real: list[Regime], target: str, n_seeds: int,
                       seed: int, n_boot: int = 1000) -> dict[str, Any]:
        """Seed-bootstrap of the real-equivalent: resample seeds, recompute means, re-place on the curve."""
        if n_seeds < 2:
            return {"lo": None, "hi": None, "share_above_largest": None, "share_below_smallest": None}
        dice = {(r["regime"], r["seed"]): r["dice"] for r in per_run}
        rng = np.random.default_rng(seed)
        values, above, below = [], 0, 0
        sizes = [r.n_real for r in sweep_real]
        for _ in range(n_boot):
            pick = rng.integers(0, n_seeds, size=n_seeds)
            curve = [float(np.nanmean([dice[(r.name, int(k))] for k in pick])) for r in sweep_real]
            t = float(np.nanmean([dice[(target, int(k))] for k in pick]))
            eq = real_equivalent(sizes, curve, t)
            if eq["outcome"] == WITHIN:
                values.append(float(eq["value"]))  # type: ignore[arg-type]
            elif eq["outcome"] == ABOVE_LARGEST:
                above += 1
                values.append(math.inf)
            elif eq["outcome"] == BELOW_SMALLEST:
                below += 1
                values.append(-math.inf)
        if not values:
            return {"lo": None, "hi": None, "share_above_largest": None, "share_below_smallest": None}
        lo, hi = np.quantile(np.asarray(values), [0.025, 0.975], method="inverted_cdf")
        return {"lo": None if not np.isfinite(lo) else float(lo), "hi": None if not np.isfinite(hi) else float(hi),
                "share_above_largest": above / len(values), "share_below_smallest": below / len(values)}

    def _figures(self, result: CheckResult, context: CheckContext, equivalent: dict[str, Any]) -> dict[str, Any]:
        from .report import plot_regime_metric, plot_size_sweep

        out = context.out_dir
        out.mkdir(parents=True, exist_ok=True)
        figs = {"dice_per_regime": plot_regime_metric(result.tables["regimes"], out / "dice_per_regime.png",
                                                      metric="dice", label="Dice on real test cases"),
                "hd95_per_regime": plot_regime_metric(result.tables["regimes"], out / "hd95_per_regime.png",
                                                      metric="hd95_mm", label="HD95 (mm) on real test cases"),
                "dice_vs_real_size": plot_size_sweep(result.tables["size_sweep"], out / "dice_vs_real_size.png",
                                                     tstr=result.summary["regimes"]["TSTR"],
                                                     equivalent=equivalent)}
        return figs


def structure_tables(regimes: Sequence[Regime], rows: Sequence[dict[str, Any]], structures: Sequence[Structure], *,
                     seed: int = 0) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The ``per_label`` and ``per_region`` tables: per structure and regime, the mean and 95 % t interval over
    seeds of the per-seed mean over test cases (as the headline), and the paired difference with TRTR.

    Args:
        regimes: the regimes, in order.
        rows: one row per (regime, seed, test case, structure) with ``regime``, ``seed``, ``case_id``,
            ``structure``, ``structure_kind`` and :data:`STRUCTURE_METRICS`.
        structures: the labels and regions.
        seed: bootstrap seed of the comparisons.

    Returns:
        Label rows (column ``label``) and region rows (column ``region``), grouped by structure, regimes in order.
    """
    index: dict[tuple[str, str, str], dict[tuple[int, str], dict[str, Any]]] = {}
    for r in rows:
        cell = index.setdefault((r["structure_kind"], r["structure"], r["regime"]), {})
        cell[(int(r["seed"]), str(r["case_id"]))] = r
    out: dict[str, list[dict[str, Any]]] = {LABEL: [], REGION: []}
    for st in structures:
        reference = index.get((st.kind, st.name, "TRTR"), {})
        for reg in regimes:
            cells = index.get((st.kind, st.name, reg.name), {})
            seeds = sorted({k[0] for k in cells})
            row: dict[str, Any] = {"regime": reg.name, "kind": reg.kind, st.kind: st.name,
                                   "values": ",".join(str(v) for v in st.values), "n_real": reg.n_real,
                                   "n_synthetic": reg.n_synthetic, "seeds": len(seeds)}
            for m in STRUCTURE_METRICS:
                per_seed = [float(np.nanmean([c[m] for k, c in cells.items() if k[0] == sd])) for sd in seeds]
                ci = mean_ci(per_seed, method="t", bounds=_BOUNDS[m])
                row.update({m: ci["mean"], f"{m}_lo": ci["lo"], f"{m}_hi": ci["hi"], f"{m}_sd": ci["sd"]})
            if reg.name != "TRTR":
                keys = sorted(set(cells) & set(reference))
                cmp = compare_paired([cells[k]["dice"] for k in keys], [reference[k]["dice"] for k in keys], seed=seed)
                row.update(dice_vs_trtr=cmp["mean_diff"], dice_vs_trtr_lo=cmp["lo"], dice_vs_trtr_hi=cmp["hi"],
                           dice_vs_trtr_p=cmp["bootstrap_p"])
            out[st.kind].append(row)
    return out[LABEL], out[REGION]


def _ratio(a: float, b: float) -> float:
    return a / b if b and math.isfinite(a) and math.isfinite(b) else float("nan")


def _equivalent_text(eq: dict[str, Any], n_synthetic: int) -> str:
    if eq["outcome"] is None:
        return "undefined (no finite Dice)"
    if eq["outcome"] == WITHIN:
        return f"the {n_synthetic} synthetic cases are worth about {eq['value']:.1f} real cases"
    if eq["outcome"] == ABOVE_LARGEST:
        return f"the {n_synthetic} synthetic cases are worth more than {eq['bound']:g} real cases (the largest tested)"
    return f"the {n_synthetic} synthetic cases are worth fewer than {eq['bound']:g} real cases (the smallest tested)"
