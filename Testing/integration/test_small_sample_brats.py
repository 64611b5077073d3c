"""KID / FD with bootstrap CIs on the shared BraTS cases: the intervals narrow as the synthetic set grows
(n = 5, 10, 20) and the small-sample warning appears at small n.

The encoder is the fidelity check's own, trained self-supervised on the 8 real training cases (quick profile
grid); the synthetic cases come from the label-to-image generator fitted on the same 8 cases. Only 10 real cases
exist, so the real side stays at 8 and n is the synthetic set's size; each width is the median over random draws
of n cases from a pool of 30, since which 5 cases one draws moves a single interval more than n does. The KID
interval narrows at every step; the FD interval narrows from 5 to 20 but plateaus from 10, where the fixed real
side dominates it (the report's warning says how many cases each figure rests on).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from SyntheticImagingLib.checks.base import PROFILES
from SyntheticImagingLib.checks.encoder import EncoderConfig, train_encoder
from SyntheticImagingLib.checks.prepare import prepare_cases
from SyntheticImagingLib.checks.small_sample import fidelity_with_cis
from SyntheticImagingLib.generators import create_generator
from SyntheticImagingLib.io.datasets import load_dataset
from SyntheticImagingLib.preprocessing import resample_case

pytestmark = pytest.mark.slow

PROFILE = dataclasses.replace(PROFILES["quick"], name="quick-kid", encoder_steps=60)


def test_kid_fd_intervals_narrow_with_n_and_warn_at_small_n(shared_data):
    torch.set_num_threads(2)
    ds = load_dataset(shared_data / "brats2018", layout="brats")
    train = ds.subset(ds.case_ids[:8])
    fitted = create_generator("label-to-image", task="brain-tumor-mri").fit(
        [resample_case(c, (2.0, 2.0, 2.0)) for c in train])
    synthetic = prepare_cases(list(fitted.synthesize(30, seed=0)), PROFILE)
    real = prepare_cases(train, PROFILE)
    encoder = train_encoder(real, config=EncoderConfig.for_profile(PROFILE), seed=0, device="cpu")
    real_emb, syn_emb = encoder.embed(real), encoder.embed(synthetic)

    widths, warnings = {}, {}
    rng = np.random.default_rng(0)
    for n in (5, 10, 20):
        draws = []
        for d in range(7):
            out = fidelity_with_cis(real_emb, syn_emb[rng.choice(len(syn_emb), n, replace=False)], n_boot=200, seed=d)
            assert out["n_real"] == 8 and out["n_synthetic"] == n
            assert out["kid_lo"] <= out["kid_hi"] and out["fd_lo"] <= out["fd"] <= out["fd_hi"]
            draws.append((out["kid_hi"] - out["kid_lo"], out["fd_hi"] - out["fd_lo"]))
            warnings.setdefault(n, out["warning"])
        widths[n] = np.median(np.asarray(draws), axis=0)
        print(f"n={n}: median CI width KID {widths[n][0]:.3f}, FD {widths[n][1]:.2f}; warning: {warnings[n][:90]!r}")
    assert widths[5][0] > widths[10][0] > widths[20][0], widths  # KID
    # FD: narrower from 5 to 20; from 10 on the fixed 8-case real side dominates its interval (a plateau)
    assert widths[5][1] > widths[20][1] and widths[20][1] <= 1.1 * widths[10][1], widths
    assert warnings[5] and "5 synthetic" in warnings[5]
