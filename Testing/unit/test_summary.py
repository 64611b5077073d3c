"""The verdict block: thresholds decide the lights, numbers are rounded to their CIs, and every reader (report.json,
report.html, the CLI, the ranking page) shows the same summary."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from SyntheticImagingLib.cases import Case, Geometry
from SyntheticImagingLib.checks.base import CheckResult
from SyntheticImagingLib.checks.gallery import build_gallery, case_thumbnail, lesion_centre
from SyntheticImagingLib.checks.ranking_page import ranking_text, summarize_ranking, write_ranking_page
from SyntheticImagingLib.checks.report import write_report
from SyntheticImagingLib.checks.report_model import EvaluationReport, read_report
from SyntheticImagingLib.checks.rounding import decimals_for_ci, fmt, fmt_ci, fmt_p
from SyntheticImagingLib.checks.summary import ReportSummary, summarize
from SyntheticImagingLib.cli import main
from SyntheticImagingLib.io.datasets import write_dataset


def _utility(ratio: float, rs_hi: float = 0.05) -> CheckResult:
    trtr = 0.8
    tstr = ratio * trtr
    return CheckResult("utility", summary={
        "seeds": 3, "real_train_cases": 8, "real_test_cases": 2, "synthetic_cases": 4,
        "regimes": {"TRTR": {"dice": trtr, "dice_ci95": [0.72, 0.87]}, "TSTR": {"dice": tstr, "dice_ci95": [tstr - .06,
                                                                                                         tstr + .06]},
                    "R+S x1": {"dice": 0.82, "dice_ci95": [0.78, 0.87]}},
        "tstr_over_trtr_dice": ratio,
        "real_equivalent": {"value": 4.2, "outcome": "within_sizes_tested", "bound": None,
                            "ci": {"lo": 2.3, "hi": 6.1}, "text": "worth about 4.2"},
        "comparisons": {"TSTR vs TRTR": {"mean_diff": tstr - trtr, "lo": tstr - trtr - .05, "hi": tstr - trtr + .05,
                                         "bootstrap_p": 0.04},
                        "R+S x1 vs TRTR": {"mean_diff": 0.02, "lo": rs_hi - 0.1, "hi": rs_hi, "bootstrap_p": 0.3}}})


def _privacy(flagged: bool, memorized: bool = False) -> CheckResult:
    rows = [{"synthetic_id": f"s{i}", "encoder_dcr": d, "encoder_nearest_training_id": f"case_{i}",
             "encoder_memorized": memorized and i == 0} for i, d in enumerate([0.05, 0.2])]
    return CheckResult("privacy", summary={
        "verdict": "flagged" if flagged else "not flagged", "flagged": flagged, "alpha": 0.05,
        "encoder_holdout_dcr_median": 0.25, "encoder_threshold": 0.09, "mask_copied_share": 0.0},
        tables={"per_synthetic_case": rows, "holdout_baseline": [{"holdout_id": "h", "encoder_dcr": 0.25}],
                "tests": [{"space": "encoder", "test": "memorization rate", "p_holm": 0.01 if flagged else 1.0},
                          {"space": "encoder", "test": "overfitting ratio", "p_holm": 0.4}]})


def _adherence(follows: bool, failing: int) -> CheckResult:
    rows = [{"case_id": f"s{i}", "dice": 0.1 if i < failing else 0.8, "reason": "Dice below" if i < failing else ""}
            for i in range(4)]
    return CheckResult("adherence", summary={
        "verdict": "follows" if follows else "drift", "follows_labels": follows, "dice_synthetic_mean": 0.6,
        "dice_real_mean": 0.7, "threshold": 0.3, "share_below_threshold": failing / 4, "n_below_threshold": failing,
        "n_synthetic": 4}, tables={"per_case": rows})


def _fidelity(fd: float) -> CheckResult:
    return CheckResult("fidelity", summary={"fd_synthetic_vs_train": fd, "fd_holdout_vs_train": 10.0,
                                            "precision": 0.9, "recall": 0.8, "n_synthetic": 4, "n_holdout": 2})


def _summary(*results: CheckResult) -> ReportSummary:
    report = {"status": "complete", "checks": {r.name: {"status": "ok", "summary": r.summary,
                                                       "tables": r.tables} for r in results}}
    return summarize(EvaluationReport.from_dict(report))


def test_rounding_follows_the_ci():
    assert fmt_ci(0.7955386, 0.7207386739645241, 0.8703629694455441) == "0.80 [0.72, 0.87]"
    assert fmt_ci(4.21, 2.3, 6.1) == "4.2 [2.3, 6.1]" and decimals_for_ci(0.8, 0.801) == 4
    assert fmt_ci(-0.1, -0.2, -0.00003, signed=True) == "-0.10 [-0.20, 0.00]"
    assert fmt(None) == "n/a" and fmt(float("nan")) == "n/a" and fmt(0.0123) == "0.012"
    assert fmt_p(0.0004) == "p < 0.001" and fmt_p(0.04) == "p = 0.04" and fmt_p(0.004) == "p = 0.004"


@pytest.mark.parametrize(("ratio", "rs_hi", "status"), [(0.95, 0.05, "green"), (0.8, 0.05, "amber"),
                                                        (0.5, 0.05, "red"), (0.95, -0.01, "red")])
def test_utility_light_follows_the_stated_thresholds(ratio, rs_hi, status):
    v = _summary(_utility(ratio, rs_hi)).verdict("utility")
    assert v.status == status
    assert "0.9" in v.threshold_text and "0.7" in v.threshold_text
    assert f"{ratio:.2f}" in v.sentence and "worth about 4 real cases [2, 6]" in v.sentence
    assert "0.80 [0.72, 0.87]" in v.sentence  # TRTR rounded to its CI
    assert bool(v.next_step) == (status != "green")


def test_privacy_adherence_fidelity_lights_and_next_steps():
    s = _summary(_privacy(flagged=True, memorized=True), _adherence(True, 1), _fidelity(40.0))
    priv, adh, fid = s.verdict("privacy"), s.verdict("adherence"), s.verdict("fidelity")
    assert priv.status == "red" and "memorization rate" in priv.sentence and "Holm p = 0.01" in priv.sentence
    assert "drop the 1 flagged case(s) with `checks.privacy_filter`" in priv.next_step
    assert priv.numbers["closest_synthetic_id"] == "s0" and priv.numbers["holdout_distance_median"] == 0.25
    assert adh.status == "amber" and "1 of 4" in adh.sentence and "s0" in adh.next_step
    assert fid.status == "red" and "4.0x" in fid.sentence and "Small sample" in fid.sentence
    assert s.verdict("utility").status == "grey" and s.overall == "red"
    s = _summary(_privacy(flagged=False), _adherence(False, 3), _fidelity(12.0))
    assert s.verdict("privacy").status == "green" and s.verdict("privacy").next_step == ""
    assert s.verdict("adherence").status == "red" and s.verdict("fidelity").status == "green"
    again = ReportSummary.from_dict(json.loads(json.dumps(s.to_dict())))
    assert again.to_text() == s.to_text() and again.overall == "red"


def test_summary_imports_no_torch():
    code = ("import sys\nfrom SyntheticImagingLib.checks.summary import summarize\n"
            "from SyntheticImagingLib.checks.report_model import read_report\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'monai')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"


def _case(case_id: str, radius: float, offset: int = 0) -> Case:
    z, y, x = np.mgrid[:24, :28, :24]
    head = ((z - 12) ** 2 + (y - 14) ** 2 + (x - 12) ** 2) < 100
    lesion = ((z - 12) ** 2 + (y - 10 - offset) ** 2 + (x - 14) ** 2) < radius ** 2
    image = head * 100.0 + lesion * 80.0
    return Case(case_id, {"FLAIR": image.astype(np.float32)}, Geometry((2.0, 2.0, 2.0)), label=lesion.astype(int))


def test_report_page_opens_with_the_verdict_and_shows_the_cases(tmp_path):
    syn = write_dataset([_case("s0", 3), _case("s1", 4.6, 2)], tmp_path / "syn")
    real = write_dataset([_case("case_0", 3), _case("case_1", 5)], tmp_path / "real")
    data = {"synthetic": {"root": str(syn), "cases": 2, "case_ids": ["s0", "s1"]},
            "real_train": {"root": str(real), "cases": 2, "case_ids": ["case_0", "case_1"]},
            "real_test": {"cases": 1}}
    report = write_report(tmp_path / "eval", results=[_utility(0.8), _privacy(False)], settings={"profile": "quick"},
                          data=data, requested=["utility", "privacy", "fidelity"], skipped={"fidelity": "not asked"})
    assert report["summary"]["overall"] == "amber"
    back = read_report(tmp_path / "eval")
    assert summarize(back).to_dict() == report["summary"]  # the stored summary is what a reader recomputes
    page = (tmp_path / "eval" / "report.html").read_text()
    assert page.index("id='verdict'") < page.index("id='pictures'") < page.index("id='details'") \
        < page.index("id='settings'")
    assert "data-key='tstr_over_trtr_dice' data-value='0.8'" in page and ">0.80<" in page
    assert page.count("data:image/png;base64,") >= 2 + 2 + 2  # cases, closest pairs, matched pairs
    assert "class='sortable'" in page and "<details><summary>Settings" in page
    gallery = build_gallery(back)
    assert [t.title for t in gallery.synthetic] == ["s0", "s1"]
    assert [t.title for t in gallery.closest_pairs] == ["s0 | case_0", "s1 | case_1"]
    assert gallery.matched[1].title == "s1 | case_1" and "ml" in gallery.matched[1].caption
    case = _case("c", 3)
    assert case.label[lesion_centre(case)] == 1
    assert case_thumbnail(case).png[:8] == b"\x89PNG\r\n\x1a\n"


def test_ranking_page_marks_the_recommended_generator(tmp_path):
    rows = []
    for rank, (name, flagged, dice) in enumerate((("copier", True, 0.8), ("good", False, 0.7), ("weak", False, 0.3)),
                                                 start=1):
        write_report(tmp_path / name, results=[_utility(dice / 0.8), _privacy(flagged)], settings={}, data={})
        rows.append({"rank": rank, "generator": name, "utility_tstr_dice": dice, "utility_tstr_dice_lo": dice - .05,
                     "utility_tstr_dice_hi": dice + .05, "privacy_verdict": "flagged" if flagged else "not flagged",
                     "adherence_verdict": "not run", "report": f"{name}/report.html", "warning": ""})
    (tmp_path / "ranking.json").write_text(json.dumps({"rows": rows}))
    rs = summarize_ranking(tmp_path)
    assert rs.recommended == "good" and "copier ranked higher but failed privacy" in rs.reason
    page = write_ranking_page(tmp_path).read_text()
    assert "<tr class='rec' data-generator='good'>" in page and "id='recommendation'" in page
    text = ranking_text(tmp_path)
    assert "*2" in text and "Recommended (*): good" in text


def test_cli_speaks_to_people_and_json_stays_for_scripts(sample_data, capsys):
    path = str(sample_data / "brats2018_2mm")
    assert main(["--progress", "none", "info", path]) == 0
    out = capsys.readouterr().out
    assert "10 MR cases" in out and "lesion ml" in out and "case_8  FLAIR,T1" in out
    assert main(["--progress", "none", "info", path, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["cases"] == 10
    assert main(["--progress", "none", "--json", "info", path]) == 0
    assert json.loads(capsys.readouterr().out)["kind"] == "dataset"


def test_privacy_verdict_names_disguised_copies_of_the_aligned_comparison():
    privacy = _privacy(flagged=False)
    privacy.summary.update({"verdict": "flagged", "flagged": True, "aligned_copies": 1, "aligned_threshold": 0.8,
                            "aligned_anatomy_matches": 0})
    for row, copy in zip(privacy.tables["per_synthetic_case"], (False, True)):
        row.update({"aligned_copy": copy, "aligned_training_id": "case_4", "aligned_distance": 0.6 if copy else 1.4})
    verdict = _summary(privacy).verdict("privacy")
    assert verdict.status == "red" and "Flagged by the aligned comparison" in verdict.sentence
    assert "s1 copies case_4" in verdict.sentence and verdict.numbers["aligned_copies"] == ["s1 -> case_4"]
    assert "drop the 1 flagged case(s)" in verdict.next_step
    # the fast-space pair is still read against the holdout baseline of its own space
    assert verdict.numbers["closest_space"] == "encoder" and verdict.numbers["holdout_distance_median"] == 0.25
