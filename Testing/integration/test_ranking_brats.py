"""``rank_generators`` on the shared BraTS cases: 6 real training / 2 real test cases split by case, two synthetic
sets (lesion insertion, label-to-image) of 4 cases each, ranked by utility on the real held-out cases with label
adherence and KID / FD with CIs beside. A CPU-sized profile (one seed, few steps) keeps it under 4 minutes."""

from __future__ import annotations

import csv
import dataclasses
import json
import time
from pathlib import Path

import pytest
import torch

from SyntheticImagingLib.checks.base import PROFILES
from SyntheticImagingLib.checks.ranking import rank_generators
from SyntheticImagingLib.io.datasets import load_dataset
from SyntheticImagingLib.preprocessing import resample_case

pytestmark = pytest.mark.slow

BRATS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "brats2018"
PROFILE = dataclasses.replace(PROFILES["quick"], name="quick-ranking", seeds=1, segmenter_steps=30,
                              encoder_steps=20, real_sizes=(), synthetic_ratios=(1.0,))


def test_rank_two_generators_on_brats(tmp_path):
    if not BRATS.exists():
        pytest.skip(f"shared BraTS data not found at {BRATS}")
    from SyntheticImagingLib.generators import create_generator

    torch.set_num_threads(1)
    t0 = time.monotonic()
    ds = load_dataset(BRATS, layout="brats")
    ids = sorted(ds.case_ids, key=lambda s: int(s.split("_")[-1]) if s.split("_")[-1].isdigit() else s)
    train, test = ds.subset(ids[:6]), ds.subset(ids[6:8])
    assert not set(train.case_ids) & set(test.case_ids)
    # 2 mm is plenty for the 4 mm check grid and keeps the generators' time and memory small
    cases = [resample_case(c, (2.0, 2.0, 2.0)) for c in train]
    sets = {}
    for family in ("lesion-insertion", "label-to-image"):
        gen = create_generator(family, task="brain-tumor-mri").fit(cases)
        sets[family] = list(gen.synthesize(4, seed=0))
    t_gen = time.monotonic() - t0
    out = tmp_path / "ranking"
    result = rank_generators(train, test, sets, out_dir=out, profile=PROFILE, device="cpu", seed=0,
                             checks=("utility", "adherence"), n_boot=200)
    elapsed = time.monotonic() - t0

    with open(out / "ranking.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    cols = ("rank", "generator", "utility_tstr_dice", "utility_rs_dice", "adherence_dice", "kid", "kid_lo", "fd",
            "warning")
    print(f"\ngenerators {t_gen:.0f} s, total {elapsed:.0f} s")
    print(" | ".join(cols))
    for r in rows:
        print(" | ".join(r[c][:60] if c == "warning" else r[c] for c in cols))
    assert sorted(r["generator"] for r in rows) == sorted(sets)
    assert "utility_tstr_dice" in rows[0] and all(r["utility_tstr_dice"] not in ("", "nan") for r in rows)
    assert [r["rank"] for r in rows] == ["1", "2"]
    assert float(rows[0]["utility_tstr_dice"]) >= float(rows[1]["utility_tstr_dice"])
    assert all(r["adherence_verdict"] not in ("", "not run") for r in rows)
    assert all(float(r["kid_lo"]) <= float(r["kid_hi"]) for r in rows)
    assert (out / "ranking.png").stat().st_size > 0
    assert json.loads((out / "ranking.json").read_text())["rows"] == json.loads(json.dumps(result["rows"]))
    for name in sets:
        assert json.loads((out / name / "report.json").read_text())["status"] == "complete"
    assert not (out / ".prepared").exists()
