"""Training users can trust: bit-exact resume, cancel, safe checkpoints, model-card checks, DDP replicas agree."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from SyntheticImagingLib.cases import Case, Geometry
from SyntheticImagingLib.errors import CancelledError, CheckpointError, ResourceError
from SyntheticImagingLib.generators import load_generator
from SyntheticImagingLib.progress import Reporter
from SyntheticImagingLib.training import train_generator
from SyntheticImagingLib.training.checkpoints import CHECKPOINT_FORMAT, WEIGHTS_FILE, load_checkpoint
from SyntheticImagingLib.training.data import GridSettings, TrainingData, prepare_cases
from SyntheticImagingLib.training.loop import Trainer, TrainingProgram, TrainSettings

REPO = Path(__file__).resolve().parents[2]

#: A GAN small enough to train a few steps in seconds on 2 cores.
TINY_GAN = {"spacing": [2, 2, 2], "shape": [16, 16, 16], "channels": [8, 16, 32], "disc_layers": 2,
            "disc_channels": 8}


def make_cases(n: int = 4, size: int = 20) -> list[Case]:
    """Spherical 'brains' with a bright-on-FLAIR, dark-on-T1 spherical 'tumour' at a random place."""
    out = []
    for i in range(n):
        rng = np.random.default_rng(i)
        z, y, x = np.mgrid[:size, :size, :size]
        c = (size - 1) / 2
        brain = ((z - c) ** 2 + (y - c) ** 2 + (x - c) ** 2) < (size * 0.42) ** 2
        cz, cy, cx = c + rng.integers(-3, 4, 3)
        lesion = ((z - cz) ** 2 + (y - cy) ** 2 + (x - cx) ** 2) < 9
        flair = np.where(brain, 300 + 15 * rng.standard_normal(brain.shape), 0) + 300 * lesion
        t1 = np.where(brain, 500 + 15 * rng.standard_normal(brain.shape), 0) - 150 * lesion
        out.append(Case(case_id=f"syn{i}", channels={"FLAIR": flair, "T1": t1}, geometry=Geometry((2, 2, 2)),
                        label=lesion.astype(np.int16)))
    return out


class _Kill(BaseException):
    """Stands in for SIGKILL: not an Exception, so nothing in the loop gets to write a checkpoint."""


def _state(path: Path) -> dict:
    return load_checkpoint(path / "checkpoints" / "train_state.pt")


def _assert_same_state(a: dict, b: dict) -> None:
    assert a["step"] == b["step"]
    for m in a["modules"]:
        for k, v in a["modules"][m].items():
            assert torch.equal(v, b["modules"][m][k]), f"{m}.{k} differs"
    for name, opt in a["optimizers"].items():
        for pid, st in opt["state"].items():
            for k, v in st.items():
                other = b["optimizers"][name]["state"][pid][k]
                assert torch.equal(v, other) if torch.is_tensor(v) else v == other
    assert [h["loss_g"] for h in a["history"]] == [h["loss_g"] for h in b["history"]]


@pytest.fixture(scope="module")
def cases() -> list[Case]:
    return make_cases()


@pytest.fixture(scope="module")
def trained_gan(cases, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("gan") / "model"
    train_generator(cases, task="brain-tumor-mri", family="gan3d", out_dir=out, steps=2, device="cpu",
                    cache_dir="", **TINY_GAN)
    return out


def test_gan_resume_after_kill_is_bit_exact(cases, tmp_path):
    kw = dict(task="brain-tumor-mri", family="gan3d", steps=5, batch_size=2, device="cpu", seed=3,
              checkpoint_every=2, cache_dir=str(tmp_path / "cache"), **TINY_GAN)
    train_generator(cases, out_dir=tmp_path / "straight", **kw)

    def kill_at_4(event):
        if event.stage == "train" and event.step == 4:
            raise _Kill()

    with pytest.raises(_Kill):
        train_generator(cases, out_dir=tmp_path / "killed", progress=kill_at_4, **kw)
    assert _state(tmp_path / "killed")["step"] == 4  # the periodic checkpoint of step 4 was written before the kill
    assert not (tmp_path / "killed" / "model_card.json").exists()
    with pytest.raises(ResourceError, match="resume"):  # nothing is overwritten without --resume
        train_generator(cases, out_dir=tmp_path / "killed", **kw)
    gen = train_generator(cases, out_dir=tmp_path / "killed", resume=True, **kw)  # a fresh process state
    assert gen.training["resumed_from"] == 4 and gen.training["steps"] == 5
    _assert_same_state(_state(tmp_path / "straight"), _state(tmp_path / "killed"))
    a = load_checkpoint(tmp_path / "straight" / WEIGHTS_FILE)["modules"]["generator"]
    b = load_checkpoint(tmp_path / "killed" / WEIGHTS_FILE)["modules"]["generator"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_spade_gan_patches_sliding_window_and_edits(cases, tmp_path):
    cfg = {**TINY_GAN, "architecture": "spade", "spade_channels": [16, 8], "spade_hidden": 8, "patch_size": [8, 8, 8],
           "disc_layers": 1}
    gen = train_generator(cases, task="brain-tumor-mri", family="gan3d", out_dir=tmp_path / "spade", steps=2,
                          device="cpu", cache_dir="", **cfg)
    brain, geometry = gen.references[0]
    label = np.zeros(brain.shape, np.int16)
    label[6:10, 6:10, 6:10] = 1
    case = gen.generate(label, brain, geometry)  # 16^3 > the 8^3 patch: sliding-window inference
    assert case.shape == (16, 16, 16) and np.array_equal(case.label, label) and case.geometry == geometry
    assert all(np.isfinite(a).all() and a.min() >= 0 for a in case.channels.values())
    sub = np.where(label > 0, 2, 0).astype(np.int16)  # e.g. 'edema' from subregion controls: rendered as lesion
    assert np.array_equal(gen.generate(sub, brain, geometry).label, sub)

    real = cases[1]
    moved = gen.resynthesize(real, edit="move", offset_mm=(4.0, 0.0, 0.0))
    assert moved.label.sum() > 0 and moved.metadata["edit"] == "move"
    src = np.argwhere(gen.resynthesize(real, edit="resize", size_factor=1.0).label > 0).mean(0)
    assert np.argwhere(moved.label > 0).mean(0)[2] == pytest.approx(src[2] + 2, abs=0.5)  # 4 mm = 2 voxels in x
    bigger = gen.resynthesize(real, edit="resize", size_factor=1.4)
    assert bigger.label.sum() > 1.8 * (real.label > 0).sum()  # 1.4^3 = 2.7x, less what leaves the brain
    assert not gen.resynthesize(real, edit="remove").label.any()
    assert gen.resynthesize(real, edit="move", seed=4).label.any()  # a random place inside the brain


def test_ct_task_trains_and_renders_hounsfield_units(tmp_path):
    z, y, x = np.mgrid[:20, :20, :20]
    r = np.sqrt((z - 9.5) ** 2 + (y - 9.5) ** 2 + (x - 9.5) ** 2)
    cases = []
    for i in range(2):
        blood = np.sqrt((z - 8 - i) ** 2 + (y - 10) ** 2 + (x - 9) ** 2) < 2.5
        ct = np.select([r < 6.5, r < 8.0], [35.0, 900.0], -1000.0) + 35.0 * blood
        cases.append(Case(case_id=f"ct{i}", channels={"CT": ct}, geometry=Geometry((2, 2, 2)), modality="CT",
                          lesion_kind="hemorrhage", label=blood.astype(np.int16), brain_mask=r < 6.5))
    gen = train_generator(cases, task="head-hemorrhage-ct", family="gan3d", out_dir=tmp_path / "ct", steps=1,
                          device="cpu", cache_dir="", **TINY_GAN)
    brain, geometry = gen.references[0]
    out = gen.generate(cases[0].label[2:18, 2:18, 2:18], brain, geometry)
    assert out.modality.value == "CT" and out.channel_names == ["CT"]
    assert -1024.0 <= out.channels["CT"].min() and out.channels["CT"].max() <= 3071.0
    assert np.array_equal(out.label, cases[0].label[2:18, 2:18, 2:18])


def test_preprocessing_cache_skips_loading_and_resampling(cases, tmp_path, monkeypatch):
    from SyntheticImagingLib.io import datasets, load_dataset, write_dataset
    from SyntheticImagingLib.training import data as data_module

    write_dataset(cases[:2], tmp_path / "ds")
    ds = load_dataset(tmp_path / "ds")
    grid = GridSettings(spacing=(4, 4, 4), shape=(8, 8, 8), channels=("FLAIR", "T1"), modality="MR",
                        label_values=(1,))
    first = prepare_cases(ds, grid, cache_dir=tmp_path / "cache")
    events = []

    def refuse(*args, **kwargs):
        raise AssertionError("a cached case was loaded or resampled again")

    monkeypatch.setattr(datasets, "load_case", refuse)
    monkeypatch.setattr(data_module, "prepare_case", refuse)
    again = prepare_cases(ds, grid, cache_dir=tmp_path / "cache", progress=events.append)
    assert all(e.message.endswith("(cached)") for e in events)
    for a, b in zip(first, again):
        assert np.array_equal(a.image, b.image) and np.array_equal(a.label, b.label) and a.geometry == b.geometry
        assert a.intensity == b.intensity and a.source_key == b.source_key
    with pytest.raises(AssertionError, match="cached case"):  # other settings: a different cache entry
        prepare_cases(ds, GridSettings(**{**grid.to_dict(), "shape": (12, 8, 8)}), cache_dir=tmp_path / "cache")


class _ToyProgram(TrainingProgram):
    """A tiny conv net with dropout and a random draw in the step (exercises the RNG restore)."""

    def signature(self):
        return {"family": "toy"}

    def build(self):
        return {"net": nn.Sequential(nn.Conv3d(2, 4, 3, padding=1), nn.Dropout(0.3), nn.Conv3d(4, 2, 3, padding=1))}

    def make_optimizers(self, modules):
        return {"net": torch.optim.AdamW(modules["net"].parameters(), lr=1e-2)}

    def train_step(self, ctx, batch):
        x = batch["image"] + 0.1 * torch.randn_like(batch["image"])
        loss = (ctx.modules["net"](x) - batch["image"]).abs().mean()
        ctx.optimize(loss, "net")
        return {"loss": float(loss.detach())}


@pytest.fixture(scope="module")
def toy_data(cases) -> TrainingData:
    grid = GridSettings(spacing=(4, 4, 4), shape=(8, 8, 8), channels=("FLAIR", "T1"), modality="MR",
                        label_values=(1,))
    return TrainingData(prepare_cases(cases, grid), seed=0)


def test_cancel_writes_last_step_and_resume_matches(toy_data, tmp_path):
    settings = TrainSettings(steps=8, device="cpu", checkpoint_every=5, seed=1)
    straight = Trainer(settings=settings, checkpoint_dir=tmp_path / "a").run(_ToyProgram(), toy_data)
    cancel = threading.Event()

    def on_event(event):
        if event.step == 3:
            cancel.set()  # as the Slicer module's Cancel button does, from another thread

    with pytest.raises(CancelledError):
        Trainer(settings=settings, checkpoint_dir=tmp_path / "b", progress=Reporter(on_event, cancel=cancel)).run(
            _ToyProgram(), toy_data)
    assert load_checkpoint(tmp_path / "b" / "train_state.pt")["step"] == 3  # not the periodic one (5): step 3
    resumed = Trainer(settings=settings, checkpoint_dir=tmp_path / "b").run(_ToyProgram(), toy_data, resume=True)
    assert resumed.resumed_from == 3 and resumed.step == 8
    for k, v in straight.modules["net"].state_dict().items():
        assert torch.equal(v, resumed.modules["net"].state_dict()[k])
    assert [h["loss"] for h in straight.history] == [h["loss"] for h in resumed.history]


def test_resume_refuses_other_setup(toy_data, tmp_path):
    Trainer(settings=TrainSettings(steps=2, device="cpu"), checkpoint_dir=tmp_path).run(_ToyProgram(), toy_data)

    class Other(_ToyProgram):
        def signature(self):
            return {"family": "toy", "config": {"lr": 2}}

    with pytest.raises(CheckpointError, match="different training setup"):
        Trainer(settings=TrainSettings(steps=4, device="cpu"), checkpoint_dir=tmp_path).run(Other(), toy_data,
                                                                                             resume=True)
    with pytest.raises(CheckpointError, match="batch size"):
        Trainer(settings=TrainSettings(steps=4, device="cpu", batch_size=2), checkpoint_dir=tmp_path).run(
            _ToyProgram(), toy_data, resume=True)


class _Evil:
    """A pickle payload that runs a shell command when unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_checkpoint_is_refused(trained_gan, cases, tmp_path):
    # the payload is live: an unsafe load would run it
    pickle.loads(pickle.dumps(_Evil(tmp_path / "proof")))
    assert (tmp_path / "proof").exists()

    marker = tmp_path / "pwned"
    model = tmp_path / "model"
    shutil.copytree(trained_gan, model)
    torch.save({"format": CHECKPOINT_FORMAT, "family": "gan3d", "modules": {"generator": _Evil(marker)}},
               model / WEIGHTS_FILE)
    with pytest.raises(CheckpointError, match="refused: this checkpoint needs pickled code"):
        load_generator(model)
    raw = tmp_path / "raw.pkl"  # a plain pickle file, not a torch zip
    raw.write_bytes(pickle.dumps(_Evil(marker)))
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(raw)
    state = model / "checkpoints" / "train_state.pt"  # the resume path reads through the same guard
    torch.save({"format": CHECKPOINT_FORMAT, "kind": "train_state", "rng": _Evil(marker)}, state)
    with pytest.raises(CheckpointError, match="refused"):
        train_generator(cases, task="brain-tumor-mri", family="gan3d", out_dir=model, steps=3, device="cpu",
                        resume=True, cache_dir="", **TINY_GAN)
    assert not marker.exists()


