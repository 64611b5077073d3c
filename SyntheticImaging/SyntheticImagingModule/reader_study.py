"""Reader study: can a radiologist tell synthetic cases from real ones?

This is the visual Turing test of DuMont Schuette et al. 2021 ("Overcoming barriers to data sharing with medical
image generation", npj Digital Medicine 4:141): a reader sees a blinded, randomised sequence of real and synthetic
cases and answers "real" or "synthetic" for each, with a confidence. An accuracy whose 95% confidence interval
contains 50% means the reader could not tell the two apart.

Pure Python (no Qt, no Slicer): randomisation, scoring (accuracy with an exact Clopper-Pearson interval, exact
two-sided binomial test against guessing) and the CSV of answers. The widget shows the cases and collects answers.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from SyntheticImagingLib.io.atomic import atomic_file

__all__ = ["REAL", "SYNTHETIC", "Trial", "Response", "ReaderScore", "ReaderStudy", "make_trials", "clopper_pearson",
           "binomial_test_two_sided", "CSV_COLUMNS", "readerStudyCase"]

REAL = "real"
SYNTHETIC = "synthetic"
#: Columns of the answers CSV, in order.
CSV_COLUMNS = ("reader", "trial", "blinded_id", "answer", "confidence", "seconds", "truth", "correct", "case_id",
               "seed")


@dataclasses.dataclass(frozen=True)
class Trial:
    """One case shown to the reader.

    Args:
        index: position in the sequence (0-based).
        blinded_id: the only name the reader sees (``"Case 07"``).
        source: ``"real"`` or ``"synthetic"`` (hidden until the study is saved).
        case_id: the case in its dataset (hidden).
    """

    index: int
    blinded_id: str
    source: str
    case_id: str


@dataclasses.dataclass(frozen=True)
class Response:
    """The reader's answer to one trial."""

    trial: Trial
    answer: str
    confidence: int
    seconds: float | None = None

    @property
    def correct(self) -> bool:
        """The answer names the true source."""
        return self.answer == self.trial.source


def _log_pmf(i: int, n: int, p: float) -> float:
    if p <= 0.0:
        return 0.0 if i == 0 else -math.inf
    if p >= 1.0:
        return 0.0 if i == n else -math.inf
    return (math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1)
            + i * math.log(p) + (n - i) * math.log1p(-p))


def _cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p), in log space so large n cannot overflow."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    if k < n // 2:
        return min(1.0, sum(math.exp(_log_pmf(i, n, p)) for i in range(k + 1)))
    return max(0.0, 1.0 - sum(math.exp(_log_pmf(i, n, p)) for i in range(k + 1, n + 1)))  # the shorter sum


