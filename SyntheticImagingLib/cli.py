"""The command line: ``synthetic-imaging`` (or ``python -m SyntheticImagingLib``).

Every command reports progress as bars (default), as JSON lines (``--progress json``, one object per line,
read by the Slicer module; the last line is ``{"type": "result", ...}`` or ``{"type": "error", ...}``) or not at
all. Without ``--progress json`` a command ends with a summary for people (:mod:`.cli_text`: tables of cases, the
verdict lines, where the outputs are); ``--json`` prints the result as indented JSON instead. Errors the user
can fix exit with code 2 and one clear message; Ctrl-C (or SIGTERM) cancels cleanly.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from . import __version__
from .errors import CancelledError, InputError, SyntheticImagingError
from .lesions.controls import LesionControls
from .progress import BarRenderer, JsonLinesRenderer, Reporter

__all__ = ["main", "build_parser", "CheckFailedError"]

class CheckFailedError(SyntheticImagingError):
    """A check of an evaluation failed; the others' results are in the report."""


def _volume(text: str) -> float | tuple[float, float]:
    try:
        if ":" in text:
            low, high = text.split(":", 1)
            return float(low), float(high)
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected ML or LOW:HIGH in ml, got {text!r}") from None


def _point(text: str) -> tuple[float, float, float]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"expected X,Y,Z in mm, got {text!r}")
    return values  # type: ignore[return-value]


