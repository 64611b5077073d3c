"""Trained segmenters kept on disk: a second evaluation of the same real cases loads the model training would
make instead of training it again; anything else (other cases, seed, settings, a damaged file) is trained."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from test_utility_check import TINY, blob_case  # same folder: pytest puts it on sys.path

from SyntheticImagingLib.checks import segmenter_store
from SyntheticImagingLib.checks.base import CheckContext, Profile
from SyntheticImagingLib.checks.prepare import prepare_cases
from SyntheticImagingLib.checks.segmenter import SegmenterConfig, segment
from SyntheticImagingLib.checks.segmenter_store import (
    load_segmenter,
    reference_segmenter,
    save_segmenter,
    store_key,
    trained_segmenter,
)

CFG = SegmenterConfig(features=(4, 8), steps=3)


@pytest.fixture(scope="module")
def cases():
    return prepare_cases([blob_case(f"r{i}", i) for i in range(3)], TINY)


def ctx(tmp_path, cache: bool = True) -> CheckContext:
    return CheckContext(profile=TINY, out_dir=tmp_path / "out", device="cpu", seed=0,
                        cache_dir=tmp_path / "cache" if cache else None)


def test_second_evaluation_loads_the_same_model(cases, tmp_path, monkeypatch):
    first = trained_segmenter(cases, config=CFG, seed=1, context=ctx(tmp_path))
    files = list((tmp_path / "cache" / "segmenters").glob("*.pt"))
    assert [f.stem for f in files] == [store_key(cases, CFG, 1, "cpu")]

    def no_training(*args, **kwargs):
        raise AssertionError("trained again")

    with monkeypatch.context() as m:
        m.setattr(segmenter_store, "train_segmenter", no_training)
        again = trained_segmenter(cases, config=CFG, seed=1, context=ctx(tmp_path))
        # the in-evaluation reference cache sits on top of the disk store
        ref = reference_segmenter(cases, dataclasses.replace(ctx(tmp_path), seed=1), config=CFG)
    assert again.losses == first.losses and again.train_ids == first.train_ids and again.seed == 1
    for a, b, c in zip(segment(first, cases), segment(again, cases), segment(ref, cases)):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)

    # another seed, other settings, other cases or changed contents: trained, not loaded
    trained_segmenter(cases, config=CFG, seed=2, context=ctx(tmp_path))
    trained_segmenter(cases, config=dataclasses.replace(CFG, steps=4), seed=1, context=ctx(tmp_path))
    trained_segmenter(cases[:2], config=CFG, seed=1, context=ctx(tmp_path))
    changed = [cases[0].replace(channels={"FLAIR": cases[0].channels["FLAIR"] * 0.5}), *cases[1:]]
    assert store_key(changed, CFG, 1, "cpu") != store_key(cases, CFG, 1, "cpu")
    assert len(list((tmp_path / "cache" / "segmenters").glob("*.pt"))) == 4

    # without a cache folder nothing is written
    trained_segmenter(cases, config=CFG, seed=1, context=ctx(tmp_path / "none", cache=False))
    assert not (tmp_path / "none").exists()


def test_damaged_or_foreign_files_are_retrained(cases, tmp_path):
    model = trained_segmenter(cases, config=CFG, seed=0, context=ctx(tmp_path, cache=False))
    path = save_segmenter(model, tmp_path / "m.pt")
    loaded = load_segmenter(path)
    assert loaded is not None and loaded.config == CFG and loaded.labels == model.labels
    path.write_bytes(path.read_bytes()[:100])
    assert load_segmenter(path) is None
    (tmp_path / "x.pt").write_text("not a model")
    assert load_segmenter(tmp_path / "x.pt") is None and load_segmenter(tmp_path / "missing.pt") is None

    key = store_key(cases, CFG, 0, "cpu")
    target = tmp_path / "cache" / "segmenters" / f"{key}.pt"
    target.parent.mkdir(parents=True)
    target.write_text("damaged")
    again = trained_segmenter(cases, config=CFG, seed=0, context=ctx(tmp_path))
    assert again.losses == model.losses and load_segmenter(target) is not None  # retrained and overwritten


def test_profile_patch_reaches_the_segmenter():
    patched = Profile(**{**TINY.__dict__, "segmenter_patch": (8, 8, 8)})
    assert SegmenterConfig.for_profile(patched).patch_size == (8, 8, 8)
    assert SegmenterConfig.for_profile(TINY).patch_size is None


def test_evaluations_against_the_same_real_cases_train_the_real_segmenters_once(tmp_path, monkeypatch):
    from SyntheticImagingLib.checks.evaluate import evaluate
    from SyntheticImagingLib.checks.report_model import read_report

    real = prepare_cases([blob_case(f"r{i}", i) for i in range(4)], TINY)
    test = prepare_cases([blob_case(f"t{i}", 100 + i) for i in range(2)], TINY)
    set_a = prepare_cases([blob_case(f"a{i}", 10 + i) for i in range(4)], TINY)
    set_b = prepare_cases([blob_case(f"b{i}", 20 + i) for i in range(4)], TINY)
    profile = Profile(**{**TINY.__dict__, "seeds": 2, "segmenter_steps": 2, "real_sizes": ()})
    trained: list[tuple[str, ...]] = []
    real_train = segmenter_store.train_segmenter

    def counting(cases, **kwargs):
        trained.append(tuple(c.case_id for c in cases))
        return real_train(cases, **kwargs)

    monkeypatch.setattr(segmenter_store, "train_segmenter", counting)
    reports, before = [], []
    for name, syn in (("a", set_a), ("b", set_b)):
        before.append(len(trained))
        reports.append(evaluate(real, test, syn, out_dir=tmp_path / name, checks="utility", profile=profile,
                                device="cpu", cache_dir=tmp_path / "cache"))
    real_only = tuple(c.case_id for c in real)
    # first evaluation: TRTR (2 seeds) + its convergence run; the second loads all three and trains only on b
    assert trained.count(real_only) == 3
    second = trained[before[1]:]
    assert second and all(any(i.startswith("b") for i in ids) for ids in second)
    assert [rep["status"] for rep in reports] == ["complete", "complete"]
    trtr = []
    for name in "ab":
        result = read_report(tmp_path / name).result("utility")
        assert result is not None
        trtr.append([r for r in result.tables["per_case"] if r["regime"] == "TRTR"])
    assert trtr[0] == trtr[1] and len(trtr[0]) == 2 * len(test)
