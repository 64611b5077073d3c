"""Synthesis throughput per generator family and grid size, against the bare network forward pass.

    python Testing/benchmarks/bench_synthesis.py [--sizes 64 128 256x256x128] [--repeats 3] [--device cpu]
        [--precisions fp32 bf16] [--channels 16,32,64,128 8,16,32,64] [--channels-last] [--compile]

Diffusion (``--families diffusion``) times the real latent rectified-flow configuration the same way, against
its bare networks: the denoiser called once per sampling step and the autoencoder's decoder once.
For the GAN the same label maps are rendered side by side in one run, per precision: through the whole pipeline
(``GAN3DGenerator.synthesize`` of ``--cases`` volumes, time per volume: new lesion masks, drawn in a background
thread while the network renders, conditioning, network, sliding window if needed, back to physical units) and
as a bare ``net(cond)`` under ``torch.inference_mode`` and the same autocast; the ratio is the library's overhead
including the new lesion masks, and the render ratio (``generate`` of a given label vs the bare forward) the
overhead of conditioning, sliding window and conversion back to physical units alone. ``speedup`` is the fp32
pipeline time over this row's. ``--channels-last`` and ``--compile`` add rows for those options (compile time in
``first s``). Weights are freshly initialised (throughput does not depend on training). Training-free families
have no network: their throughput is reported alone. Prints medians and each row's peak memory (CPU RSS since
the row started; GPU max allocated).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from SyntheticImagingLib.cases import Case, Geometry  # noqa: E402
from SyntheticImagingLib.generators import create_generator  # noqa: E402
from SyntheticImagingLib.generators.diffusion import CUDA_LATENT_128_CONFIG  # noqa: E402
from SyntheticImagingLib.lesions.controls import LesionControls  # noqa: E402
from SyntheticImagingLib.preprocessing import IntensityMap  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peak_memory import peaks, reset_peaks  # noqa: E402


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


#: The lesion every benchmark draws: one 20 ml tumour from random smooth shapes.
CONTROLS = LesionControls(kind="tumor", volume_ml=20.0, use_templates=False)


def _time_pipeline(gen, brain: np.ndarray, geometry: Geometry, device: torch.device, *, cases: int, repeats: int,
                   **settings: object) -> tuple[float, float]:
    """Make a fresh-weight generator ready on the phantom anatomy and time ``synthesize``: ``(first call s, median
    s per volume over runs of ``cases`` volumes)``."""
    gen.intensity = IntensityMap(gen.task.modality, {"FLAIR": 500.0, "T1": 500.0})
    gen.references = [(brain, geometry)]
    gen.to(device, **settings)
    t = time.perf_counter()
    list(gen.synthesize(1, seed=99, controls=CONTROLS))  # warm-up (and compilation)
    first = time.perf_counter() - t
    # Per volume of a run: the next lesion masks are drawn while the network renders.
    return first, _median_time(lambda: list(gen.synthesize(cases, seed=0, controls=CONTROLS)), repeats,
                               device) / cases


def bench_gan(shape: tuple[int, int, int], repeats: int, device: torch.device, *, precision: str = "fp32",
              channels: list[int] | None = None, channels_last: bool = False, compile: bool = False,
              cases: int = 4, label_workers: int = 0) -> dict[str, float]:
    reset_peaks(device)
    brain, geometry = _phantom(shape, 2.0)
    config = {"channels": channels} if channels else {}
    gen = create_generator("gan3d", task="brain-tumor-mri", spacing=[2.0] * 3, shape=list(shape), **config)
    torch.manual_seed(0)
    gen.net = gen.build_networks()["generator"].eval()
    first, pipeline = _time_pipeline(gen, brain, geometry, device, cases=cases, repeats=repeats, precision=precision,
                                     channels_last=channels_last, compile=compile, label_workers=label_workers)
    label = np.zeros(shape, np.int64)
    label[tuple(slice(s // 2 - 4, s // 2 + 4) for s in shape)] = 1
    cond = gen.condition(torch.from_numpy(label)[None, None].to(device), torch.from_numpy(brain)[None, None].to(device))
    runner = gen._runner()  # the network under this precision / layout / compilation

    def bare() -> None:
        with torch.inference_mode():
            runner(cond)

    bare()
    forward = _median_time(bare, repeats, device)
    # Rendering a given label (no mask synthesis): conditioning, network, back to physical units, the Case.
    render = _median_time(lambda: gen.generate(label, brain, geometry), repeats, device)
    return {"pipeline_s": pipeline, "render_s": render, "forward_s": forward, "volumes_per_s": 1 / pipeline,
            "ratio": pipeline / forward, "render_ratio": render / forward, "first_s": first, **peaks(device)}


def bench_diffusion(shape: tuple[int, int, int], repeats: int, device: torch.device, *, precision: str = "fp32",
                    steps: int | None = None) -> dict[str, float]:
    """The real latent rectified-flow configuration (:data:`CUDA_LATENT_128_CONFIG`) on ``shape``, fresh weights:
    the pipeline (new lesion mask, mask-conditioned sampling with ``steps`` denoiser calls, the autoencoder's
    decoder, back to physical units) against the bare networks (``steps`` denoiser forwards + one decode)."""
    reset_peaks(device)
    brain, geometry = _phantom(shape, 1.5)
    config = {**CUDA_LATENT_128_CONFIG, "shape": list(shape)}
    if steps:
        config["inference_steps"] = int(steps)
    gen = create_generator("diffusion", task="brain-tumor-mri", **config)
    torch.manual_seed(0)
    gen.nets = {k: m.eval() for k, m in gen.build_networks().items()}
    first, pipeline = _time_pipeline(gen, brain, geometry, device, cases=1, repeats=repeats, precision=precision)
    nets = gen._sampling_nets()
    n_steps = gen.config.inference_steps
    latent = torch.randn(1, gen.config.latent_channels + gen.n_mask, *gen.space_shape, device=device)
    z = latent[:, : gen.config.latent_channels]
    timestep = torch.full((1,), 500, device=device)

    def bare() -> None:
        with torch.inference_mode():
            for _ in range(n_steps):
                nets["unet"](latent, timesteps=timestep)
            nets["autoencoder"].decode_stage_2_outputs(z)

    forward = _median_time(bare, repeats, device)
    return {"pipeline_s": pipeline, "forward_s": forward, "volumes_per_s": 1 / pipeline, "ratio": pipeline / forward,
            "first_s": first, "steps": n_steps, **peaks(device)}


def bench_training_free(family: str, shape: tuple[int, int, int], repeats: int) -> dict[str, float]:
    reset_peaks(torch.device("cpu"))
    brain, geometry = _phantom(shape, 2.0)
    rng = np.random.default_rng(0)
    flair = np.where(brain, rng.normal(300, 30, shape), 0).astype(np.float32)
    t1 = np.where(brain, rng.normal(400, 30, shape), 0).astype(np.float32)
    ref = Case(case_id="ref", channels={"FLAIR": flair, "T1": t1}, geometry=geometry, brain_mask=brain)
    gen = create_generator(family, task="brain-tumor-mri").fit([ref])
    t = _median_time(lambda: list(gen.synthesize(1, seed=0, controls=CONTROLS)), repeats, torch.device("cpu"))
    return {"pipeline_s": t, "volumes_per_s": 1 / t, **peaks(torch.device("cpu"))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["64", "128", "256x256x128"])
    parser.add_argument("--families", nargs="+", default=["gan3d", "lesion-insertion", "label-to-image"],
                        help="gan3d, diffusion (the real latent configuration; slow on a CPU), lesion-insertion, "
                        "label-to-image")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], help="GAN network precisions to time")
    parser.add_argument("--channels", nargs="+", default=["16,32,64,128"], help="GAN generator widths to time")
    parser.add_argument("--channels-last", action="store_true", help="add channels-last rows (last precision)")
    parser.add_argument("--compile", action="store_true", help="add torch.compile rows (last precision)")
    parser.add_argument("--cases", type=int, default=4, help="GAN volumes per timed synthesize() run")
    parser.add_argument("--label-workers", type=int, default=0, help="GAN: processes drawing lesion labels")
    parser.add_argument("--diffusion-steps", type=int, default=None,
                        help="diffusion sampling steps (default: the configuration's 30)")
    args = parser.parse_args()
    device = torch.device(args.device)
    print(f"device {device} ({torch.cuda.get_device_name() if device.type == 'cuda' else 'CPU'}), torch "
          f"{torch.__version__}, threads {torch.get_num_threads()}, repeats {args.repeats} (medians)")
    print(f"{'family':18s} {'variant':26s} {'grid (z,y,x)':16s} {'pipeline s':>11s} {'render s':>9s} "
          f"{'forward s':>10s} {'vol/s':>8s} {'ratio':>7s} {'render ratio':>13s} {'speedup':>8s} {'first s':>8s} "
          f"{'peak RSS MiB':>12s} {'GPU MiB':>8s}")
    nan = float("nan")
    for family in args.families:
        for size in args.sizes:
            shape = _size(size)
            runs: list[tuple[str, dict[str, float]]] = []
            if family == "gan3d":
                for widths in args.channels:
                    channels = [int(w) for w in widths.split(",")]
                    base = "-".join(map(str, channels))
                    variants = [(p, {"precision": p}) for p in args.precisions]
                    last = args.precisions[-1]
                    if args.channels_last:
                        variants.append((f"{last} channels-last", {"precision": last, "channels_last": True}))
                    if args.compile:
                        variants.append((f"{last} compiled", {"precision": last, "compile": True}))
                    for name, options in variants:
                        runs.append((f"{base} {name}", bench_gan(shape, args.repeats, device, channels=channels,
                                                                 cases=args.cases, label_workers=args.label_workers,
                                                                 **options)))
            elif family == "diffusion":
                for precision in args.precisions:
                    r = bench_diffusion(shape, args.repeats, device, precision=precision, steps=args.diffusion_steps)
                    runs.append((f"latent rflow {r['steps']} steps {precision}", r))
            else:
                runs.append(("-", bench_training_free(family, shape, args.repeats)))
            reference = runs[0][1]["pipeline_s"]
            for name, r in runs:
                print(f"{family:18s} {name:26s} {str(shape):16s} {r['pipeline_s']:11.3f} {r.get('render_s', nan):9.3f} "
                      f"{r.get('forward_s', nan):10.3f} {r['volumes_per_s']:8.3f} {r.get('ratio', nan):7.3f} "
                      f"{r.get('render_ratio', nan):13.3f} {reference / r['pipeline_s']:8.2f} "
                      f"{r.get('first_s', nan):8.1f} {r['peak_rss_mb']:12.0f} "
                      f"{r['gpu_max_allocated_mb'] or 0:8.0f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
