"""Synthesis throughput per generator family and grid size, against the bare network forward pass.

    python Testing/benchmarks/bench_synthesis.py [--sizes 64 128 256x256x128] [--repeats 3] [--device cpu]

For the GAN the same label maps are rendered twice, side by side in one run: through the whole pipeline
(``GAN3DGenerator.synthesize``: new lesion mask, conditioning, network, sliding window if needed, back to
physical units) and as a bare ``net(cond)`` under ``torch.inference_mode``; the ratio is the library's overhead
including the new lesion mask, and the render ratio (``generate`` of a given label vs the bare forward) the
overhead of conditioning, sliding window and conversion back to physical units alone.
Weights are freshly initialised (throughput does not depend on training). Training-free families have no
network: their throughput is reported alone. Prints medians and peak memory (CPU RSS; GPU max allocated).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from SyntheticImagingLib.cases import Case, Geometry  # noqa: E402
from SyntheticImagingLib.generators import create_generator  # noqa: E402
from SyntheticImagingLib.lesions.controls import LesionControls  # noqa: E402
from SyntheticImagingLib.preprocessing import IntensityMap  # noqa: E402


def _size(text: str) -> tuple[int, int, int]:
    parts = [int(p) for p in text.lower().split("x")]
    return (parts[0],) * 3 if len(parts) == 1 else (parts[2], parts[1], parts[0])  # XxYxZ -> (z, y, x)


def _phantom(shape: tuple[int, int, int], spacing: float) -> tuple[np.ndarray, Geometry]:
    z, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
    c = [(s - 1) / 2 for s in shape]
    brain = ((z - c[0]) / (0.42 * shape[0])) ** 2 + ((y - c[1]) / (0.42 * shape[1])) ** 2 + \
        ((x - c[2]) / (0.42 * shape[2])) ** 2 < 1
    return brain, Geometry((spacing,) * 3)


def _median_time(fn, repeats: int, device: torch.device) -> float:
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bench_gan(shape: tuple[int, int, int], repeats: int, device: torch.device) -> dict[str, float]:
    brain, geometry = _phantom(shape, 2.0)
    gen = create_generator("gan3d", task="brain-tumor-mri", spacing=[2.0] * 3, shape=list(shape))
    gen.net = gen.build_networks()["generator"].eval()
    gen.intensity = IntensityMap(gen.task.modality, {"FLAIR": 500.0, "T1": 500.0})
    gen.references = [(brain, geometry)]
    gen.to(device)
    controls = LesionControls(kind="tumor", volume_ml=20.0, use_templates=False)
    list(gen.synthesize(1, seed=99, controls=controls))  # warm-up
    pipeline = _median_time(lambda: list(gen.synthesize(1, seed=0, controls=controls)), repeats, device)
    label = np.zeros(shape, np.int64)
    label[tuple(slice(s // 2 - 4, s // 2 + 4) for s in shape)] = 1
    cond = gen.condition(torch.from_numpy(label)[None, None].to(device), torch.from_numpy(brain)[None, None].to(device))

    def bare() -> None:
        with torch.inference_mode():
            gen.net(cond)

    bare()
    forward = _median_time(bare, repeats, device)
    # Rendering a given label (no mask synthesis): conditioning, network, back to physical units, the Case.
    render = _median_time(lambda: gen.generate(label, brain, geometry), repeats, device)
    return {"pipeline_s": pipeline, "render_s": render, "forward_s": forward, "volumes_per_s": 1 / pipeline,
            "ratio": pipeline / forward, "render_ratio": render / forward}


def bench_training_free(family: str, shape: tuple[int, int, int], repeats: int) -> dict[str, float]:
    brain, geometry = _phantom(shape, 2.0)
    rng = np.random.default_rng(0)
    flair = np.where(brain, rng.normal(300, 30, shape), 0).astype(np.float32)
    t1 = np.where(brain, rng.normal(400, 30, shape), 0).astype(np.float32)
    ref = Case(case_id="ref", channels={"FLAIR": flair, "T1": t1}, geometry=geometry, brain_mask=brain)
    gen = create_generator(family, task="brain-tumor-mri").fit([ref])
    controls = LesionControls(kind="tumor", volume_ml=20.0, use_templates=False)
    t = _median_time(lambda: list(gen.synthesize(1, seed=0, controls=controls)), repeats, torch.device("cpu"))
    return {"pipeline_s": t, "volumes_per_s": 1 / t}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["64", "128", "256x256x128"])
    parser.add_argument("--families", nargs="+", default=["gan3d", "lesion-insertion", "label-to-image"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    print(f"device {device} ({torch.cuda.get_device_name() if device.type == 'cuda' else 'CPU'}), torch "
          f"{torch.__version__}, threads {torch.get_num_threads()}, repeats {args.repeats} (medians)")
    print(f"{'family':18s} {'grid (z,y,x)':16s} {'pipeline s':>11s} {'render s':>9s} {'forward s':>10s} {'vol/s':>8s} "
          f"{'ratio':>7s} {'render ratio':>13s}")
    for family in args.families:
        for size in args.sizes:
            shape = _size(size)
            r = bench_gan(shape, args.repeats, device) if family == "gan3d" else \
                bench_training_free(family, shape, args.repeats)
            nan = float("nan")
            print(f"{family:18s} {str(shape):16s} {r['pipeline_s']:11.3f} {r.get('render_s', nan):9.3f} "
                  f"{r.get('forward_s', nan):10.3f} {r['volumes_per_s']:8.3f} {r.get('ratio', nan):7.3f} "
                  f"{r.get('render_ratio', nan):13.3f}", flush=True)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    gpu = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else 0.0
    print(f"peak CPU RSS {rss:.0f} MiB; peak GPU allocated {gpu:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
