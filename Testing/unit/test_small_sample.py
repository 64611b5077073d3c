"""KID and the small-sample CIs on Gaussian embeddings: unbiased near 0 for one distribution, positive for a
shifted one, intervals that narrow as n grows, and a warning at small n."""

from __future__ import annotations

import numpy as np
import pytest

from SyntheticImagingLib.checks.small_sample import bootstrap_ci, fidelity_with_cis, kid, wilson_ci

D = 8


def gaussians(n: int, seed: int, shift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, D)), rng.normal(size=(n, D)) + shift


def test_kid_unbiased_for_same_distribution():
    # the unbiased estimator averages to ~0 even at n = 10, where the biased MMD / FD are clearly positive
    values = [kid(*gaussians(10, s)) for s in range(200)]
    # mean within 4 standard errors of 0
    assert abs(np.mean(values)) < 4 * np.std(values) / np.sqrt(len(values))
    assert min(values) < 0 < max(values)


def test_kid_positive_for_shifted_distribution():
    same = kid(*gaussians(100, 0))
    shifted = kid(*gaussians(100, 0, shift=1.0))
    assert shifted > 1.0 and abs(same) < 0.2 * shifted


def test_kid_needs_two_per_set():
    x, y = gaussians(1, 0)
    assert np.isnan(kid(x, y))


def test_cis_narrow_as_n_grows():
    widths = {}
    for n in (5, 10, 20):
        w = []
        for s in range(3):  # median over a few draws: one draw's width is itself noisy at n = 5
            out = fidelity_with_cis(*gaussians(n, s, shift=0.5), n_boot=200, seed=s)
            assert out["n_real"] == n and out["n_synthetic"] == n
            assert out["kid_lo"] <= out["kid_hi"]
            assert out["fd_lo"] <= out["fd_hi"] and 0 <= out["precision_lo"] <= out["precision_hi"] <= 1
            w.append((out["kid_hi"] - out["kid_lo"], out["fd_hi"] - out["fd_lo"],
                      out["precision_hi"] - out["precision_lo"]))
        widths[n] = np.median(np.asarray(w), axis=0)
    for i in range(2):  # KID, FD
        assert widths[5][i] > widths[10][i] > widths[20][i], widths
    # a Wilson width also depends on the share itself (widest at 0.5), so only the ends are compared
    assert widths[5][2] > widths[20][2], widths


def test_warning_at_small_n_not_at_large_n():
    small = fidelity_with_cis(*gaussians(5, 0, shift=0.5), n_boot=200, seed=0)
    assert small["warning"] and "5 real / 5 synthetic" in small["warning"]
    large = fidelity_with_cis(*gaussians(300, 0, shift=1.0), n_boot=100, seed=0)
    assert large["warning"] == ""
    assert large["kid_lo"] > 0  # a real difference is separated from 0 with enough cases


def test_bootstrap_ci_of_mean_difference():
    x, y = gaussians(400, 1, shift=2.0)
    ci = bootstrap_ci(lambda a, b: float(b.mean() - a.mean()), x, y, n_boot=300, seed=0)
    assert ci["lo"] < 2.0 < ci["hi"] and ci["n_boot"] == 300


def test_wilson_ci():
    lo, hi = wilson_ci(0, 10)
    assert lo == 0.0 and 0.2 < hi < 0.35
    assert wilson_ci(5, 10)[0] == pytest.approx(1 - wilson_ci(5, 10)[1])
    assert all(np.isnan(wilson_ci(0, 0)))


def test_shape_mismatch_is_an_input_error():
    from SyntheticImagingLib.errors import InputError

    with pytest.raises(InputError):
        fidelity_with_cis(np.zeros((4, 3)), np.zeros((4, 2)))