def test_corrupt_and_foreign_files_are_refused(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(bad)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weight": torch.zeros(2)}, foreign)  # safe, but not ours: no format marker
    with pytest.raises(CheckpointError, match="not written by SyntheticImaging"):
        load_checkpoint(foreign)


def test_model_card_mismatch_is_refused(trained_gan, tmp_path):
    card = json.loads((trained_gan / "model_card.json").read_text())
    assert card["family"] == "gan3d" and card["training"]["steps"] == 2
    assert card["training"]["data"]["count"] == 4 and len(card["training"]["data"]["case_ids_sha256"]) == 64
    assert {"torch", "monai", "synthetic_imaging"} <= set(card["training"]["versions"])

    def variant(name: str, edit) -> Path:
        d = tmp_path / name
        shutil.copytree(trained_gan, d)
        c = json.loads((d / "model_card.json").read_text())
        edit(c, d)
        (d / "model_card.json").write_text(json.dumps(c))
        return d

    wider = variant("wider", lambda c, d: c["config"].update(channels=[16, 16, 32]))
    with pytest.raises(CheckpointError, match="do not match"):
        load_generator(wider)
    spec = variant("spec", lambda c, d: c["files"]["weights"]["tensors"]["generator"].popitem())
    with pytest.raises(CheckpointError, match="do not match the model card"):
        load_generator(spec)

    def swap_weights(c, d):
        sd = load_checkpoint(d / WEIGHTS_FILE)
        sd["modules"]["generator"] = {k: v + 1 for k, v in sd["modules"]["generator"].items()}
        sd.pop("format")
        torch.save({"format": CHECKPOINT_FORMAT, **sd}, d / WEIGHTS_FILE)

    with pytest.raises(CheckpointError, match="changed after its model card"):
        load_generator(variant("swapped", swap_weights))
    with pytest.raises(CheckpointError, match="family"):
        load_generator(variant("family", lambda c, d: c["files"]["weights"].update(family="diffusion")))
    assert load_generator(trained_gan).net is not None  # the untouched folder still loads


_DDP_SCRIPT = textwrap.dedent("""
    import os, sys, torch
    sys.path.insert(0, sys.argv[2])
    sys.path.insert(0, os.path.dirname(sys.argv[3]))
    from test_training import TINY_GAN, make_cases
    from SyntheticImagingLib.training import train_generator
    import torch.distributed as dist
    out = sys.argv[1]
    gen = train_generator(make_cases(4), task="brain-tumor-mri", family="gan3d", out_dir=out + "/model", steps=3,
                          device="cpu", cache_dir=out + "/cache", checkpoint_every=3, **TINY_GAN)
    rank = dist.get_rank()
    assert dist.get_world_size() == 2 and dist.get_backend() == "gloo"
    torch.save({"generator": gen.net.state_dict()}, f"{out}/rank{rank}.pt")
    dist.destroy_process_group()
""")


def test_ddp_two_gloo_processes_keep_identical_weights(tmp_path):
    script = tmp_path / "ddp_train.py"
    script.write_text(_DDP_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           str(script), str(tmp_path), str(REPO), __file__], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)["generator"]
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)["generator"]
    assert all(torch.equal(r0[k], r1[k]) for k in r0), "DDP replicas diverged"
    state = load_checkpoint(tmp_path / "model" / "checkpoints" / "train_state.pt")  # written by rank 0
    assert state["world_size"] == 2 and state["step"] == 3
    saved = load_generator(tmp_path / "model")  # the generator folder, written once by rank 0, loads
    assert all(torch.equal(saved.net.state_dict()[k], r0[k]) for k in r0)
    # the replicas saw different samples each step (rank-sharded batches), so agreement is DDP's doing
    data = TrainingData(prepare_cases(make_cases(4), GridSettings(
        spacing=(2, 2, 2), shape=(16, 16, 16), channels=("FLAIR", "T1"), modality="MR", label_values=(1,))))
    assert not torch.equal(data.batch(0, 1, rank=0, world_size=2)["position"],
                           data.batch(0, 1, rank=1, world_size=2)["position"])
