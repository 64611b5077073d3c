"""The privacy check validated on the shared BraTS cases (quick profile grid, 4 mm, 40x48x40).

Each repeat splits the 10 cases into 4 generator-training, 3 holdout (``real_test``) and 3 pool cases. The
planted copier returns 8 lightly perturbed training cases (noise, <= 4 mm shift, intensity jitter); the honest
generator is the training-free ``lesion-insertion`` generator fitted on the pool cases only (new lesions painted
into backgrounds neither the training set nor the holdout contains), or, if that generator is not installed,
:func:`fresh_lesion_generator` on the pool. Must hold: copier flagged in >= 95 % of repeats, honest generator in
<= 5 %. Power, false-alarm rate, every run's numbers (``validation.json``) and the figures of one check are
written to ``$PRIVACY_VALIDATION_OUT`` when that is set.

The encoder is trained for 60 steps per split (the quick profile says 150) to keep the test under 4 minutes on 2
shared cores; repeats cycle over 2 splits (one encoder each).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time

import pytest
import torch

from SyntheticImagingLib.checks.base import PROFILES, CheckContext
from SyntheticImagingLib.checks.prepare import prepare_case
from SyntheticImagingLib.checks.privacy import PrivacyCheck
from SyntheticImagingLib.checks.validation import copying_generator, fresh_lesion_generator, validate_privacy_check
from SyntheticImagingLib.io.datasets import load_dataset
from SyntheticImagingLib.preprocessing import resample_case

pytestmark = pytest.mark.slow

PROFILE = dataclasses.replace(PROFILES["quick"], encoder_steps=60)


@pytest.fixture(scope="module")
def brats(shared_data):
    """Raw cases resampled to the 4 mm grid (for the generator) and their prepared versions (for the check)."""
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(1)  # two shared cores: one thread avoids oversubscription
    ds = load_dataset(shared_data / "brats2018", layout="brats")
    raw = [resample_case(ds[i], PROFILE.spacing) for i in range(len(ds))]
    yield {c.case_id: c for c in raw}, [prepare_case(c, PROFILE) for c in raw]
    torch.set_num_threads(torch_threads)


def honest_factory(raw_by_id):
    """The lesion-insertion generator on the pool cases (fitted once per pool), or the fresh-lesion stand-in."""
    from SyntheticImagingLib.generators import available_generators, create_generator

    if "lesion-insertion" not in available_generators():
        return (lambda train, pool, n, seed: fresh_lesion_generator(pool, n, seed=seed)), "fresh-lesion stand-in"
    fitted = {}

    def factory(train, pool, n, seed):
        key = tuple(c.case_id for c in pool)
        if key not in fitted:
            fitted[key] = create_generator("lesion-insertion", task="brain-tumor-mri").fit(
                [raw_by_id[c.case_id] for c in pool])
        return [prepare_case(c, PROFILE) for c in fitted[key].synthesize(n, seed=seed)]

    return factory, "lesion-insertion on pool backgrounds"


def test_planted_copier_flagged_honest_generator_not(brats, tmp_path, record_property):
    raw_by_id, cases = brats
    factory, honest_name = honest_factory(raw_by_id)
    context = CheckContext(profile=PROFILE, out_dir=tmp_path, device="cpu", seed=0)
    t0 = time.monotonic()
    out = validate_privacy_check(cases, repeats=PROFILE.repeats, context=context, honest_factory=factory,
                                 n_train=4, n_holdout=3, n_synthetic=8, n_splits=2)
    summary = {k: v for k, v in out.items() if k not in ("rows", "splits")}
    summary.update(honest_generator=honest_name, encoder_steps=PROFILE.encoder_steps,
                   seconds_total=time.monotonic() - t0)
    for row in out["rows"]:
        print("  ", json.dumps(row, default=lambda v: round(v, 3) if isinstance(v, float) else str(v)))
    print("\nprivacy validation:", json.dumps(summary, default=str))
    for key in ("power", "false_alarm_rate", "repeats"):
        record_property(key, out[key])
    folder = os.environ.get("PRIVACY_VALIDATION_OUT")
    if folder:
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "validation.json"), "w") as f:
            json.dump({**summary, "splits": out["splits"], "rows": out["rows"]}, f, indent=1, default=str)
    assert out["repeats"] == PROFILE.repeats == 20
    assert out["power"] >= 0.95, out["rows"]
    assert out["false_alarm_rate"] <= 0.05, out["rows"]

    # the check itself on the first split (its encoder is cached): 6 copies and 2 honest cases; the closest
    # pairs are the copies, each beside its source
    by_id = {c.case_id: c for c in cases}
    split = out["splits"][0]
    train, holdout, pool = ([by_id[i] for i in split[part]] for part in ("train", "holdout", "pool"))
    synthetic = copying_generator(train, 6, seed=1) + list(factory(train, pool, 2, 1))
    context.out_dir = folder or tmp_path
    result = PrivacyCheck().run(real_train=train, real_test=holdout, synthetic=synthetic, context=context)
    print("privacy check on split 0:", json.dumps(result.summary, default=str))
    assert result.summary["flagged"]
    assert result.summary["voxel_memorization_rate"] == 0.75
    top = [r for r in result.tables["closest_pairs"] if r["space"] == "voxel"][:6]
    sources = {c.case_id: c.metadata.get("source") for c in synthetic}
    assert all(r["memorized"] and r["training_id"] == sources[r["synthetic_id"]] for r in top)
    assert all(path.exists() for path in result.figures.values())
