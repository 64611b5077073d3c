"""``evaluate``: run the checks of a synthetic set against real train/test cases and write one report.

The real test cases must be disjoint from the real training cases by case id (a split by case, so no test
patient leaks into training). Each set is prepared once (``checks.prepare``) and shared by all checks; with a
multi-label real training set every set is mapped onto its label table (a set whose labels do not match is
refused before any check runs, with both tables named); the
checks share expensive models through one ``context.cache``. Output goes to a temporary folder renamed to
``out_dir`` at the end, so a report folder is complete or absent. A check that fails is recorded as failed
(with its error) and the others still run; the report's ``status`` is then ``incomplete``. On CPU the checks
run with :func:`~.segmenter.default_cpu_threads` torch threads (half the cores this process may use).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import time
import traceback
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..cases import Case
from ..errors import CancelledError, InputError
from ..io.atomic import atomic_dir
from ..io.datasets import Dataset
from ..progress import ProgressCallback, Reporter, as_reporter
from .base import PROFILES, CheckContext, CheckResult, Profile, available_checks, get_check
from .prepare import prepare_cases, shared_label_table
from .report import write_report
from .segmenter import cpu_threads, default_cpu_threads, resolve_device
from .utility import kfold_splits

__all__ = ["evaluate", "describe_set", "resolve_profile", "DEFAULT_CHECKS", "PLANNED_CHECKS"]

#: The checks run when none are named.
DEFAULT_CHECKS = ("utility", "fidelity", "privacy")
#: Check names the project defines; one that is not registered in this installation is skipped, not an error.
PLANNED_CHECKS = frozenset(DEFAULT_CHECKS)


def resolve_profile(profile: str | Profile) -> Profile:
    """A :class:`Profile` from its name (``quick``/``full``) or as given.

    Args:
        profile: a name from ``PROFILES`` or a Profile.
    """
    if isinstance(profile, Profile):
        return profile
    if profile not in PROFILES:
        raise InputError(f"unknown profile {profile!r}", fix=f"use one of {sorted(PROFILES)}")
    return PROFILES[profile]


def _ids(cases: Sequence[Case] | Dataset) -> list[str]:
    return cases.case_ids if isinstance(cases, Dataset) else [c.case_id for c in cases]


def _check_names(checks: str | Iterable[str]) -> list[str]:
    names = [c.strip() for c in checks.split(",")] if isinstance(checks, str) else [str(c).strip() for c in checks]
    names = list(dict.fromkeys(n for n in names if n))
    if not names:
        raise InputError("no check to run", fix=f"name one or more of {sorted(PLANNED_CHECKS)}")
    return names


def describe_set(original: Sequence[Case] | Dataset, prepared: Sequence[Case]) -> dict[str, Any]:
    """Fingerprint of one data set for the report: counts, ids hash, content hash, spacing, modality...

    Args:
        original: the set as given (a Dataset adds its folder and file fingerprint).
        prepared: the same cases after ``prepare_cases`` (they carry their source spacing and fingerprint).
    """
    ids = [c.case_id for c in prepared]
    meta = [c.metadata.get("prepared", {}) for c in prepared]
    content = hashlib.blake2b(digest_size=8)
    for m in meta:
        content.update(str(m.get("source_fingerprint", "")).encode())
    volumes = [c.lesion_volume_ml() for c in prepared if c.label is not None]
    out: dict[str, Any] = {
        "cases": len(prepared),
        "case_ids_sha256": hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()[:16],
        "content_fingerprint": content.hexdigest(),
        "modality": sorted({c.modality.value for c in prepared}),
        "lesion_kind": sorted({c.lesion_kind.value for c in prepared}),
        "channels": sorted({",".join(c.channel_names) for c in prepared}),
        "source_spacing": sorted({tuple(round(s, 4) for s in m.get("source_spacing", ())) for m in meta}),
        "source_shape": sorted({tuple(m.get("source_shape", ())) for m in meta}),
        "source_labels": sorted({str(m.get("source_labels")) for m in meta}),
        "labels": prepared[0].label_table.to_dict() if prepared else {},
        "labelled": sum(c.label is not None for c in prepared),
        "lesion_volume_ml_on_grid": {"mean": float(np.mean(volumes)) if volumes else None,
                                     "min": float(np.min(volumes)) if volumes else None,
                                     "max": float(np.max(volumes)) if volumes else None},
        "case_ids": ids,
    }
    if isinstance(original, Dataset):
        out["root"] = str(original.root) if original.root else None
        out["dataset_fingerprint"] = original.fingerprint()
        for key in ("generator", "synthetic", "created"):
            if key in original.info:
                out[key] = original.info[key]
    return out


def evaluate(real_train: Sequence[Case] | Dataset, real_test: Sequence[Case] | Dataset | None,
             synthetic: Sequence[Case] | Dataset, *, out_dir: str | os.PathLike[str],
             checks: str | Iterable[str] = DEFAULT_CHECKS, profile: str | Profile = "quick", device: str = "auto",
             seed: int = 0, progress: Reporter | ProgressCallback | None = None, overwrite: bool = False,
             cache_dir: str | os.PathLike[str] | None = None, folds: int | None = None) -> dict[str, Any]:
    """Run checks of ``synthetic`` against real cases and write the report folder.

    Args:
        real_train: real cases the synthetic set was made from (Dataset or list of Cases).
        real_test: real held-out cases, disjoint from ``real_train`` by case id (e.g. an external set); None:
            k-fold by case over ``real_train`` (the default protocol: every real case is tested once by
            segmenters that never saw it; see :func:`.utility.kfold_splits`). Checks that need one holdout
            (fidelity, privacy, adherence baselines) then use the last fold's cases.
        synthetic: the synthetic cases.
        out_dir: report folder to create (``report.json``, ``report.html``, ``tables/``, one folder per check).
        checks: check names in run order (a list or ``"utility,fidelity,privacy"``); planned checks that are not
            registered in this installation are skipped with a message.
        profile: ``quick`` (CI-sized), ``full`` (paper-sized, GPU) or a :class:`Profile`.
        device: ``auto``, ``cpu`` or ``cuda``.
        seed: base seed of every check.
        progress: progress + cancel (stages ``prepare:*``, ``<check>:*``).
        overwrite: replace an existing non-empty ``out_dir``.
        cache_dir: folder for prepared cases and trained segmenters, reused across evaluations (None: no cache):
            evaluating several synthetic sets against the same real cases trains the real-only segmenters once.
        folds: k of the k-fold protocol (None: the profile's).

    Returns:
        The report (the content of ``report.json``): ``status``, ``settings``, ``data``, ``versions``, ``checks``.

    Raises:
        InputError: a case id in both real sets, an empty set, an unknown check or profile, CUDA asked for but
            absent.
        LabelError: a set whose labels do not match the real training set's (multi-label data).
        CancelledError: cancelled through ``progress`` (nothing is written).
    """
    t_start = time.monotonic()
    prof = resolve_profile(profile)
    if folds is not None:
        prof = dataclasses.replace(prof, folds=int(folds))
    names = _check_names(checks)
    dev = resolve_device(device)
    kfold = real_test is None
    if real_test is None:
        real_test = []
    for set_name, cases in (("real_train", real_train), ("real_test", real_test), ("synthetic", synthetic)):
        if kfold and set_name == "real_test":
            continue
        if len(cases) == 0:
            raise InputError(f"{set_name} has no cases", fix="give a dataset folder or dataset.json with cases")
    overlap = sorted(set(_ids(real_train)) & set(_ids(real_test)))
    if overlap:
        raise InputError(f"{len(overlap)} case id(s) are in both real_train and real_test: {overlap[:10]}",
                         fix="split the real data by case so that no test case is used for training")
    registered = set(available_checks())
    unknown = [n for n in names if n not in registered and n not in PLANNED_CHECKS]
    if unknown:
        raise InputError(f"unknown check(s) {unknown}", fix=f"use one or more of {sorted(registered | PLANNED_CHECKS)}")
    reporter = as_reporter(progress)
    skipped = {n: f"check {n!r} is not available in this installation (registered: {sorted(registered)}); skipped"
               for n in names if n not in registered}
    for i, n in enumerate(skipped):
        reporter.report("evaluate", i, None, skipped[n])

    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        t0 = time.monotonic()
        sets = {"real_train": real_train, "real_test": real_test, "synthetic": synthetic}
        if kfold:
            del sets["real_test"]
        labels = shared_label_table(real_train)
        prepared = {k: prepare_cases(v, prof, cache_dir=cache_dir, progress=reporter, stage=f"prepare:{k}",
                                     labels=labels)
                    for k, v in sets.items()}
        prepare_s = time.monotonic() - t0
        data = {k: describe_set(sets[k], prepared[k]) for k in sets}
        holdout_train, holdout_test = prepared["real_train"], prepared.get("real_test", [])
        if kfold:
            splits = kfold_splits(prepared["real_train"], prepared["synthetic"], folds=prof.folds, seed=seed)
            holdout_train, holdout_test = splits[-1][0], splits[-1][1]
            data["real_test"] = {"cases": 0, "protocol": f"{len(splits)}-fold by case over real_train",
                                 "holdout_for_other_checks": [c.case_id for c in holdout_test],
                                 "note": "fidelity, privacy and adherence baselines use the last fold as holdout; "
                                         "a generator trained on every real case has seen it: give --real-test with "
                                         "cases it never saw for clean privacy baselines"}
        cache: dict[str, Any] = {}
        results: list[CheckResult] = []
        failed: dict[str, str] = {}
        seconds: dict[str, float] = {}
        for name in names:
            if name in skipped:
                continue
            context = CheckContext(profile=prof, out_dir=tmp / name, progress=reporter.child(name), device=str(dev),
                                   seed=seed, cache=cache, cache_dir=Path(cache_dir) if cache_dir else None)
            t0 = time.monotonic()
            try:
                # on CPU every check runs with default_cpu_threads(): oversubscribed OpenMP threads on shared
                # cores make small 3D convolutions several times slower than fewer threads
                with cpu_threads(None, dev):
                    if name == "utility":  # k-fold inside the check when no real test set is given
                        result = get_check(name).run(real_train=prepared["real_train"],
                                                     real_test=prepared.get("real_test", []),
                                                     synthetic=prepared["synthetic"], context=context)
                    else:
                        result = get_check(name).run(real_train=holdout_train, real_test=holdout_test,
                                                     synthetic=prepared["synthetic"], context=context)
            except (CancelledError, KeyboardInterrupt, MemoryError):
                raise
            except Exception as err:  # noqa: BLE001  (one broken check must not lose the others' results)
                failed[name] = f"{type(err).__name__}: {err}"
                cache.setdefault("errors", {})[name] = traceback.format_exc()
                reporter.report("evaluate", 0, None, f"check {name!r} failed: {failed[name]}")
            else:
                results.append(result)
            seconds[name] = time.monotonic() - t0
        settings = {"profile": prof, "checks": names, "seed": seed, "device_requested": device,
                    "device": str(dev), "cpu_threads": default_cpu_threads() if dev.type == "cpu" else None,
                    "cache_dir": str(cache_dir) if cache_dir else None,
                    "out_dir": str(Path(out_dir)),
                    "timing_s": {"prepare": prepare_s, "checks": seconds, "total": time.monotonic() - t_start}}
        report = write_report(tmp, results=results, settings=settings, data=data, requested=names, skipped=skipped,
                              failed=failed, seconds=seconds)
        if failed:
            for name, tb in cache.get("errors", {}).items():
                (tmp / name).mkdir(exist_ok=True)
                (tmp / name / "error.txt").write_text(tb)
    return report
