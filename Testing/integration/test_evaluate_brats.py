"""``evaluate --profile quick`` on the shared BraTS cases: 8 real training / 2 real test cases split by case,
a synthetic set made from the training cases; the report folder must hold every section.

The synthetic set comes from the ``lesion-insertion`` generator when it is installed, else from a stand-in made
here (each training case with the tumour of another training case transplanted into it).
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from SyntheticImagingLib.cases import Case
from SyntheticImagingLib.checks import available_checks
from SyntheticImagingLib.checks.evaluate import evaluate
from SyntheticImagingLib.io.datasets import load_dataset
from SyntheticImagingLib.preprocessing import resample_case

pytestmark = pytest.mark.slow

UTILITY_TABLES = ("regimes", "size_sweep", "comparisons", "runs", "per_case")
UTILITY_FIGURES = ("dice_per_regime", "hd95_per_regime", "dice_vs_real_size")


def transplant_standin(cases: list[Case]) -> list[Case]:
    """Case i with case i+1's tumour voxels (intensities rescaled to case i) pasted in; label = union.

    BraTS cases share one atlas grid, so a mask of one case is a plausible location in another.
    """
    out = []
    for i, host in enumerate(cases):
        donor = cases[(i + 1) % len(cases)]
        mask = donor.label > 0
        channels = {}
        for name, a in host.channels.items():
            d = donor.channels[name]
            scale = np.percentile(a[a > 0], 99) / max(np.percentile(d[d > 0], 99), 1e-6)
            channels[name] = np.where(mask, d * scale, a).astype(np.float32)
        label = ((host.label > 0) | mask).astype(np.int16)
        out.append(host.replace(case_id=f"standin_{i}", channels=channels, label=label,
                                metadata={"synthetic": True, "stand_in": "tumour transplant"}))
    return out


def make_synthetic(train) -> tuple[list[Case], str]:
    # 2 mm is enough for a 4 mm check grid and keeps memory and time small
    cases = [resample_case(c, (2.0, 2.0, 2.0)) for c in train]
    from SyntheticImagingLib.generators import available_generators, create_generator

    if "lesion-insertion" in available_generators():
        gen = create_generator("lesion-insertion", task="brain-tumor-mri").fit(cases)
        return list(gen.synthesize(len(cases), seed=0)), "lesion-insertion"
    return transplant_standin(cases), "transplant stand-in"


def test_evaluate_quick_on_brats(shared_data, tmp_path):
    ds = load_dataset(shared_data / "brats2018", layout="brats")
    ids = sorted(ds.case_ids, key=lambda s: int(s.split("_")[-1]) if s.split("_")[-1].isdigit() else s)
    train, test = ds.subset(ids[:8]), ds.subset(ids[8:10])
    assert not set(train.case_ids) & set(test.case_ids)
    synthetic, source = make_synthetic(train)
    checks = ("utility", "fidelity", "privacy")
    registered = set(available_checks())
    out = tmp_path / "report"
    t0 = time.monotonic()
    report = evaluate(train, test, synthetic, out_dir=out, checks=checks, profile="quick", device="cpu", seed=0)
    elapsed = time.monotonic() - t0
    print(f"evaluate quick ({source}, checks registered: {sorted(registered)}): {elapsed:.0f} s")

    on_disk = json.loads((out / "report.json").read_text())
    assert on_disk == json.loads(json.dumps(report))
    assert set(on_disk) >= {"schema", "status", "settings", "data", "versions", "checks"}
    assert on_disk["settings"]["profile"]["name"] == "quick"
    assert on_disk["settings"]["timing_s"]["total"] > 0
    for name, n in (("real_train", 8), ("real_test", 2), ("synthetic", len(synthetic))):
        info = on_disk["data"][name]
        assert info["cases"] == n and info["case_ids_sha256"] and info["content_fingerprint"]
        assert info["modality"] == ["MR"] and info["source_spacing"]
    assert on_disk["data"]["real_train"]["dataset_fingerprint"] == train.fingerprint()
    assert {"torch", "monai", "SyntheticImagingLib"} <= set(on_disk["versions"])
    for name in checks:
        entry = on_disk["checks"][name]
        expected = "ok" if name in registered else "skipped"
        assert entry["status"] == expected, entry.get("message")
        if expected == "ok":
            assert entry["summary"]
            for table in entry["tables"].values():
                assert (out / table["csv"]).exists()
            for fig in entry["figures"].values():
                assert (out / fig).read_bytes()[:4] == b"\x89PNG"
    assert on_disk["status"] == ("complete" if registered >= set(checks) else "incomplete")

    utility = on_disk["checks"]["utility"]
    assert set(utility["tables"]) == set(UTILITY_TABLES) and set(utility["figures"]) == set(UTILITY_FIGURES)
    regimes = utility["summary"]["regimes"]
    assert {"TRTR", "TSTR", "R+S x1"} <= set(regimes)
    # a segmenter trained on 8 real cases finds whole tumours on the 4 mm grid
    assert regimes["TRTR"]["dice"] > 0.5, utility["tables"]["regimes"]["rows"]
    assert utility["summary"]["real_equivalent"]["outcome"] is not None
    sweep = {(r["n_real"], r["with_synthetic"]) for r in utility["tables"]["size_sweep"]["rows"]}
    assert sweep == {(n, s) for n in (2, 4, 8) for s in (False, True)}

    page = (out / "report.html").read_text()
    # verdict first, pictures, then each check's details, settings folded at the bottom
    for section in ("Useful?", "Private?", "Pictures", "Details", "Settings", "Data: ", "Versions",
                    *[f"id='check-{n}'" for n in checks]):
        assert section in page, section
    assert page.index("Useful?") < page.index("Pictures") < page.index("Details") < page.index("Versions")
    assert page.count("data:image/png;base64,") >= len(UTILITY_FIGURES)
