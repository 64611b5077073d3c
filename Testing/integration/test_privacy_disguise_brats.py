"""Memorized patients in disguise on the shared BraTS cases (quick profile grid, 4 mm, 40x48x40).

Cases 0-4 are the generator's training set, 5-9 the privacy holdout. A synthetic set of 20 holds 2 training
patients altered by the disguise family (flip, rotation, scale, shift, elastic, bias field, gamma, noise; image and
label together, drawn at random) among 18 holdout patients altered the same way. The aligned comparison must
call exactly the 2 copies, each with the patient it was made from, and a set of 20 altered holdout patients must
not be flagged. Then the check itself on the issue's scenario (the 5 training patients, each disguised): flagged,
the copies table names every patient, and the aligned pairs are drawn. The full benchmark (power and false alarms
over many draws, honest generators, 1,000 x 1,000 cost) is ``Testing/benchmarks/bench_privacy_disguise.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from SyntheticImagingLib.checks.base import PROFILES, CheckContext
from SyntheticImagingLib.checks.disguise import disguised_copies
from SyntheticImagingLib.checks.prepare import prepare_case
from SyntheticImagingLib.checks.privacy import ALIGNED_FOLDER, PrivacyCheck, assess_privacy
from SyntheticImagingLib.io.datasets import load_dataset
from SyntheticImagingLib.io.images import read_image
from SyntheticImagingLib.preprocessing import resample_case

pytestmark = pytest.mark.slow

PROFILE = PROFILES["quick"]


@pytest.fixture(scope="module")
def brats(shared_data):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # two shared cores: one thread avoids oversubscription
    ds = load_dataset(shared_data / "brats2018", layout="brats")
    cases = [prepare_case(resample_case(ds[i], PROFILE.spacing), PROFILE) for i in range(len(ds))]
    yield cases[:5], cases[5:]
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def context(tmp_path_factory):
    """One context for the module: the training side (images, calibration) is computed once."""
    return CheckContext(profile=PROFILE, out_dir=tmp_path_factory.mktemp("privacy"), device="cpu", seed=0)


def test_two_disguised_copies_in_twenty_are_named(brats, context):
    train, holdout = brats
    for draw in range(2):
        copies = disguised_copies(train, 2, seed=100 + draw, prefix="copy")
        honest = disguised_copies(holdout, 18, seed=200 + draw, prefix="honest")
        a = assess_privacy(train, holdout, copies + honest, context=context, spaces=("voxel",))
        assert a.aligned is not None and a.aligned.calibration.separated
        assert a.flagged
        assert sorted(a.copies) == sorted((c.case_id, c.metadata["source"]) for c in copies), a.copies
    clean = assess_privacy(train, holdout, disguised_copies(holdout, 20, seed=300, prefix="honest"),
                           context=context, spaces=("voxel",))
    assert clean.copies == []


def test_check_flags_the_disguised_training_set_and_draws_the_pairs(brats, context):
    train, holdout = brats
    synthetic = disguised_copies(train, 5, seed=7, prefix="copy")
    result = PrivacyCheck(spaces=("voxel",)).run(real_train=train, real_test=holdout, synthetic=synthetic,
                                                 context=context)
    assert result.summary["flagged"] and result.summary["aligned_copies"] == 5
    named = {r["synthetic_id"]: r["copies_training_id"] for r in result.tables["copies"]}
    assert named == {c.case_id: c.metadata["source"] for c in synthetic}
    assert all(r["aligned_copy"] for r in result.tables["per_synthetic_case"])
    assert "elastic" in result.details["aligned"]["alteration_family"]
    assert result.figures["privacy_aligned_pairs"].stat().st_size > 5000
    # each copy is saved moved onto its patient's grid: its lesion lies on the patient's lesion
    by_id = {c.case_id: c for c in train}
    for row in result.tables["copies"][:2]:
        label, geometry = read_image(context.out_dir / ALIGNED_FOLDER / Path(row["aligned_label"]).name)
        truth = by_id[row["copies_training_id"]].label > 0
        assert geometry.spacing == by_id[row["copies_training_id"]].geometry.spacing
        assert 2 * ((label > 0) & truth).sum() / ((label > 0).sum() + truth.sum()) > 0.7
