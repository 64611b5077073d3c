"""The utility check on tiny 16^3 blob cases: copies of the real cases are as useful as the real cases, a
synthetic set with shifted labels is clearly not; plus the segmenter, the report and ``evaluate`` plumbing."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from SyntheticImagingLib.cases import Case, Geometry
from SyntheticImagingLib.checks.base import Check, CheckContext, CheckResult, Profile
from SyntheticImagingLib.checks.prepare import LESION_LABELS, prepare_cases
from SyntheticImagingLib.checks.segmenter import SegmenterConfig, segment, train_segmenter
from SyntheticImagingLib.checks.segmenter_store import REFERENCE_CACHE_KEY, reference_segmenter
from SyntheticImagingLib.checks.stats import BELOW_SMALLEST
from SyntheticImagingLib.checks.utility import UtilityCheck, plan_regimes
from SyntheticImagingLib.errors import InputError

TINY = Profile(name="tiny", spacing=(1.0, 1.0, 1.0), shape=(16, 16, 16), seeds=2, segmenter_steps=60,
               encoder_steps=10, real_sizes=(2,), synthetic_ratios=(1.0,), repeats=2)
CONFIG = SegmenterConfig(features=(8, 16, 32), steps=60, batch_size=2, learning_rate=1e-2)


def blob_case(case_id: str, seed: int, *, label_shift: int = 0) -> Case:
    """A head-like sphere with one bright blob (the lesion); ``label_shift`` moves the label off the blob."""
    rng = np.random.default_rng(seed)
    z, y, x = np.mgrid[:16, :16, :16]
    head = ((z - 7.5) ** 2 + (y - 7.5) ** 2 + (x - 7.5) ** 2) < 49
    c = 7.5 + rng.uniform(-2.5, 2.5, 3)
    blob = ((z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2) < rng.uniform(4, 7) ** 2 / 2
    flair = np.where(head, 100 + rng.normal(0, 5, head.shape), 0) + 120 * blob
    label = np.roll(blob, label_shift, axis=1) if label_shift else blob
    return Case(case_id=case_id, channels={"FLAIR": flair.astype(np.float32)}, geometry=Geometry((1.0, 1.0, 1.0)),
                label=label.astype(np.int16))


@pytest.fixture(scope="module")
def tiny_sets():
    real_train = prepare_cases([blob_case(f"r{i}", i) for i in range(4)], TINY)
    real_test = prepare_cases([blob_case(f"t{i}", 100 + i) for i in range(2)], TINY)
    copies = prepare_cases([blob_case(f"s{i}", i) for i in range(4)], TINY)
    shifted = prepare_cases([blob_case(f"w{i}", 50 + i, label_shift=5) for i in range(4)], TINY)
    return real_train, real_test, copies, shifted


def context(tmp_path, name: str) -> CheckContext:
    return CheckContext(profile=TINY, out_dir=tmp_path / name, device="cpu", seed=0)


def test_prepare_binarises_and_normalises():
    case = blob_case("a", 0)
    case = case.replace(label=case.label * 2, label_table=case.label_table.from_dict({"2": "core"}))
    (p,) = prepare_cases([case], TINY)
    assert p.shape == (16, 16, 16) and p.label_table == LESION_LABELS
    assert set(np.unique(p.label)) == {0, 1}
    assert p.channels["FLAIR"].min() == pytest.approx(-1.0) and p.brain_mask is not None
    assert p.metadata["prepared"]["source_fingerprint"]


def test_prepare_cache_roundtrip(tmp_path):
    cases = [blob_case("a", 0), blob_case("b", 1)]
    first = prepare_cases(cases, TINY, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.npz"))) == 2
    again = prepare_cases(cases, TINY, cache_dir=tmp_path)
    for a, b in zip(first, again):
        assert a.case_id == b.case_id and a.geometry == b.geometry
        np.testing.assert_array_equal(a.channels["FLAIR"], b.channels["FLAIR"])
        np.testing.assert_array_equal(a.label, b.label)
        np.testing.assert_array_equal(a.brain_mask, b.brain_mask)


def test_plan_regimes():
    regimes, skipped = plan_regimes(3, 10, real_sizes=(2, 3, 16), synthetic_ratios=(0.5, 2.0))
    by_name = {r.name: r for r in regimes}
    assert list(by_name) == ["TRTR", "TSTR", "R+S x0.5", "R+S x2", "R2", "R2+S", "R3+S"]
    assert by_name["R+S x0.5"].n_synthetic == 2 and by_name["R+S x2"].n_synthetic == 6
    assert by_name["R2+S"].n_synthetic == 10 and skipped == [16]


def test_segmenter_is_deterministic_and_reference_is_cached(tiny_sets, tmp_path):
    real_train, real_test, _, _ = tiny_sets
    cfg = SegmenterConfig(features=(4, 8), steps=4)
    a = train_segmenter(real_train, config=cfg, seed=3, device="cpu")
    b = train_segmenter(real_train, config=cfg, seed=3, device="cpu")
    assert a.losses == b.losses
    for pa, pb in zip(segment(a, real_test), segment(b, real_test)):
        np.testing.assert_array_equal(pa, pb)
        assert pa.shape == (16, 16, 16) and pa.dtype == np.uint8
    ctx = context(tmp_path, "ref")
    ctx.profile = Profile(**{**TINY.__dict__, "segmenter_steps": 3})
    first = reference_segmenter(real_train, ctx, config=cfg)
    assert reference_segmenter(real_train, ctx, config=cfg) is first
    assert len(ctx.cache[REFERENCE_CACHE_KEY]) == 1


def test_segmenter_patch_training_and_channel_check(tiny_sets):
    real_train, real_test, _, _ = tiny_sets
    cfg = SegmenterConfig(features=(4, 8), steps=3, patch_size=(8, 8, 8))
    model = train_segmenter(real_train, config=cfg, seed=0, device="cpu")
    assert segment(model, real_test)[0].shape == (16, 16, 16)
    other = real_test[0].replace(channels={"T2": real_test[0].channels["FLAIR"]})
    with pytest.raises(InputError, match="channels"):
        segment(model, [other])


def test_copies_are_as_useful_as_real_and_shifted_labels_are_not(tiny_sets, tmp_path):
    real_train, real_test, copies, shifted = tiny_sets
    check = UtilityCheck(config=CONFIG)
    good = check.run(real_train=real_train, real_test=real_test, synthetic=copies,
                     context=context(tmp_path, "good"))
    trtr = good.summary["regimes"]["TRTR"]["dice"]
    tstr = good.summary["regimes"]["TSTR"]["dice"]
    assert trtr > 0.7, good.tables["regimes"]
    assert abs(tstr - trtr) < 0.1

    bad = check.run(real_train=real_train, real_test=real_test, synthetic=shifted,
                    context=context(tmp_path, "bad"))
    bad_tstr = bad.summary["regimes"]["TSTR"]["dice"]
    assert bad_tstr < bad.summary["regimes"]["TRTR"]["dice"] - 0.3
    assert bad.summary["real_equivalent"]["outcome"] == BELOW_SMALLEST
    assert bad.summary["comparisons"]["TSTR vs TRTR"]["mean_diff"] < -0.3

    # result layout: tables, figures, every regime x seed x test case
    assert set(good.tables) == {"regimes", "size_sweep", "comparisons", "runs", "per_case"}
    assert len(good.tables["per_case"]) == 6 * TINY.seeds * len(real_test)  # 6 regimes
    assert {r["regime"] for r in good.tables["runs"] if r["same_training_as"]} == {"R4+S"}
    for path in good.figures.values():
        assert path.exists() and path.stat().st_size > 1000
    eq = good.summary["real_equivalent"]
    assert eq["outcome"] is not None and eq["text"]
    assert all(math.isfinite(r["dice"]) for r in good.tables["per_case"])


def test_evaluate_writes_report_and_guards_inputs(tiny_sets, tmp_path, monkeypatch):
    from SyntheticImagingLib.checks import evaluate as ev

    real_train, real_test, copies, _ = tiny_sets
    with pytest.raises(InputError, match="both real_train and real_test"):
        ev.evaluate(real_train, [real_train[0], *real_test], copies, out_dir=tmp_path / "x", checks=("utility",),
                    profile=TINY)
    with pytest.raises(InputError, match="unknown check"):
        ev.evaluate(real_train, real_test, copies, out_dir=tmp_path / "x", checks="utilty", profile=TINY)
    assert not (tmp_path / "x").exists()

    class Broken(Check):
        name = "broken"

        def run(self, *, real_train, real_test, synthetic, context):
            raise RuntimeError("boom")

    class Generic(Check):
        name = "generic"

        def run(self, *, real_train, real_test, synthetic, context):
            outside = tmp_path / "elsewhere.png"
            from SyntheticImagingLib.checks.report import plot_regime_metric

            plot_regime_metric([{"regime": "a", "kind": "real", "dice": 0.5}], outside)
            return CheckResult(name="generic", summary={"score": float("nan"), "nested": {"x": np.float32(1.5)}},
                               tables={"rows": [{"a": 1}, {"a": 2, "b": "<x>"}]}, figures={"plot": outside})

    from SyntheticImagingLib.registry import CHECKS

    monkeypatch.setitem(CHECKS._classes, "broken", Broken)
    monkeypatch.setitem(CHECKS._classes, "generic", Generic)
    monkeypatch.setattr(ev, "PLANNED_CHECKS", ev.PLANNED_CHECKS | {"future"})
    events = []
    cheap = Profile(**{**TINY.__dict__, "seeds": 1, "segmenter_steps": 2})
    report = ev.evaluate(real_train, real_test, copies, out_dir=tmp_path / "rep",
                         checks="utility,generic,broken,future", profile=cheap, device="cpu", progress=events.append)
    out = tmp_path / "rep"
    on_disk = json.loads((out / "report.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} in JSON"))
    assert on_disk["status"] == "incomplete" == report["status"]
    checks = on_disk["checks"]
    assert [checks[n]["status"] for n in ("utility", "generic", "broken", "future")] == \
        ["ok", "ok", "failed", "skipped"]
    assert "boom" in checks["broken"]["message"] and "not available" in checks["future"]["message"]
    assert (out / "broken" / "error.txt").exists()
    assert checks["generic"]["summary"] == {"score": None, "nested": {"x": 1.5}}
    assert (out / checks["generic"]["figures"]["plot"]).exists()
    for name in ("regimes", "size_sweep", "comparisons", "runs", "per_case"):
        assert (out / checks["utility"]["tables"][name]["csv"]).exists()
    assert set(on_disk["data"]) == {"real_train", "real_test", "synthetic"}
    assert on_disk["data"]["real_train"]["cases"] == 4 and on_disk["versions"]["torch"]
    page = (out / "report.html").read_text()
    assert "id='check-generic'" in page and "&lt;x&gt;" in page and page.count("data:image/png;base64,") >= 4
    assert any(e.stage.startswith("utility:") for e in events)
    with pytest.raises(Exception, match="not empty"):
        ev.evaluate(real_train, real_test, copies, out_dir=out, checks=("generic",), profile=cheap)


def test_case_seed_ci_carries_the_test_set_size():
    from SyntheticImagingLib.checks.stats import case_seed_ci

    rng = np.random.default_rng(0)
    small = case_seed_ci(rng.uniform(0.5, 0.9, (3, 2)))
    large = case_seed_ci(rng.uniform(0.5, 0.9, (3, 40)))
    assert small["n_cases"] == 2 and large["n_cases"] == 40
    assert (small["hi"] - small["lo"]) > 2 * (large["hi"] - large["lo"])
    assert math.isnan(case_seed_ci(np.array([[0.5], [0.6]]))["lo"])  # one test case: no interval


def test_kfold_tests_every_real_case_once_and_drops_synthetic_made_from_the_test_fold():
    from SyntheticImagingLib.checks.utility import kfold_splits

    real = [blob_case(f"r{i}", i) for i in range(7)]
    synthetic = [blob_case(f"s{i}", 50 + i).replace(metadata={"background": f"r{i}"}) for i in range(7)]
    splits = kfold_splits(real, synthetic, folds=3, seed=1)
    tested = [c.case_id for _, te, _ in splits for c in te]
    assert sorted(tested) == sorted(c.case_id for c in real) and len(tested) == len(set(tested))
    for train, test, syn in splits:
        ids = {c.case_id for c in test}
        assert not ids & {c.case_id for c in train}
        assert not ids & {c.metadata["background"] for c in syn}  # no test patient through a synthetic copy
        assert len(syn) == len(synthetic) - len(test)
    with pytest.raises(InputError, match="at least 2 real cases"):
        kfold_splits(real[:1], synthetic, folds=5)


def test_kfold_utility_with_convergence_and_test_set_statement(tiny_sets, tmp_path):
    from SyntheticImagingLib.checks import evaluate as ev
    from SyntheticImagingLib.checks.report_model import read_report
    from SyntheticImagingLib.checks.summary import summarize

    real_train, real_test, copies, _ = tiny_sets
    real = [*real_train, *real_test]
    profile = Profile(**{**TINY.__dict__, "seeds": 1, "segmenter_steps": 20, "folds": 3, "real_sizes": ()})
    report = ev.evaluate(real, None, copies, out_dir=tmp_path / "kfold", checks="utility", profile=profile,
                         device="cpu")
    utility = report["checks"]["utility"]
    s = utility["summary"]
    assert s["protocol"]["kind"] == "k-fold" and s["protocol"]["folds"] == 3
    assert s["real_test_cases"] == len(real)  # every real case tested once
    assert s["test_set"]["enough_to_rank"] is False and "too small to rank" in s["test_set"]["text"]
    conv = s["convergence"]
    assert conv["steps"] == 20 and conv["steps_2x"] == 40 and isinstance(conv["converged"], bool)
    assert report["data"]["real_test"]["protocol"].startswith("3-fold")
    verdict = summarize(read_report(tmp_path / "kfold")).verdict("utility")
    assert verdict is not None and "too small to rank" in verdict.sentence and "Segmenter budget" in verdict.sentence
    assert "3-fold by case" in verdict.sentence
    assert verdict.numbers["enough_to_rank"] is False