def _config_item(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key.strip(), json.loads(value)
    except json.JSONDecodeError:
        return key.strip(), value  # a bare word: a string setting


def _add_data_args(p: argparse.ArgumentParser, *, label_map: bool = True) -> None:
    from .io.datasets import LAYOUTS
    from .label_roles import CONVENTIONS

    p.add_argument("--layout", default=None, choices=sorted(LAYOUTS),
                   help="dataset file layout (default auto: channels by file name, the label and a brain mask "
                   "recognised by name; dataset.json of MSD or nnU-Net v2 form)")
    p.add_argument("--labels", default=None, choices=sorted(CONVENTIONS),
                   help="label names for unnamed label files, by convention (e.g. brats2013: 1 necrosis, 2 edema, "
                   "3 non-enhancing tumor, 4 enhancing tumor)")
    if label_map:
        p.add_argument("--label-map", default=None, metavar="ROLE=VALUE,...",
                       help="roles of labels whose names say nothing, e.g. necrosis=1,edema=2,enhancing=4")


def _add_lesion_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("lesion controls")
    g.add_argument("--lesion-count", type=int, default=1, help="lesions per case (default 1)")
    g.add_argument("--lesion-volume", type=_volume, default=None, help="ml, or LOW:HIGH range")
    g.add_argument("--location", type=_point, default=None, help="centre near X,Y,Z (mm, LPS); default random")
    g.add_argument("--side", choices=("any", "left", "right"), default="any")
    g.add_argument("--subregions", action="store_true",
                   help="tumour core + edema labels (presets; a dataset's own label table sets the structure)")
    g.add_argument("--subtypes", default=None,
                   help="hemorrhage subtypes, comma-separated (intraparenchymal,intraventricular,subarachnoid,"
                   "subdural,epidural)")
    g.add_argument("--shape-variety", type=float, default=0.5, help="0 smooth .. 1 irregular")
    g.add_argument("--no-templates", action="store_true", help="do not reuse real lesion masks as shapes")


def _controls(args: argparse.Namespace, kind: str) -> LesionControls:
    kwargs: dict[str, Any] = {"kind": kind, "count": args.lesion_count, "side": args.side,
                              "subregions": args.subregions, "shape_variety": args.shape_variety,
                              "use_templates": not args.no_templates}
    if args.lesion_volume is not None:
        kwargs["volume_ml"] = args.lesion_volume
    if args.location is not None:
        kwargs["location"] = args.location
    if args.subtypes:
        kwargs["subtypes"] = tuple(s.strip() for s in args.subtypes.split(",") if s.strip())
    return LesionControls(**kwargs)


def _cmd_demo(args: argparse.Namespace, reporter: Reporter) -> dict[str, Any]:
    from .demo import run_demo

    return run_demo(args.out, n=args.n, seed=args.seed, overwrite=args.overwrite, checks=not args.skip_checks,
                    progress=reporter)


def _cmd_synthesize(args: argparse.Namespace, reporter: Reporter) -> dict[str, Any]:
    from .api import get_generator, synthesize
    from .generators.inference import InferenceSettings
    from .io.datasets import load_dataset

    inference = InferenceSettings(device=args.device, precision=args.precision, batch_size=args.batch_size,
                                  compile=args.compile, channels_last=args.channels_last,
                                  label_workers=args.label_workers)
    data = load_dataset(args.data, layout=args.layout, labels=args.labels) if args.data else None
    gen = get_generator(args.generator, task=args.task, data=data, progress=reporter, label_map=args.label_map,
                        **dict(args.config or []))
    controls = _controls(args, gen.task.lesion_kind.value)
    out = synthesize(gen, args.n, seed=args.seed, controls=controls, out=args.out, label_format=args.label_format,
                     overwrite=args.overwrite, progress=reporter, inference=inference)
    return {"out": str(out), "cases": args.n, "generator": gen.name, "inference": inference.to_dict()}


def _cmd_pool(args: argparse.Namespace, reporter: Reporter) -> dict[str, Any]:
    from .io.datasets import load_dataset, write_dataset
    from .pooling import pool_shares, pool_synthetic_sets

    names, paths = _named_sets(args.synthetic)  # each set's name prefixes its case ids
    datasets = {name: load_dataset(path) for name, path in zip(names, paths)}
    cases = pool_synthetic_sets(datasets, n=args.n)
    shares = dict(zip(names, pool_shares(len(cases), len(names))))
    info = {"synthetic": True, "generator": {"family": "pooled", "parts": {
        name: {"cases": shares[name], "path": str(path), "generator": datasets[name].info.get("generator")}
        for name, path in zip(names, paths)}}}

    def progress(done: int, case_id: str) -> None:
        reporter.report("pool", done, len(cases), case_id)

    out = write_dataset(cases, args.out, info=info, overwrite=args.overwrite, progress=progress)
    return {"out": str(out), "cases": len(cases), "generator": "pooled (" + ", ".join(
        f"{shares[n]} {n}" for n in names) + ")", "shares": shares}


def _cmd_info(args: argparse.Namespace, reporter: Reporter) -> dict[str, Any]:
    from .api import info

    return info(args.path)


def _cmd_train(args: argparse.Namespace, reporter: Reporter) -> dict[str, Any]:
    from .io.datasets import load_dataset
    from .training import train_generator

    data = load_dataset(args.data, layout=args.layout, labels=args.labels)
    validation: Any = args.validation
    if validation is not None and validation.isdigit():
        validation = int(validation)  # hold out the last N cases
    gen = train_generator(data, task=args.task, family=args.generator, out_dir=args.out, steps=args.steps,
                          batch_size=args.batch_size, device=args.device, resume=args.resume, seed=args.seed,
                          progress=reporter, validation=validation, amp=args.amp,
                          checkpoint_every=args.checkpoint_every, preview_every=args.preview_every,
                          cache_dir=args.cache_dir, layout=args.layout, label_map=args.label_map,
                          **dict(args.config or []))
    return {"out": str(args.out), "generator": gen.name, "training": gen.training}


def _profile(args: argparse.Namespace) -> Any:
    import dataclasses

    from .checks.evaluate import resolve_profile

    profile = resolve_profile(args.profile)
    return dataclasses.replace(profile, folds=args.folds) if args.folds else profile


def _named_sets(given: Sequence[str]) -> tuple[list[str], list[Path]]:
    """Names and paths of several ``--synthetic`` datasets: a set's name is its folder's (the parent of a
    ``dataset.json`` path), made unique."""
    from .checks.ranking import unique_names

    paths = [Path(s) for s in given]
    if len({p.resolve() for p in paths}) < len(paths):
        raise InputError("the same synthetic dataset is given twice", fix="pass each --synthetic dataset once")
    return unique_names((p.parent if p.suffix == ".json" else p).resolve().name or "synthetic" for p in paths), paths


def _cmd_evaluate(args: argparse.Namespace, reporter: Reporter) -> dict[str, Any]:
    from .checks.evaluate import evaluate
    from .io.datasets import load_dataset

    checks = tuple(c.strip() for c in args.checks.split(",") if c.strip())
    real_train = load_dataset(args.real_train, layout=args.layout, labels=args.labels)
    real_test = load_dataset(args.real_test, layout=args.layout, labels=args.labels) if args.real_test else None
    if len(args.synthetic) > 1:
        from .checks.ranking import rank_generators

        names, paths = _named_sets(args.synthetic)
        ranking = rank_generators(real_train, real_test, {n: load_dataset(p) for n, p in zip(names, paths)},
                                  out_dir=args.out, checks=checks, profile=_profile(args), device=args.device,
                                  seed=args.seed, progress=reporter, overwrite=args.overwrite,
                                  cache_dir=args.cache_dir or None)
        incomplete = {n: r["status"] for n, r in ranking["reports"].items() if r["status"] != "complete"}
        if incomplete:
            raise CheckFailedError(f"some evaluations are incomplete: {incomplete}", where=str(args.out),
                                   fix="read each generator's report.json for the failed check's error")
        return {"out": str(args.out), "ranking": [r["generator"] for r in ranking["rows"]]}
    report = evaluate(real_train, real_test, load_dataset(args.synthetic[0]),
                      out_dir=args.out, checks=checks, profile=_profile(args), device=args.device, seed=args.seed,
                      progress=reporter, overwrite=args.overwrite, cache_dir=args.cache_dir or None)
    if report.get("status") != "complete":
        failed = report.get("failed") or report.get("status")
        raise CheckFailedError(f"the evaluation is incomplete: {failed}", where=str(args.out),
                               fix="read report.json for the failed check's error")
    return {"out": str(args.out), "status": report.get("status"), "summary": report.get("summary")}


def _cmd_export_dicom(args: argparse.Namespace, reporter: Reporter) -> dict[str, Any]:
    from .export import export_dicom_dataset
    from .io.datasets import load_dataset

    def progress(done: int, total: int, message: str) -> None:
        reporter.report("export-dicom", done, total, message)

    paths = export_dicom_dataset(list(load_dataset(args.input)), args.out, patient_prefix=args.patient_prefix,
                                 zip_output=args.zip, progress=progress)
    return {"out": str(args.out), "studies": [str(p) for p in paths]}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also used by the docs and the fuzz tests)."""
    parser = argparse.ArgumentParser(prog="synthetic-imaging", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--progress", choices=("bar", "json", "none"), default="bar",
                        help="progress as bars (stderr), JSON lines (stdout) or nothing")
    parser.add_argument("--json", action="store_true", dest="json_result",
                        help="end with the result as JSON (for scripts) instead of a summary for people")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler: Callable[..., dict[str, Any]], help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(handler=handler)
        # also after the command; SUPPRESS keeps a --json given before it
        p.add_argument("--json", action="store_true", dest="json_result", default=argparse.SUPPRESS,
                       help="end with the result as JSON (for scripts) instead of a summary for people")
        return p

    p = command("demo", _cmd_demo, "run the main job on the bundled sample data")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--n", type=int, default=4, help="cases per synthetic set")
    p.add_argument("--skip-checks", action="store_true", help="do not run the utility/fidelity/privacy checks")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true")

    p = command("synthesize", _cmd_synthesize, "synthesize labelled cases")
    p.add_argument("--generator", required=True,
                   help="a trained generator folder, or a training-free family (lesion-insertion, label-to-image)")
    p.add_argument("--data", help="real reference dataset (training-free families)")
    _add_data_args(p)
    p.add_argument("--task", default=None, help="brain-tumor-mri or head-hemorrhage-ct (family names only; default: "
                   "from the data's modality)")
    p.add_argument("--n", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--label-format", choices=("nii.gz", "nrrd", "seg.nrrd"), default="nii.gz")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--config", type=_config_item, action="append", metavar="KEY=JSON",
                   help="training-free family setting, repeatable, e.g. --config background_lesions=keep")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="where trained networks run")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"), default="auto",
                   help="network precision (auto: bf16 where the GPU/CPU computes it natively, else fp32)")
    p.add_argument("--batch-size", type=int, default=None, help="volumes per network call (default 1 CPU, 4 GPU)")
    p.add_argument("--compile", action="store_true", help="torch.compile the networks (slow start, long runs)")
    p.add_argument("--channels-last", action="store_true", help="channels-last 3D memory layout")
    p.add_argument("--label-workers", type=int, default=0,
                   help="processes drawing lesion labels ahead of the network (default 0: one thread)")
    _add_lesion_args(p)

    p = command("pool", _cmd_pool, "pool synthetic sets from several generators into one, an equal share of each")
    p.add_argument("--synthetic", required=True, nargs="+", help="two or more synthetic datasets")
    p.add_argument("--n", type=int, default=None, help="cases in the pooled set (default: the smallest set's size)")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--overwrite", action="store_true")

    p = command("info", _cmd_info, "what a dataset or generator folder holds")
    p.add_argument("path", type=Path)

    p = command("train", _cmd_train, "train a generator on labelled real cases")
    p.add_argument("--data", required=True)
    _add_data_args(p)
    p.add_argument("--task", default=None, choices=("brain-tumor-mri", "head-hemorrhage-ct"),
                   help="the preset whose modality, lesion kind and grid to use (default: from the data's modality); "
                   "channels and labels always come from the data")
    p.add_argument("--generator", required=True, help="family: gan3d or diffusion")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --out")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--validation", default=None, help="held-out dataset folder, or N to hold out the last N cases")
    p.add_argument("--amp", choices=("auto", "bf16", "fp16", "off"), default="auto")
    p.add_argument("--checkpoint-every", type=int, default=None, help="steps between checkpoints (default 100)")
    p.add_argument("--preview-every", type=int, default=0, help="steps between validation previews (0: none)")
    p.add_argument("--cache-dir", default=None, help="preprocessed-data cache (default: user cache; '' for none)")
    p.add_argument("--config", type=_config_item, action="append", metavar="KEY=JSON",
                   help="family setting, repeatable, e.g. --config spacing=[4,4,4] --config architecture=\"spade\"")

    p = command("evaluate", _cmd_evaluate, "utility, fidelity and privacy checks against real cases")
    p.add_argument("--real-train", required=True)
    p.add_argument("--real-test", default=None,
                   help="real held-out cases the generator never saw (e.g. an external set); default: k-fold by case "
                   "over --real-train, every real case tested once")
    p.add_argument("--folds", type=int, default=None, help="k of the k-fold protocol (default 5)")
    p.add_argument("--synthetic", required=True, nargs="+", help="one or more synthetic datasets (ranked)")
    _add_data_args(p, label_map=False)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--checks", default="utility,fidelity,privacy")
    p.add_argument("--profile", choices=("quick", "full"), default="quick")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--cache-dir", default=None,
                   help="folder kept across evaluations: prepared cases and trained segmenters, so evaluating more "
                        "synthetic sets against the same real cases trains the real-only segmenters once")

    p = command("export-dicom", _cmd_export_dicom, "export a synthetic dataset as DICOM studies (image + SEG)")
    p.add_argument("--input", required=True)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--patient-prefix", default="SYNTH")
    p.add_argument("--zip", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 2 user error, 130 cancelled)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    json_out = JsonLinesRenderer() if args.progress == "json" else None
    bars = BarRenderer() if args.progress == "bar" else None
    cancel = threading.Event()
    reporter = Reporter(json_out or bars, cancel=cancel)

    def on_signal(signum: int, frame: object) -> None:
        cancel.set()  # jobs stop at their next step, after their last complete checkpoint

    previous = signal.signal(signal.SIGTERM, on_signal) if threading.current_thread() is threading.main_thread() \
        else None
    try:
        result = args.handler(args, reporter)
    except (SyntheticImagingError, KeyboardInterrupt) as err:
        if bars:
            bars.close()
        cancelled = isinstance(err, (CancelledError, KeyboardInterrupt))
        message = "cancelled" if cancelled else str(err)
        if json_out:
            json_out.stream.write(json.dumps({"type": "error", "message": message, "cancelled": cancelled}) + "\n")
        print(f"synthetic-imaging: {'' if cancelled else 'error: '}{message}", file=sys.stderr)
        return 130 if cancelled else 2
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    if bars:
        bars.close()
    if json_out:
        json_out.result(**result)
    elif args.json_result:
        print(json.dumps(result, indent=2, default=str))
    else:
        from .cli_text import human_text

        print(human_text(args.command, result))
    return 0

