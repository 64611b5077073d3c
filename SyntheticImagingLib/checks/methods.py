"""A Methods paragraph per check, filled in from the report: what was trained, on what, how the CI is made.

Written to be pasted into a paper's methods section (and cited with the library's version from the report), so
each paragraph names the data, the model and its training budget, the statistic and how its uncertainty was
estimated. Pure: reads the report only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .report_model import EvaluationReport

__all__ = ["methods_text", "METHODS_CHECKS"]

#: Checks with a Methods paragraph.
METHODS_CHECKS = ("utility", "adherence", "privacy", "fidelity")


def _segmenter(details: Mapping[str, Any]) -> str:
    seg = details.get("segmenter") or {}
    cfg = seg.get("config", seg) if isinstance(seg, Mapping) else {}
    arch = {"unet": "3D U-Net (MONAI UNet)", "segresnet": "3D SegResNet (MONAI)"}.get(str(cfg.get("architecture")),
                                                                                    "3D segmenter (MONAI)")
    feats = cfg.get("features")
    return (f"a {arch}" + (f" with {list(feats)} feature maps" if feats else "")
            + (f", trained for {cfg['steps']} Adam steps (batch {cfg.get('batch_size')}, Dice + cross-entropy loss)"
               if cfg.get("steps") else ""))


def _per_label(details: Mapping[str, Any]) -> str:
    labels, regions = details.get("labels") or {}, details.get("regions") or {}
    if not labels:
        return ""
    text = (f" The segmenter was trained on the {len(labels)} labels ({', '.join(labels)}; one output class each, "
            "softmax Dice + cross-entropy); Dice and HD95 are also reported per label")
    if regions:
        text += f" and per BraTS region ({', '.join(regions)})"
    return text + (" with the same seeds and intervals (a label absent from both prediction and reference scores "
                   "Dice 1); the headline Dice is the whole lesion.")


def _profile(report: EvaluationReport) -> Mapping[str, Any]:
    prof = report.settings.get("profile")
    return prof if isinstance(prof, Mapping) else {}  # a bare profile name says nothing about the grid


def _grid(report: EvaluationReport) -> str:
    prof = _profile(report)
    spacing, shape = prof.get("spacing"), prof.get("shape")
    if not spacing or not shape:
        return "the check grid"
    return f"a {'x'.join(str(s) for s in shape)} grid of {'x'.join(f'{s:g}' for s in spacing)} mm voxels"


def methods_text(report: EvaluationReport, check: str) -> str:
    """The Methods paragraph of ``check`` (empty when it did not run or has none).

    Args:
        report: the evaluation report.
        check: ``utility``, ``adherence``, ``privacy`` or ``fidelity``.
    """
    result = report.result(check)
    if result is None:
        return ""
    s, d = result.summary, result.details
    prof = _profile(report)
    seed = report.settings.get("seed")
    grid = _grid(report)
    if check == "utility":
        sizes = prof.get("real_sizes")
        return (f"Utility. All cases were resampled to {grid}. {_segmenter(d).capitalize()} was trained under "
                f"several regimes and always tested on the {s.get('real_test_cases')} real held-out cases: on the "
                f"{s.get('real_train_cases')} real training cases (TRTR), on the {s.get('synthetic_cases')} synthetic "
                "cases alone (TSTR), on real plus synthetic cases, and on nested random subsets of "
                f"{sizes or 'several sizes of'} real cases with and without the synthetic set. Each regime was "
                f"repeated with {s.get('seeds')} seeds (base seed {seed}). The reported Dice is the mean over seeds of "
                "the per-seed mean over test cases, with a 95 % CI from Student's t over seeds; regimes are compared "
                "on the same (seed, test case) pairs by paired bootstrap (95 % CI of the mean difference, two-sided "
                "p) and Wilcoxon signed-rank. The real-equivalent size places the TSTR Dice on the monotone "
                "real-only learning curve (linear interpolation), with a 95 % CI from a bootstrap over seeds (seeds "
                "resampled, curve and TSTR mean recomputed, re-placed)." + _per_label(d))
    if check == "adherence":
        return ("Label adherence. The seed-0 TRTR segmenter of the utility check (trained on real cases only) "
                "segmented every synthetic image; its prediction was compared with the synthetic label (Dice, "
                "lesion-wise detection, volume error). The same segmenter on the real held-out cases calibrates "
                f"the pass threshold ({s.get('threshold_rule', 'a low percentile of real Dice minus a margin')}). "
                "The set passes unless the share of cases below the threshold exceeds the allowed share beyond "
                "chance (one-sided binomial test, 5 %) or its mean Dice falls clearly below the real mean "
                "(one-sided Mann-Whitney U reported). Lesion intensities are compared with the real range "
                f"({s.get('intensity_feature', 'intensity feature')}).")
    if check == "privacy":
        spaces = report.privacy_spaces()
        return ("Privacy. Every synthetic case was compared with the real training cases in "
                f"{' and '.join(spaces) or 'each'} space ('encoder': embeddings of a self-supervised 3D encoder "
                "trained on the real training cases only; 'voxel': canonical pose, about 8 mm blocks, z-scored, "
                "distance sqrt(2(1 - NCC))). The real held-out cases, never seen by the generator, give every "
                "baseline: distance to the closest training record (DCR) of holdout cases, the overfitting ratio "
                "(share of synthetic cases closer to training than to holdout; 0.5 when independent; permutation "
                "test) and the memorization rate (DCR under a threshold calibrated on augmented copies of the "
                "training cases, the "
                f"{(d.get('thresholds') or {}).get(spaces[0], {}).get('quantile', 95) if spaces else 95:g}th "
                "percentile; Fisher's exact test against the rate of distinct real cases). The set is flagged when "
                f"any of these tests rejects after Holm correction at alpha = {s.get('alpha')}. Identifiability, "
                "1-NN two-sample accuracy, membership-inference AUC and lesion-mask novelty (max Dice against "
                "every aligned training mask) are reported beside.")
    if check == "fidelity":
        enc = d.get("encoder") or {}
        return ("Fidelity. A self-supervised 3D encoder "
                f"({enc.get('network', 'MONAI ResNet')}, {enc.get('dim', '?')}-d embeddings) was trained on the "
                f"{s.get('n_train')} real training cases only. Synthetic and real held-out cases were embedded; "
                "the Fréchet distance (Ledoit-Wolf shrunk covariances) and KID (unbiased squared MMD, cubic "
                "polynomial kernel; 95 % percentile-bootstrap CI, sets resampled independently) to the real "
                "training set are reported beside the same numbers for the real held-out cases (the real-vs-real "
                "baseline), with k-NN precision/recall (Kynkäänniemi et al. 2019), within-set MS-SSIM diversity "
                "and Wasserstein-1 distances of intensities per label.")
    return ""
