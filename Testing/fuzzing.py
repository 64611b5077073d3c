"""Fuzz targets over the readers and the CLI, shared by the hypothesis tests and the long fuzz benchmark.

Each target takes fuzzed bytes/text/arguments and must end in a result or one of the project's own errors
(:class:`SyntheticImagingError`, or argparse's ``SystemExit`` for CLI usage errors); anything else is a bug.
"""

from __future__ import annotations

import contextlib
import io
import json
import random
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from SyntheticImagingLib.cases import Case, Geometry
from SyntheticImagingLib.errors import SyntheticImagingError
from SyntheticImagingLib.io.images import read_image, write_image

__all__ = ["Seeds", "make_seeds", "mutate", "TARGETS", "run_target", "UnexpectedError"]


class UnexpectedError(AssertionError):
    """A fuzzed input ended in an exception that is not the project's own."""


class Seeds:
    """Small valid files to mutate (one per format), made once in a temporary folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        rng = np.random.default_rng(0)
        array = rng.normal(100, 20, (6, 7, 8)).astype(np.float32)
        geometry = Geometry((1.0, 1.2, 2.0), (3.0, -4.0, 5.0))
        self.images: dict[str, bytes] = {}
        for suffix in ("nii", "nii.gz", "nrrd", "mha"):
            path = write_image(folder / f"seed.{suffix}", array, geometry, compress=suffix == "nii.gz")
            self.images[suffix] = path.read_bytes()
        from SyntheticImagingLib.export import export_dicom_study

        case = Case(case_id="seed", channels={"CT": rng.normal(40, 10, (3, 8, 8))}, geometry=geometry,
                    modality="CT", lesion_kind="hemorrhage", label=np.zeros((3, 8, 8), np.int16))
        study = export_dicom_study(case, folder / "dicom", patient_prefix="FUZZ")
        self.dicom = sorted(p.read_bytes() for p in study.rglob("*.dcm") if "SEG" not in str(p.parent))
        self.dataset_json = json.dumps({"training": [{"image": "case/img.nii", "label": "case/label.nii"}],
                                        "labels": {"0": "background", "1": "tumor"}})
        import torch

        from SyntheticImagingLib.training.checkpoints import save_checkpoint

        self.checkpoint = save_checkpoint(folder / "seed.pt", {
            "format": "synthetic-imaging-checkpoint/1", "step": 3,
            "modules": {"generator": {"w": torch.arange(12, dtype=torch.float32).reshape(3, 4)}},
            "history": [{"step": 1, "loss_g": 0.5}]}).read_bytes()
        (folder / "case").mkdir(exist_ok=True)
        (folder / "case" / "img.nii").write_bytes(self.images["nii"])
        (folder / "case" / "label.nii").write_bytes(self.images["nii"])


def make_seeds() -> Seeds:
    """Seeds in a fresh temporary folder (kept for the process lifetime)."""
    return Seeds(Path(tempfile.mkdtemp(prefix="si-fuzz-")))


def mutate(data: bytes, rnd: random.Random) -> bytes:
    """One random mutation: flip bytes, truncate, insert, or overwrite a header field with extreme values."""
    b = bytearray(data)
    kind = rnd.randrange(5)
    if kind == 0 and b:
        for _ in range(rnd.randint(1, 8)):
            b[rnd.randrange(len(b))] = rnd.randrange(256)
    elif kind == 1:
        b = b[: rnd.randrange(len(b) + 1)]
    elif kind == 2:
        pos = rnd.randrange(len(b) + 1)
        b[pos:pos] = bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 32)))
    elif kind == 3 and len(b) > 8:
        pos = rnd.randrange(min(len(b) - 4, 600))
        extremes = [b"\xff\xff\xff\x7f", b"\x00\x00\x00\x80", b"\x00\x00\x00\x00", b"\xff\xff\xff\xff"]
        b[pos:pos + 4] = rnd.choice(extremes)
    else:  # text headers: replace a number
        text = bytes(b[:2000])
        digits = [i for i, c in enumerate(text) if chr(c).isdigit()]
        if digits:
            i = rnd.choice(digits)
            b[i:i + 1] = rnd.choice([b"999999999", b"-1", b"0", b"nan", b"1e308"])
    return bytes(b)


def _expect_own_errors(fn: Callable[[], object]) -> str:
    try:
        fn()
        return "ok"
    except SyntheticImagingError:
        return "error"
    except Exception as err:  # noqa: BLE001 - the point of fuzzing: any other exception is a finding
        raise UnexpectedError(f"{type(err).__module__}.{type(err).__name__}: {err}") from err


def target_image(seeds: Seeds, data: bytes, suffix: str) -> str:
    path = seeds.folder / f"fuzz.{suffix}"
    path.write_bytes(data)
    return _expect_own_errors(lambda: read_image(path, max_voxels=10**7))


def target_dicom(seeds: Seeds, data: bytes, index: int) -> str:
    from SyntheticImagingLib.io.dicom import read_dicom_case

    folder = Path(tempfile.mkdtemp(dir=seeds.folder))
    for i, blob in enumerate(seeds.dicom):
        (folder / f"{i}.dcm").write_bytes(data if i == index % len(seeds.dicom) else blob)
    return _expect_own_errors(lambda: read_dicom_case(folder))


def target_dataset_json(seeds: Seeds, text: str) -> str:
    from SyntheticImagingLib.io.datasets import load_dataset

    (seeds.folder / "dataset.json").write_text(text, errors="replace")

    def load() -> None:
        ds = load_dataset(seeds.folder / "dataset.json")
        for case in ds:
            case.validate()

    return _expect_own_errors(load)


def target_card(seeds: Seeds, text: str) -> str:
    from SyntheticImagingLib.generators import load_generator

    folder = Path(tempfile.mkdtemp(dir=seeds.folder))
    (folder / "model_card.json").write_text(text, errors="replace")
    return _expect_own_errors(lambda: load_generator(folder))


def target_checkpoint(seeds: Seeds, data: bytes) -> str:
    from SyntheticImagingLib.training.checkpoints import load_checkpoint

    path = seeds.folder / "fuzz.pt"
    path.write_bytes(data)
    return _expect_own_errors(lambda: load_checkpoint(path))


CLI_VOCABULARY = ["synthesize", "info", "train", "evaluate", "export-dicom", "--generator", "lesion-insertion",
                  "label-to-image", "gan3d", "diffusion", "nope", "--data", "--out", "--n", "-1", "0", "3", "x",
                  "--lesion-volume", "10:5", "-3", "abc", "1e9", "--location", "1,2", "1,2,3", "--task",
                  "head-hemorrhage-ct", "brain-tumor-mri", "--subtypes", "subdural,nope", "--side", "up",
                  "--shape-variety", "7", "--steps", "--checks", "utility,nope", "--profile", "--input",
                  "--progress", "json", "bar", "--seed", "--real-train", "--real-test", "--synthetic", ""]


CLI_REQUIRED = {"synthesize": ["--generator", "--out", "--data", "--n", "--lesion-volume"], "info": ["path"],
                "train": ["--data", "--task", "--generator", "--out", "--steps"],
                "evaluate": ["--real-train", "--real-test", "--synthetic", "--out", "--checks"],
                "export-dicom": ["--input", "--out"]}


def target_cli(seeds: Seeds, argv: list[str]) -> str:
    from SyntheticImagingLib.cli import main

    # every path argument points into the fuzz folder, at nothing: no real job can start
    fixed = []
    for i, a in enumerate(argv):
        fixed.append(str(seeds.folder / "missing" / a) if i and argv[i - 1] in ("--data", "--out", "--input",
                                                                                   "--real-train", "--real-test",
                                                                                   "--synthetic") else a)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            code = main(fixed)
    except SystemExit as err:  # argparse usage errors
        if err.code not in (0, 2):
            raise UnexpectedError(f"exit code {err.code} for {fixed}") from err
        return "usage"
    except Exception as err:  # noqa: BLE001
        raise UnexpectedError(f"{type(err).__name__}: {err} for {fixed}") from err
    if code not in (0, 2, 130):
        raise UnexpectedError(f"exit code {code} for {fixed}")
    return "ok" if code == 0 else "error"


TARGETS = {"image": target_image, "dicom": target_dicom, "dataset_json": target_dataset_json, "card": target_card,
           "checkpoint": target_checkpoint, "cli": target_cli}


def run_target(seeds: Seeds, name: str, rnd: random.Random) -> str:
    """One random input for target ``name`` (mutation-based); returns the outcome kind."""
    if name == "image":
        suffix = rnd.choice(list(seeds.images))
        return target_image(seeds, mutate(seeds.images[suffix], rnd), suffix)
    if name == "dicom":
        i = rnd.randrange(len(seeds.dicom))
        return target_dicom(seeds, mutate(seeds.dicom[i], rnd), i)
    if name == "dataset_json":
        return target_dataset_json(seeds, mutate(seeds.dataset_json.encode(), rnd).decode("utf-8", "replace"))
    if name == "checkpoint":
        return target_checkpoint(seeds, mutate(seeds.checkpoint, rnd))
    if name == "card":
        card = json.dumps({"family": rnd.choice(["label-to-image", "lesion-insertion", "gan3d", "x"]),
                           "family_version": rnd.choice(["1", "2", None]), "task": rnd.choice(["brain-tumor-mri",
                                                                                               "x", 3]),
                           "config": rnd.choice([{}, {"x": 1}, [], None]), "files": rnd.choice([{}, None, []])})
        return target_card(seeds, mutate(card.encode(), rnd).decode("utf-8", "replace"))
    if rnd.random() < 0.2:  # pure noise
        return target_cli(seeds, [rnd.choice(CLI_VOCABULARY) for _ in range(rnd.randint(0, 8))])
    # mostly well-formed commands with fuzzed values, so the commands themselves run
    command, required = rnd.choice(list(CLI_REQUIRED.items()))
    argv = [command]
    for option in required:
        argv += [option, rnd.choice(CLI_VOCABULARY)] if option.startswith("--") else [rnd.choice(CLI_VOCABULARY)]
    for _ in range(rnd.randint(0, 3)):
        argv += [rnd.choice(CLI_VOCABULARY)]
    return target_cli(seeds, argv)
