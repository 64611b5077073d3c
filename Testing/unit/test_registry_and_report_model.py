"""Registries list their members without importing them; report.json reads back as the checks' dataclasses."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

from SyntheticImagingLib.checks.base import CheckResult
from SyntheticImagingLib.checks.report import write_report
from SyntheticImagingLib.checks.report_model import EvaluationReport, read_report
from SyntheticImagingLib.errors import InputError
from SyntheticImagingLib.registry import CHECKS, GENERATORS, Registry


def test_listing_generators_and_checks_imports_no_torch():
    code = ("import sys\n"
            "from SyntheticImagingLib.generators import available_generators\n"
            "from SyntheticImagingLib.checks import available_checks\n"
            "print(available_generators(), available_checks())\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'monai')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    lines = out.stdout.strip().splitlines()
    assert lines[0] == "['copy-paste', 'diffusion', 'gan3d', 'label-to-image', 'lesion-insertion'] " \
                       "['adherence', 'fidelity', 'privacy', 'utility']"
    assert lines[1] == "[]"


def test_registry_imports_a_builtin_on_first_use_and_names_unknowns():
    assert GENERATORS.get("lesion-insertion").family == "lesion-insertion"
    assert CHECKS.get("privacy").name == "privacy"
    with pytest.raises(InputError, match="unknown check 'privcy'.*privacy"):
        CHECKS.get("privcy")
    reg: Registry[type] = Registry("thing", {}, key="name")

    @reg.register
    class Plugin:
        name = "plugin"

    assert reg.names() == ["plugin"] and reg.get("plugin") is Plugin and "plugin" in reg


def test_report_reads_back_as_check_results(tmp_path):
    regimes = [{"regime": "TRTR", "kind": "real", "n_real": 8, "n_synthetic": 0, "seeds": 3, "dice": 0.8,
                "dice_lo": 0.7, "dice_hi": 0.9},
               {"regime": "TSTR", "kind": "synthetic", "n_real": 0, "n_synthetic": 8, "seeds": 3, "dice": 0.6,
                "dice_lo": 0.5, "dice_hi": 0.7}]
    per_case = [{"synthetic_id": f"s{i}", "encoder_dcr": d, "encoder_nearest_training_id": f"case_{i}",
                 "encoder_memorized": d < 1, "voxel_dcr": 2 * d, "voxel_nearest_training_id": "case_0",
                 "voxel_memorized": False, "mask_max_dice": 0.2, "mask_nearest_training_id": "case_1"}
                for i, d in enumerate([3.0, 0.5, float("nan")])]
    results = [CheckResult("utility", summary={"tstr_over_trtr_dice": 0.75}, tables={"regimes": regimes}),
               CheckResult("privacy", summary={"verdict": "flagged"},
                           tables={"per_synthetic_case": per_case,
                                   "holdout_baseline": [{"holdout_id": "h", "encoder_dcr": 2.0, "voxel_dcr": 4.0}]}),
               CheckResult("adherence", tables={"per_case": [{"case_id": "s0", "dice": 0.9, "reason": "",
                                                              "prediction": "predictions/s0.nii.gz"}]})]
    write_report(tmp_path, results=results, settings={}, data={"synthetic": {"root": "/syn"}},
                 requested=["utility", "privacy", "adherence", "fidelity"], failed={"fidelity": "out of memory"})
    report = read_report(tmp_path)
    assert isinstance(report, EvaluationReport) and report.status == "incomplete"
    assert report.checks["fidelity"].status == "failed" and report.result("fidelity") is None
    assert report.checks["fidelity"].message == "out of memory"
    assert report.result("utility").summary == {"tstr_over_trtr_dice": 0.75}
    assert [(r.regime, r.dice, r.dice_lo, r.dice_hi) for r in report.regimes()] == [
        ("TRTR", 0.8, 0.7, 0.9), ("TSTR", 0.6, 0.5, 0.7)]
    assert report.privacy_spaces() == ["encoder", "voxel"]
    pairs = report.closest_pairs()
    assert [(p.synthetic_id, p.training_id, p.memorized) for p in pairs] == [
        ("s1", "case_1", True), ("s0", "case_0", False), ("s2", "case_2", False)]  # NaN distance last
    assert math.isnan(pairs[-1].distance)
    assert report.closest_pairs("voxel")[0].training_id == "case_0"
    with pytest.raises(InputError, match="no space 'pixel'"):
        report.closest_pairs("pixel")
    assert report.holdout_distances() == {"encoder": [2.0], "voxel": [4.0]}
    assert report.adherence_rows()[0].prediction == "predictions/s0.nii.gz"
    assert report.dataset_roots() == {"synthetic": "/syn"}
    with pytest.raises(InputError, match="no evaluation report"):
        read_report(tmp_path / "nowhere")
