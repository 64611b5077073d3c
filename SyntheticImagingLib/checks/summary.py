"""The verdict of an evaluation in sentences: useful? follows its labels? private? faithful?

:func:`summarize` reads an :class:`~.report_model.EvaluationReport` and answers the four questions a researcher
brings to a synthetic set, each as a :class:`Verdict`: a traffic-light status with its thresholds stated, one
sentence with rounded numbers and 95 % CIs (:mod:`.rounding`), the exact numbers it quotes, and what to do next
when it is not green. The HTML report, the CLI's last lines and the Slicer results panel all show this one
summary; ``write_report`` stores :meth:`ReportSummary.to_dict` in ``report.json`` under ``"summary"``.

Thresholds (stated in every verdict's ``threshold_text``):

* Useful: green when TSTR/TRTR Dice >= 0.9 and adding the synthetic set to the real one does not lower real Dice
  significantly; amber from 0.7; red below 0.7 or when real + synthetic is significantly worse than real alone.
* Follows its labels: the adherence check's real-calibrated verdict; amber when it passes with failing cases.
* Private: red when the privacy check flags the set (Holm-corrected tests); amber when it passes but some case
  is under the memorization threshold or reproduces a training mask; green otherwise.
* Faithful: Fréchet distance of the synthetic set to the real training set over the real-vs-real baseline
  (the holdout's distance): green up to 1.5x, amber up to 3x, red beyond.

Pure and fast (reads the summaries already in the report): no torch, no images.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Literal

from .report_model import EvaluationReport
from .rounding import finite, fmt, fmt_ci, fmt_p, fmt_share

__all__ = ["Status", "STATUSES", "Verdict", "ReportSummary", "summarize", "UTILITY_GREEN", "UTILITY_AMBER",
           "FIDELITY_GREEN", "FIDELITY_AMBER", "SMALL_SAMPLE"]

Status = Literal["green", "amber", "red", "grey"]
#: Statuses from best to worst; grey (not checked) is not ranked.
STATUSES: tuple[Status, ...] = ("green", "amber", "red", "grey")

#: TSTR/TRTR Dice at or above which a set is as useful as real data ...
UTILITY_GREEN = 0.9
#: ... and below which it is of little use on its own.
UTILITY_AMBER = 0.7
#: Fréchet distance over the real-vs-real baseline up to which a set is as close as real data ...
FIDELITY_GREEN = 1.5
#: ... and beyond which it is far from real data.
FIDELITY_AMBER = 3.0
#: Fewer cases than this per set make Fréchet distances biased and noisy (Chong & Forsyth 2020).
SMALL_SAMPLE = 50


@dataclasses.dataclass(frozen=True)
class Verdict:
    """The answer to one question about the synthetic set.

    Args:
        key: the check it comes from (``utility``, ``adherence``, ``privacy``, ``fidelity``).
        question: the question, e.g. ``Useful?``.
        status: ``green``, ``amber``, ``red``, or ``grey`` when the check did not run.
        headline: a few words (``as useful as real data``).
        sentence: the finding with rounded numbers and CIs.
        numbers: the exact values the sentence quotes (as in ``report.json``).
        threshold_text: how the status was decided.
        next_step: what to do when the status is not green (empty otherwise).
    """

    key: str
    question: str
    status: Status
    headline: str
    sentence: str
    numbers: dict[str, Any] = dataclasses.field(default_factory=dict)
    threshold_text: str = ""
    next_step: str = ""

    def to_text(self) -> str:
        """``[GREEN] Useful? as useful as real data. <sentence> Next: ...`` on one line."""
        out = f"[{self.status.upper()}] {self.question} {self.headline}. {self.sentence}"
        return f"{out} Next: {self.next_step}" if self.next_step else out


@dataclasses.dataclass(frozen=True)
class ReportSummary:
    """The verdicts of one evaluation, in the order utility, adherence, privacy, fidelity.

    Args:
        verdicts: one per question.
        overall: the worst status among the checks that ran (grey when none did).
        description: what was compared (``4 synthetic cases vs 8 real training / 2 real test cases``).
        status: the report's status (``complete`` / ``incomplete``).
    """

    verdicts: list[Verdict]
    overall: Status
    description: str
    status: str = "complete"

    def verdict(self, key: str) -> Verdict | None:
        """The verdict of ``key`` (``utility``, ``adherence``, ``privacy``, ``fidelity``), if any."""
        return next((v for v in self.verdicts if v.key == key), None)

    def to_text(self) -> str:
        """The verdict block as plain lines (CLI, Slicer panel)."""
        lines = [f"Verdict: {self.overall.upper()} ({self.description}; report {self.status})"]
        lines += [f"  {v.to_text()}" for v in self.verdicts]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (stored in ``report.json`` under ``"summary"``)."""
        return {"overall": self.overall, "description": self.description, "status": self.status,
                "verdicts": [dataclasses.asdict(v) for v in self.verdicts], "text": self.to_text()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReportSummary:
        """From :meth:`to_dict` (e.g. ``report.json["summary"]``)."""
        fields = {f.name for f in dataclasses.fields(Verdict)}
        return cls([Verdict(**{k: v for k, v in d.items() if k in fields}) for d in data.get("verdicts", [])],
                   data.get("overall", "grey"), str(data.get("description", "")), str(data.get("status", "")))


def _worst(statuses: list[Status]) -> Status:
    ranked = [s for s in statuses if s != "grey"]
    return max(ranked, key=STATUSES.index) if ranked else "grey"


def _not_run(report: EvaluationReport, key: str, question: str, add: str) -> Verdict:
    entry = report.checks.get(key)
    why = {"failed": f"The {key} check failed: {entry.message}" if entry else "",
           "skipped": f"The {key} check was skipped: {entry.message}" if entry else ""}.get(
        entry.status if entry else "", f"The {key} check was not run")
    return Verdict(key, question, "grey", "not checked", why + ".", {}, "",
                   f"run it: add `{key}` to `--checks` ({add}).")


def _ci(pair: Any) -> tuple[Any, Any]:
    return (pair[0], pair[1]) if isinstance(pair, (list, tuple)) and len(pair) == 2 else (None, None)


def _utility(report: EvaluationReport) -> Verdict:
    result = report.result("utility")
    if result is None:
        return _not_run(report, "utility", "Useful?", "a segmenter trained on synthetic vs real cases")
    s = result.summary
    regimes = s.get("regimes", {})
    trtr, tstr = regimes.get("TRTR", {}), regimes.get("TSTR", {})
    comps = s.get("comparisons", {})
    vs = comps.get("TSTR vs TRTR", {})
    rs_name = next((k for k in regimes if k.startswith("R+S x")), None)
    rs = regimes.get(rs_name, {}) if rs_name else {}
    rs_vs = comps.get(f"{rs_name} vs TRTR", {}) if rs_name else {}
    eq = s.get("real_equivalent", {}) or {}
    eq_ci = eq.get("ci") or {}
    ratio = finite(s.get("tstr_over_trtr_dice"))
    trtr_dice = finite(trtr.get("dice"))
    # the ratio's CI from the paired difference's CI, TRTR held fixed (the ratio is 1 + difference / TRTR)
    ratio_lo = 1 + vs["lo"] / trtr_dice if trtr_dice and finite(vs.get("lo")) is not None else None
    ratio_hi = 1 + vs["hi"] / trtr_dice if trtr_dice and finite(vs.get("hi")) is not None else None
    n_syn = s.get("synthetic_cases")
    numbers = {"tstr_over_trtr_dice": ratio, "tstr_over_trtr_dice_ci95": [ratio_lo, ratio_hi],
               "tstr_dice": tstr.get("dice"), "tstr_dice_ci95": tstr.get("dice_ci95"),
               "trtr_dice": trtr.get("dice"), "trtr_dice_ci95": trtr.get("dice_ci95"),
               "tstr_minus_trtr": vs.get("mean_diff"), "tstr_minus_trtr_ci95": [vs.get("lo"), vs.get("hi")],
               "tstr_vs_trtr_p": vs.get("bootstrap_p"), "real_plus_synthetic": rs_name,
               "real_plus_synthetic_dice": rs.get("dice"), "real_plus_synthetic_dice_ci95": rs.get("dice_ci95"),
               "real_plus_synthetic_minus_trtr": rs_vs.get("mean_diff"),
               "real_plus_synthetic_minus_trtr_ci95": [rs_vs.get("lo"), rs_vs.get("hi")],
               "real_plus_synthetic_vs_trtr_p": rs_vs.get("bootstrap_p"),
               "real_equivalent": eq.get("value"), "real_equivalent_ci95": [eq_ci.get("lo"), eq_ci.get("hi")],
               "real_equivalent_outcome": eq.get("outcome"), "real_equivalent_bound": eq.get("bound"),
               "synthetic_cases": n_syn, "real_train_cases": s.get("real_train_cases"),
               "real_test_cases": s.get("real_test_cases"), "seeds": s.get("seeds"),
               "enough_to_rank": (s.get("test_set") or {}).get("enough_to_rank"),
               "segmenter_converged": (s.get("convergence") or {}).get("converged"),
               "trtr_gain_at_twice_the_steps": (s.get("convergence") or {}).get("gain")}
    parts = [f"A segmenter trained on the {n_syn} synthetic cases alone reaches {fmt_ci(ratio, ratio_lo, ratio_hi)} "
             f"of the Dice of one trained on the {s.get('real_train_cases')} real cases (TSTR "
             f"{fmt_ci(tstr.get('dice'), *_ci(tstr.get('dice_ci95')))} vs TRTR "
             f"{fmt_ci(trtr.get('dice'), *_ci(trtr.get('dice_ci95')))}; paired difference "
             f"{fmt_ci(vs.get('mean_diff'), vs.get('lo'), vs.get('hi'), signed=True)}, "
             f"{fmt_p(vs.get('bootstrap_p'))})."]
    if rs_name:
        parts.append(f"Real + synthetic ({rs_name}) reaches {fmt_ci(rs.get('dice'), *_ci(rs.get('dice_ci95')))} vs "
                     "real alone (difference "
                     f"{fmt_ci(rs_vs.get('mean_diff'), rs_vs.get('lo'), rs_vs.get('hi'), signed=True)}, "
                     f"{fmt_p(rs_vs.get('bootstrap_p'))}).")
    if eq.get("value") is not None:
        lo, hi = finite(eq_ci.get("lo")), finite(eq_ci.get("hi"))
        ci = f" [{fmt(lo, 0)}, {fmt(hi, 0)}]" if lo is not None and hi is not None else ""
        parts.append(f"The synthetic set is worth about {fmt(eq['value'], 0)} real cases{ci}.")
    elif eq.get("outcome"):
        bound = "up to" if finite(eq_ci.get("hi")) is not None and finite(eq_ci.get("lo")) is None else None
        ci = f", 95 % CI {bound} {fmt(eq_ci['hi'], 0)}" if bound else ""
        parts.append(f"Real-equivalent: {eq.get('text', eq.get('outcome'))}{ci}.")
    protocol = s.get("protocol") or {}
    if protocol.get("kind") == "k-fold":
        parts.append(f"Protocol: {protocol['text']}.")
    convergence = s.get("convergence") or {}
    if convergence.get("text"):
        parts.append(f"Segmenter budget: {convergence['text']}")
    test_set = s.get("test_set") or {}
    if test_set.get("text"):
        parts.append(test_set["text"])
    rs_worse = finite(rs_vs.get("hi")) is not None and rs_vs["hi"] < 0
    if ratio is None:
        status: Status = "grey"
        headline = "undetermined (no finite Dice)"
    elif ratio < UTILITY_AMBER or rs_worse:
        status, headline = "red", ("adding it lowers real Dice" if rs_worse and ratio >= UTILITY_AMBER
                                   else "far below real data")
    elif ratio < UTILITY_GREEN:
        status, headline = "amber", "useful, below real data"
    else:
        status, headline = "green", "about as useful as real data"
    next_step = {"red": "do not train on this set alone; compare other generators or settings with "
                        "`synthetic-imaging evaluate --synthetic A B ...` and look at the gallery for artefacts.",
                 "amber": "use it to add to real cases rather than replace them; the real + synthetic row says "
                          "whether adding it helps.",
                 "grey": "check that the test cases have lesions the segmenter can find."}.get(status, "")
    threshold = (f"green: TSTR/TRTR Dice >= {UTILITY_GREEN:g} and real + synthetic not significantly below real "
                 f"alone; amber: >= {UTILITY_AMBER:g}; red: < {UTILITY_AMBER:g} or real + synthetic significantly "
                 "below real alone (95 % CI of the paired difference entirely below 0).")
    return Verdict("utility", "Useful?", status, headline, " ".join(parts), numbers, threshold, next_step)


def _adherence(report: EvaluationReport) -> Verdict:
    result = report.result("adherence")
    if result is None:
        return _not_run(report, "adherence", "Follows its labels?", "the reference segmenter reads every case")
    s = result.summary
    n_below, n = s.get("n_below_threshold", 0), s.get("n_synthetic", 0)
    follows = bool(s.get("follows_labels"))
    numbers = {k: s.get(k) for k in ("verdict", "follows_labels", "dice_synthetic_mean", "dice_real_mean",
                                     "threshold", "share_below_threshold", "n_below_threshold", "n_synthetic",
                                     "p_share_below_exceeds", "share_intensity_out_of_range")}
    failing = [r.case_id for r in report.adherence_rows() if r.reason]
    numbers["failing_cases"] = failing
    sentence = (f"The reference segmenter (trained on real cases only) finds each synthetic lesion where its label "
                f"puts it with mean Dice {fmt(s.get('dice_synthetic_mean'), 2)}, vs {fmt(s.get('dice_real_mean'), 2)} "
                f"on real held-out cases; {n_below} of {n} synthetic cases "
                f"({fmt_share(s.get('share_below_threshold'))}) "
                f"fall below the real-calibrated threshold {fmt(s.get('threshold'), 2)}.")
    if not follows:
        status: Status = "red"
    elif failing:
        status = "amber"
    else:
        status = "green"
    headline = {"green": "follows its labels like real cases", "amber": "follows its labels, with failing cases",
                "red": "labels drift from images"}[status]
    rule = s.get("threshold_rule", "a low percentile of the real held-out Dice minus a margin")
    margin = result.details.get("margin") or result.details.get("max_share_below")
    threshold = (f"a case fails below Dice {fmt(s.get('threshold'), 2)} ({rule}) or with lesion intensities outside "
                 "the real range; red when the failing share exceeds the allowed share"
                 f"{f' ({fmt_share(margin)})' if margin is not None else ''} beyond chance (binomial p < 0.05) or the "
                 "mean Dice falls clearly below real; amber when it passes with failing cases.")
    next_step = "" if status == "green" else (
        f"drop the {len(failing)} failing case(s) ({', '.join(failing[:5])}{', ...' if len(failing) > 5 else ''}) "
        "with `checks.quality_filter`, or regenerate them.")
    return Verdict("adherence", "Follows its labels?", status, headline, sentence, numbers, threshold, next_step)


def _privacy(report: EvaluationReport) -> Verdict:
    result = report.result("privacy")
    if result is None:
        return _not_run(report, "privacy", "Private?", "nearest training case, memorization and membership tests")
    s = result.summary
    tests = result.tables.get("tests", [])
    def p_holm(test: dict[str, Any]) -> float:
        p = finite(test.get("p_holm"))
        return 2.0 if p is None else p

    deciding = min(tests, key=p_holm, default=None)
    spaces = report.privacy_spaces()
    # the fast space's closest pair, read against the holdout baseline in that space; the aligned comparison
    # (flip + registration) has its own calibration and is reported below
    pairs = report.closest_pairs(spaces[0]) if spaces else []
    closest = pairs[0] if pairs else None
    copies = sorted((str(r.get("synthetic_id")), str(r.get("aligned_training_id")))
                    for r in result.tables.get("per_synthetic_case", []) if r.get("aligned_copy"))
    space = closest.space if closest else (spaces[0] if spaces else "")
    holdout_median = s.get(f"{space}_holdout_dcr_median")
    memorized = sorted({sid for r in result.tables.get("per_synthetic_case", [])
                        for sid in [str(r.get("synthetic_id"))]
                        if any(r.get(f"{sp}_memorized") for sp in spaces)})
    copied = finite(s.get("mask_copied_share")) or 0.0
    numbers = {"verdict": s.get("verdict"), "flagged": s.get("flagged"), "flag_reasons": s.get("flag_reasons"),
               "alpha": s.get("alpha"), "deciding_test": deciding.get("test") if deciding else None,
               "deciding_space": deciding.get("space") if deciding else None,
               "deciding_p_holm": deciding.get("p_holm") if deciding else None,
               "closest_synthetic_id": closest.synthetic_id if closest else None,
               "closest_training_id": closest.training_id if closest else None, "closest_space": space or None,
               "closest_distance": closest.distance if closest else None,
               "holdout_distance_median": holdout_median, "threshold": s.get(f"{space}_threshold"),
               "memorized_cases": memorized, "mask_copied_share": s.get("mask_copied_share"),
               "aligned_copies": [f"{a} -> {b}" for a, b in copies], "aligned_threshold": s.get("aligned_threshold")}
    named = ", ".join(f"{a} copies {b}" for a, b in copies[:5]) + (" ..." if len(copies) > 5 else "")
    if copies and s.get("flagged"):
        decided = (f"Flagged by the aligned comparison (both orientations, registered, bias/gamma-proof "
                   f"intensities): {len(copies)} synthetic case(s) are disguised copies of training patients "
                   f"({named}).")
    elif deciding and s.get("flagged"):
        decided = (f"Flagged by the {deciding['test']} test in {deciding['space']} space (Holm p = "
                   f"{fmt(deciding.get('p_holm'), 2)} < alpha {fmt(s.get('alpha'), 2)}).")
    elif deciding:
        decided = (f"Not flagged: no test rejects (closest: {deciding['test']} in {deciding['space']} space, Holm "
                   f"p = {fmt(deciding.get('p_holm'), 2)} vs alpha {fmt(s.get('alpha'), 2)}).")
    else:
        decided = f"{str(s.get('verdict', '')).capitalize()}."
    sentence = decided
    if closest:
        median = finite(holdout_median)
        ratio = closest.distance / median if median else None
        sentence += (f" The closest pair ({closest.synthetic_id} / {closest.training_id}, {space} space) is "
                     f"{fmt(closest.distance)} apart, {fmt(ratio, 2)}x the median distance of a real holdout "
                     f"case to its closest training case ({fmt(holdout_median)}); memorization threshold "
                     f"{fmt(s.get(f'{space}_threshold'))}.")
    sentence += f" {len(memorized)} case(s) under the threshold; {fmt_share(copied)} of lesion masks copied."
    if "aligned_copies" in s and not copies:
        sentence += (f" Aligned comparison: no disguised copy (copy threshold {fmt(s.get('aligned_threshold'))}; "
                     f"{int(s.get('aligned_anatomy_matches') or 0)} anatomy match(es) listed, not flagged).")
    if s.get("flagged"):
        status: Status = "red"
    elif memorized or copied > 0:
        status = "amber"
    else:
        status = "green"
    headline = {"green": "no sign of copied training cases", "amber": "not flagged, with cases to look at",
                "red": "flagged: likely copies of training cases"}[status]
    threshold = (f"red when a memorization-rate or overfitting-ratio test rejects (Holm-corrected, alpha "
                 f"{fmt(s.get('alpha'), 2)}) or the aligned comparison names a disguised copy (as close to a "
                 "training patient as its own flipped, affine/elastic-deformed, bias/gamma/noise-altered copies); "
                 "amber when not flagged but a case is under the memorization threshold "
                 "(a high percentile of the distance an augmented copy keeps to its source) or a lesion mask "
                 "reproduces a training mask (Dice >= 0.9); green otherwise.")
    flagged_cases = sorted({a for a, _ in copies} | set(memorized))
    next_step = "" if status == "green" else (
        f"drop the {len(flagged_cases)} flagged case(s) with `checks.privacy_filter` and look at the closest pairs."
        if flagged_cases else "look at the closest pairs below; drop cases near their training case with "
        "`checks.privacy_filter`.")
    return Verdict("privacy", "Private?", status, headline, sentence, numbers, threshold, next_step)


def _fidelity(report: EvaluationReport) -> Verdict:
    result = report.result("fidelity")
    if result is None:
        return _not_run(report, "fidelity", "Faithful?", "distances to real cases beside a real-vs-real baseline")
    s = result.summary
    fd, fd_base = finite(s.get("fd_synthetic_vs_train")), finite(s.get("fd_holdout_vs_train"))
    ratio = fd / fd_base if fd is not None and fd_base else None
    n_syn, n_hold = s.get("n_synthetic") or 0, s.get("n_holdout") or 0
    small = min(n_syn, n_hold) < SMALL_SAMPLE
    warning = str(s.get("small_sample_warning") or "")
    if small and not warning:
        warning = (f"with {n_syn} synthetic and {n_hold} real holdout cases (< {SMALL_SAMPLE}) the Fréchet distance is "
                   "biased upward and noisy: read it against the baseline, not alone")
    numbers = {"fd": fd, "fd_baseline": fd_base, "fd_over_baseline": ratio, "kid": s.get("kid"),
               "kid_ci95": [s.get("kid_lo"), s.get("kid_hi")], "kid_baseline": s.get("kid_holdout"),
               "precision": s.get("precision"), "recall": s.get("recall"),
               "precision_baseline": s.get("precision_holdout"), "recall_baseline": s.get("recall_holdout"),
               "ms_ssim_synthetic": s.get("ms_ssim_synthetic"), "ms_ssim_real": s.get("ms_ssim_real"),
               "small_sample_warning": warning}
    sentence = (f"Fréchet distance to the real training set {fmt(fd)} vs {fmt(fd_base)} for real holdout cases "
                f"({fmt(ratio, 1)}x the real-vs-real baseline)")
    if finite(s.get("kid")) is not None:
        sentence += (f"; KID {fmt_ci(s.get('kid'), s.get('kid_lo'), s.get('kid_hi'))} vs "
                     f"{fmt_ci(s.get('kid_holdout'), s.get('kid_holdout_lo'), s.get('kid_holdout_hi'))}")
    sentence += (f"; precision {fmt(s.get('precision'), 2)} / recall {fmt(s.get('recall'), 2)} vs "
                 f"{fmt(s.get('precision_holdout'), 2)} / {fmt(s.get('recall_holdout'), 2)}; MS-SSIM within the set "
                 f"{fmt(s.get('ms_ssim_synthetic'), 2)} vs {fmt(s.get('ms_ssim_real'), 2)} for real pairs.")
    if warning:
        sentence += f" Small sample: {warning}."
    if ratio is None:
        status: Status = "grey"
    elif ratio <= FIDELITY_GREEN:
        status = "green"
    elif ratio <= FIDELITY_AMBER:
        status = "amber"
    else:
        status = "red"
    headline = {"green": "as close to real data as real cases are", "amber": "further from real data than real cases",
                "red": "far from real data", "grey": "undetermined"}[status]
    if warning and status != "grey":
        headline += " (small sample: uncertain)"
    threshold = (f"Fréchet distance over the real-vs-real baseline: green <= {FIDELITY_GREEN:g}x, amber <= "
                 f"{FIDELITY_AMBER:g}x, red beyond.")
    next_step = {"red": "look at the gallery for artefacts; train the generator longer or try another family.",
                 "amber": "compare with the gallery; utility on real data matters more than fidelity."}.get(status, "")
    return Verdict("fidelity", "Faithful?", status, headline, sentence, numbers, threshold, next_step)


def _description(report: EvaluationReport) -> str:
    def count(name: str) -> Any:
        info = report.data.get(name, {})
        return info.get("cases", "?") if isinstance(info, Mapping) else "?"

    generator = report.data.get("synthetic", {}).get("generator") if isinstance(report.data.get("synthetic"),
                                                                               Mapping) else None
    gen = generator.get("family") or generator.get("name") if isinstance(generator, Mapping) else generator
    what = f"{count('synthetic')} synthetic cases" + (f" ({gen})" if gen else "")
    return f"{what} vs {count('real_train')} real training / {count('real_test')} real test cases"


def summarize(report: EvaluationReport) -> ReportSummary:
    """The four verdicts of an evaluation report.

    Args:
        report: the report (:func:`~.report_model.read_report`).
    """
    verdicts = [_utility(report), _adherence(report), _privacy(report), _fidelity(report)]
    return ReportSummary(verdicts, _worst([v.status for v in verdicts]), _description(report), report.status)
