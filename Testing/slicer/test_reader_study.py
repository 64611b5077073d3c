"""Reader study (pure Python): blinded randomised sequence, exact Clopper-Pearson interval, binomial test, CSV."""

from __future__ import annotations

import csv
import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "SyntheticImaging"))

from SyntheticImagingModule.reader_study import (  # noqa: E402
    CSV_COLUMNS,
    REAL,
    SYNTHETIC,
    ReaderStudy,
    binomial_test_two_sided,
    clopper_pearson,
    make_trials,
)

CASES = [(0, 1), (1, 1), (0, 10), (1, 10), (5, 10), (9, 10), (10, 10), (13, 40), (37, 60), (480, 1000), (999, 1000)]


@pytest.mark.parametrize("k,n", CASES)
def test_clopper_pearson_matches_the_beta_quantiles(k, n):
    stats = pytest.importorskip("scipy.stats")
    lo, hi = clopper_pearson(k, n)
    assert lo == pytest.approx(stats.beta.ppf(0.025, k, n - k + 1) if k > 0 else 0.0, abs=1e-9)
    assert hi == pytest.approx(stats.beta.ppf(0.975, k + 1, n - k) if k < n else 1.0, abs=1e-9)
    lo90, hi90 = clopper_pearson(k, n, confidence=0.90)
    assert lo <= lo90 <= k / n <= hi90 <= hi


def test_clopper_pearson_known_values_and_edges():
    # textbook values: 0/10 -> [0, 0.3085], 10/10 -> [0.6915, 1]
    assert clopper_pearson(0, 10) == (0.0, pytest.approx(0.30850, abs=1e-5))
    assert clopper_pearson(10, 10) == (pytest.approx(0.69150, abs=1e-5), 1.0)
    assert clopper_pearson(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        clopper_pearson(11, 10)


@pytest.mark.parametrize("k,n", CASES)
def test_binomial_test_matches_scipy(k, n):
    stats = pytest.importorskip("scipy.stats")
    assert binomial_test_two_sided(k, n) == pytest.approx(stats.binomtest(k, n, 0.5).pvalue, rel=1e-9, abs=1e-12)


def test_sequence_is_balanced_blinded_and_reproducible():
    real = [f"case_{i}" for i in range(8)]
    synthetic = [f"synthetic_{i:04d}" for i in range(20)]
    trials = make_trials(real, synthetic, per_class=6, seed=42)
    assert len(trials) == 12
    assert sum(t.source == REAL for t in trials) == sum(t.source == SYNTHETIC for t in trials) == 6
    assert [t.blinded_id for t in trials] == [f"Case {i:02d}" for i in range(1, 13)]
    assert all(t.case_id not in t.blinded_id and "synth" not in t.blinded_id.lower() for t in trials)
    assert len({t.case_id for t in trials}) == 12  # no case shown twice
    assert trials == make_trials(real, synthetic, per_class=6, seed=42)
    orders = {tuple(t.source for t in make_trials(real, synthetic, per_class=6, seed=s)) for s in range(10)}
    assert len(orders) > 1  # the order depends on the seed: not real-first
    assert len(make_trials(real, synthetic, seed=0)) == 16  # default: all of the smaller source


@pytest.mark.parametrize("per_class", [0, 9])
def test_sequence_size_is_checked(per_class):
    with pytest.raises(ValueError, match="cases per class"):
        make_trials([f"r{i}" for i in range(8)], [f"s{i}" for i in range(20)], per_class=per_class)
    with pytest.raises(ValueError, match="at least one"):
        make_trials([], ["s"], seed=0)


def test_reader_answers_score_and_csv(tmp_path):
    study = ReaderStudy([f"r{i}" for i in range(10)], [f"s{i}" for i in range(10)], seed=7, reader="RAD1")
    assert study.current.index == 0 and not study.done
    with pytest.raises(ValueError):
        study.record("maybe")
    with pytest.raises(ValueError):
        study.record(REAL, confidence=6)
    # a reader who calls everything "real": right on every real case, wrong on every synthetic one
    while not study.done:
        study.record("Real ", confidence=2, seconds=1.5)
    assert study.current is None
    with pytest.raises(ValueError):
        study.record(REAL)
    score = study.score()
    assert (score.n, score.correct, score.accuracy) == (20, 10, 0.5)
    assert (score.real_found, score.real_total, score.synthetic_found, score.synthetic_total) == (10, 10, 0, 10)
    assert score.indistinguishable and score.p_value == pytest.approx(1.0)
    assert (score.ci_low, score.ci_high) == pytest.approx(clopper_pearson(10, 20))
    assert "not distinguishable" in score.verdict()
    rows = {r["metric"]: r["value"] for r in score.rows()}
    assert rows["accuracy"] == 0.5 and rows["mean confidence"] == 2.0 and rows["real called real"] == 1.0

    path = study.write_csv(tmp_path / "out" / "reader.csv")
    with open(path, newline="", encoding="utf-8") as f:
        written = list(csv.DictReader(f))
    assert list(written[0]) == list(CSV_COLUMNS) and len(written) == 20
    assert {r["truth"] for r in written} == {REAL, SYNTHETIC}
    assert all(r["reader"] == "RAD1" and r["seed"] == "7" and r["answer"] == REAL for r in written)
    assert sum(int(r["correct"]) for r in written) == 10
    assert [int(r["trial"]) for r in written] == list(range(1, 21))


def test_a_good_reader_is_told_apart_from_chance():
    study = ReaderStudy([f"r{i}" for i in range(15)], [f"s{i}" for i in range(15)], seed=1)
    while not study.done:
        trial = study.current
        wrong = trial.index % 10 == 0  # 3 mistakes out of 30
        study.record(SYNTHETIC if (trial.source == REAL) == wrong else REAL, confidence=5)
    score = study.score()
    assert score.correct == 27 and not score.indistinguishable and score.ci_low > 0.5
    assert score.p_value < 0.001 and "could tell" in score.verdict()
    empty = ReaderStudy(["r"], ["s"]).score()
    assert empty.n == 0 and math.isnan(empty.accuracy) and empty.verdict() == "No answers yet."
