"""A longer GAN training run on the shared BraTS cases: the loss curve as a table and a PNG of samples.

Usage (from the project root)::

    python Testing/benchmarks/train_gan_long.py --minutes 10            # CPU, 4 mm grid, stops after 10 minutes
    python Testing/benchmarks/train_gan_long.py --steps 5000 --device cuda --spacing 2 --shape 80 96 80

The run trains on cases 0-7 and holds out 8-9. A time budget is enforced with the library's own cancel: the
run stops after a checkpoint, then "resumes" to the step it reached, which saves the generator like a finished run.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from SyntheticImagingLib.errors import CancelledError  # noqa: E402
from SyntheticImagingLib.io import load_dataset  # noqa: E402
from SyntheticImagingLib.lesions.controls import LesionControls  # noqa: E402
from SyntheticImagingLib.progress import Reporter  # noqa: E402
from SyntheticImagingLib.training import train_generator  # noqa: E402
from SyntheticImagingLib.training.checkpoints import load_checkpoint  # noqa: E402
from SyntheticImagingLib.training.data import GridSettings, prepare_cases  # noqa: E402


def _table(history: list[dict[str, float]], rows: int) -> str:
    """Mean losses over equal windows of steps, one row per window."""
    keys = ["loss_g", "loss_l1", "loss_adv", "loss_d"]
    edges = np.linspace(0, len(history), min(rows, len(history)) + 1).astype(int)
    lines = [f"{'steps':>11} " + " ".join(f"{k:>9}" for k in keys) + f" {'val_l1':>8} {'val_ratio':>9}"]
    for a, b in zip(edges[:-1], edges[1:]):
        window = history[a:b]
        vals = [np.mean([h[k] for h in window]) for k in keys]
        val = [h for h in window if "val_l1" in h]
        extra = (f" {val[-1]['val_l1']:8.4f} {val[-1].get('val_lesion_ratio', float('nan')):9.3f}" if val
                 else f" {'':8} {'':9}")
        lines.append(f"{a + 1:>5}-{b:<5} " + " ".join(f"{v:9.4f}" for v in vals) + extra)
    return "\n".join(lines)


def _flair_ratio(flair: np.ndarray, label: np.ndarray, brain: np.ndarray) -> float:
    return float(flair[label > 0].mean() / flair[brain & (label == 0)].mean())


def _png(path: Path, rows: list[tuple[str, dict[str, np.ndarray], np.ndarray]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(rows), 2, figsize=(5, 2.6 * len(rows)), squeeze=False)
    for r, (title, channels, label) in enumerate(rows):
        z = int(np.argmax((label > 0).sum(axis=(1, 2)))) if label.any() else label.shape[0] // 2
        for c, name in enumerate(("FLAIR", "T1")):
            ax = axes[r][c]
            ax.imshow(channels[name][z], cmap="gray", origin="lower")
            if label[z].any():
                ax.contour(label[z] > 0, levels=[0.5], colors="r", linewidths=0.6)
            ax.set_title(f"{title} {name}", fontsize=7)
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "brats2018"))
    parser.add_argument("--out", default=str(ROOT / "out" / "train_gan_long"))
    parser.add_argument("--steps", type=int, default=100000, help="upper bound; --minutes usually stops first")
    parser.add_argument("--minutes", type=float, default=10.0, help="time budget for training")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--amp", default="auto", help="mixed precision: auto, bf16, fp16 or off")
    parser.add_argument("--spacing", type=float, default=4.0)
    parser.add_argument("--shape", type=int, nargs=3, default=[40, 48, 40])
    parser.add_argument("--architecture", default="segresnet", choices=["segresnet", "unet", "spade"])
    parser.add_argument("--preview-every", type=int, default=100)
    parser.add_argument("--rows", type=int, default=15, help="rows of the loss table")
    args = parser.parse_args()

    out = Path(args.out)
    model = out / "model"
    ds = load_dataset(args.data, layout="brats")
    train, val = ds.subset(ds.case_ids[:8]), ds.subset(ds.case_ids[8:])
    config = {"spacing": [args.spacing] * 3, "shape": list(args.shape), "architecture": args.architecture}
    common = dict(task="brain-tumor-mri", family="gan3d", out_dir=model, batch_size=args.batch_size,
                  device=args.device, amp=args.amp, validation=val, preview_every=args.preview_every,
                  checkpoint_every=50,
                  cache_dir=str(out / "cache"), **config)
    cancel = threading.Event()
    started = time.monotonic()

    def on_event(event) -> None:
        if event.stage == "train":
            if event.step % 25 == 0 or event.step == 1:
                shown = " ".join(f"{k}={v:.4g}" for k, v in event.metrics.items() if k != "eta_s")
                print(f"[{time.monotonic() - started:7.1f}s] step {event.step} {shown}", flush=True)
            if time.monotonic() - started > args.minutes * 60:
                cancel.set()  # stop after this step; the loop writes a checkpoint first

    resume = (model / "checkpoints" / "train_state.pt").exists()
    try:
        gen = train_generator(train, steps=args.steps, progress=Reporter(on_event, cancel=cancel), resume=resume,
                              **common)
    except CancelledError:
        reached = int(load_checkpoint(model / "checkpoints" / "train_state.pt")["step"])
        print(f"time budget reached at step {reached}; saving the generator at that step")
        gen = train_generator(train, steps=reached, resume=True, **common)
    elapsed = time.monotonic() - started
    history = load_checkpoint(model / "checkpoints" / "train_state.pt")["history"]
    print(f"\ntrained {gen.training['steps']} steps in {elapsed / 60:.1f} min on {gen.training['device']} "
          f"({elapsed / max(1, len(history)):.2f} s/step incl. previews)\n")
    print(_table(history, args.rows))

    grid = GridSettings.from_task(gen.task, spacing=config["spacing"], shape=config["shape"])
    rows = []
    for p in prepare_cases(val, grid, cache_dir=out / "cache"):
        real = {c: p.intensity.inverse_array(p.image[i], c) for i, c in enumerate(grid.channels)}
        fake = gen.generate(p.label, p.brain, p.geometry)
        ratio_fake = _flair_ratio(fake.channels["FLAIR"], p.label, p.brain)
        print(f"{p.case_id}: FLAIR tumour/normal ratio synthetic {ratio_fake:.2f} real "
              f"{_flair_ratio(real['FLAIR'], p.label, p.brain):.2f}; labels exact: "
              f"{bool(np.array_equal(fake.label, p.label))}")
        rows += [(f"real {p.case_id}", real, p.label), (f"GAN {p.case_id} mask", fake.channels, fake.label)]
    for case in gen.synthesize(2, seed=1, controls=LesionControls(kind="tumor", volume_ml=(20.0, 50.0))):
        rows.append((f"GAN new mask {case.lesion_volume_ml():.0f} ml", case.channels, case.label))
    png = out / "samples.png"
    _png(png, rows)
    print(f"\nsamples: {png}\nmodel: {model}")


if __name__ == "__main__":
    main()