def _bisect(f: Any, target: float, increasing: bool) -> float:
    lo, hi = 0.0, 1.0
    for _ in range(100):  # 2^-100: far below float resolution
        mid = (lo + hi) / 2
        if (f(mid) < target) == increasing:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) confidence interval of a binomial proportion ``k / n``.

    Example:
        >>> lo, hi = clopper_pearson(5, 10)
        >>> round(lo, 4), round(hi, 4)
        (0.1871, 0.8129)
    """
    if n <= 0:
        return 0.0, 1.0
    if not 0 <= k <= n:
        raise ValueError(f"k must lie in [0, n], got k={k}, n={n}")
    alpha = 1.0 - confidence
    # lower: P(X >= k | p) = alpha/2 (rises with p); upper: P(X <= k | p) = alpha/2 (falls with p)
    lower = 0.0 if k == 0 else _bisect(lambda p: 1.0 - _cdf(k - 1, n, p), alpha / 2, increasing=True)
    upper = 1.0 if k == n else _bisect(lambda p: _cdf(k, n, p), alpha / 2, increasing=False)
    return lower, upper


def binomial_test_two_sided(k: int, n: int, p: float = 0.5) -> float:
    """Exact two-sided binomial test p-value (outcomes no more likely than the observed one), as
    ``scipy.stats.binomtest``."""
    if n <= 0:
        return 1.0
    observed = _log_pmf(k, n, p)
    total = sum(math.exp(lp) for i in range(n + 1) if (lp := _log_pmf(i, n, p)) <= observed + 1e-7)
    return min(1.0, total)


def make_trials(real_ids: Sequence[str], synthetic_ids: Sequence[str], *, per_class: int | None = None,
                seed: int = 0) -> list[Trial]:
    """A blinded, randomised sequence: ``per_class`` cases drawn from each source (all, if None, capped at the
    smaller source so guessing "synthetic" every time scores 50%), shuffled, named ``Case 01``..."""
    if not real_ids or not synthetic_ids:
        raise ValueError("a reader study needs at least one real and one synthetic case")
    available = min(len(real_ids), len(synthetic_ids))
    count = available if per_class is None else int(per_class)
    if not 1 <= count <= available:
        raise ValueError(f"cases per class must lie in [1, {available}] (the smaller of {len(real_ids)} real and "
                         f"{len(synthetic_ids)} synthetic cases), got {count}")
    rng = random.Random(seed)
    picked = ([(REAL, c) for c in rng.sample(list(real_ids), count)]
              + [(SYNTHETIC, c) for c in rng.sample(list(synthetic_ids), count)])
    rng.shuffle(picked)
    width = max(2, len(str(len(picked))))
    return [Trial(i, f"Case {i + 1:0{width}d}", source, case_id) for i, (source, case_id) in enumerate(picked)]


@dataclasses.dataclass(frozen=True)
class ReaderScore:
    """How well a reader told real from synthetic.

    Args:
        n: answered trials.
        correct: correct answers.
        accuracy: ``correct / n``.
        ci_low, ci_high: exact 95% Clopper-Pearson interval of the accuracy.
        p_value: exact two-sided binomial test of "the reader guesses" (accuracy 0.5).
        synthetic_found, synthetic_total: synthetic cases called synthetic (sensitivity for synthetic images).
        real_found, real_total: real cases called real (specificity).
        mean_confidence: mean stated confidence.
    """

    n: int
    correct: int
    accuracy: float
    ci_low: float
    ci_high: float
    p_value: float
    synthetic_found: int
    synthetic_total: int
    real_found: int
    real_total: int
    mean_confidence: float

    @property
    def indistinguishable(self) -> bool:
        """The 95% interval contains chance (0.5): no evidence the reader can tell them apart."""
        return self.ci_low <= 0.5 <= self.ci_high

    def verdict(self) -> str:
        """One sentence for the user."""
        ci = f"{100 * self.accuracy:.0f}% (95% CI {100 * self.ci_low:.0f}-{100 * self.ci_high:.0f}%, n={self.n})"
        if self.n == 0:
            return "No answers yet."
        if self.indistinguishable:
            return f"Accuracy {ci}: not distinguishable from guessing (p={self.p_value:.3g})."
        if self.accuracy > 0.5:
            return f"Accuracy {ci}: the reader could tell real from synthetic (p={self.p_value:.3g})."
        return (f"Accuracy {ci}: the reader systematically mixed real and synthetic up, so the two differ "
                f"visibly (p={self.p_value:.3g}).")

    def rows(self) -> list[dict[str, Any]]:
        """Metric/value rows (for a table node or a CSV)."""
        def rate(k: int, n: int) -> float:
            return k / n if n else math.nan

        return [
            {"metric": "answers", "value": self.n},
            {"metric": "correct", "value": self.correct},
            {"metric": "accuracy", "value": self.accuracy},
            {"metric": "accuracy 95% CI low (Clopper-Pearson)", "value": self.ci_low},
            {"metric": "accuracy 95% CI high (Clopper-Pearson)", "value": self.ci_high},
            {"metric": "p-value vs guessing (two-sided binomial)", "value": self.p_value},
            {"metric": "synthetic called synthetic", "value": rate(self.synthetic_found, self.synthetic_total)},
            {"metric": "real called real", "value": rate(self.real_found, self.real_total)},
            {"metric": "mean confidence", "value": self.mean_confidence},
        ]


class ReaderStudy:
    """A running study: the sequence, the answers so far, the score and the CSV.

    Args:
        real_ids: case ids of the real dataset that may be shown.
        synthetic_ids: case ids of the synthetic dataset that may be shown.
        per_class: cases shown from each source (default: as many as the smaller source has).
        seed: randomisation seed (recorded in the CSV, so the sequence can be rebuilt).
        reader: the reader's name or code.
        confidence_levels: the confidence scale is ``1..confidence_levels``.

    Example:
        >>> study = ReaderStudy(["r1", "r2"], ["s1", "s2"], seed=1, reader="A")
        >>> while not study.done:
        ...     _ = study.record(study.current.source, confidence=5)   # a perfect reader
        >>> study.score().accuracy
        1.0
    """

    def __init__(self, real_ids: Sequence[str], synthetic_ids: Sequence[str], *, per_class: int | None = None,
                 seed: int = 0, reader: str = "", confidence_levels: int = 5) -> None:
        self.trials = make_trials(real_ids, synthetic_ids, per_class=per_class, seed=seed)
        self.seed = int(seed)
        self.reader = reader
        self.confidence_levels = int(confidence_levels)
        self.responses: list[Response] = []

    @property
    def current(self) -> Trial | None:
        """The trial to answer next (None when all are answered)."""
        return self.trials[len(self.responses)] if not self.done else None

    @property
    def done(self) -> bool:
        """Every trial is answered."""
        return len(self.responses) >= len(self.trials)

    def record(self, answer: str, confidence: int = 3, seconds: float | None = None) -> Response:
        """Answer the current trial with ``"real"`` or ``"synthetic"`` and a confidence in ``1..levels``."""
        if self.done:
            raise ValueError("all trials are answered")
        answer = str(answer).strip().lower()
        if answer not in (REAL, SYNTHETIC):
            raise ValueError(f"answer must be {REAL!r} or {SYNTHETIC!r}, got {answer!r}")
        if not 1 <= int(confidence) <= self.confidence_levels:
            raise ValueError(f"confidence must lie in [1, {self.confidence_levels}], got {confidence}")
        response = Response(self.current, answer, int(confidence), seconds)  # type: ignore[arg-type]
        self.responses.append(response)
        return response

    def score(self) -> ReaderScore:
        """Accuracy with its exact interval and test, over the answers so far."""
        n = len(self.responses)
        correct = sum(r.correct for r in self.responses)
        lo, hi = clopper_pearson(correct, n)
        synthetic = [r for r in self.responses if r.trial.source == SYNTHETIC]
        real = [r for r in self.responses if r.trial.source == REAL]
        return ReaderScore(
            n=n, correct=correct, accuracy=correct / n if n else math.nan, ci_low=lo, ci_high=hi,
            p_value=binomial_test_two_sided(correct, n), synthetic_found=sum(r.correct for r in synthetic),
            synthetic_total=len(synthetic), real_found=sum(r.correct for r in real), real_total=len(real),
            mean_confidence=sum(r.confidence for r in self.responses) / n if n else math.nan)

    def rows(self) -> list[dict[str, Any]]:
        """One row per answer, with the truth revealed (the CSV content)."""
        return [{"reader": self.reader, "trial": r.trial.index + 1, "blinded_id": r.trial.blinded_id,
                 "answer": r.answer, "confidence": r.confidence,
                 "seconds": "" if r.seconds is None else round(r.seconds, 2), "truth": r.trial.source,
                 "correct": int(r.correct), "case_id": r.trial.case_id, "seed": self.seed} for r in self.responses]

    def write_csv(self, path: str | os.PathLike[str]) -> Path:
        """Write the answers (one row per trial, truth revealed) atomically; returns the path."""
        path = Path(path)
        with atomic_file(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=list(CSV_COLUMNS))
            writer.writeheader()
            writer.writerows(self.rows())
        return path


def readerStudyCase(dataset: str | os.PathLike[str], caseId: str, like: Any | None = None) -> Any:
    """A case for the reader study, on the grid of ``like`` (a synthetic case) so resolution and field of view
    do not give the answer away: resampled to its spacing, cropped or padded around the head to its shape.

    Reads and resamples files only (no scene): the panel runs it in a worker thread."""
    from SyntheticImagingLib.io import load_dataset
    from SyntheticImagingLib.preprocessing import crop_or_pad, resample_case

    case = load_dataset(dataset).subset([caseId])[0]
    if like is None or (case.shape == like.shape and not case.geometry.differences(like.geometry)):
        return case
    return crop_or_pad(resample_case(case, like.geometry.spacing), like.shape)
