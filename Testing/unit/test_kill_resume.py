"""A training process killed with SIGKILL mid-run resumes from its last checkpoint to the same weights.

The CLI trains a tiny GAN in a child process (``--progress json``); the test kills it with SIGKILL (no handler,
no cleanup) at a random moment after its first checkpoint, checks that what is on disk is a loadable checkpoint
and no finished generator, then resumes with ``--resume`` and compares every weight with an uninterrupted run
of the same seed.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from SyntheticImagingLib.io.datasets import write_dataset
from SyntheticImagingLib.training.checkpoints import WEIGHTS_FILE, load_checkpoint

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX SIGKILL")

REPO = Path(__file__).resolve().parents[2]
STEPS = 30
CONFIG = {"spacing": [2, 2, 2], "shape": [16, 16, 16], "channels": [8, 16, 32], "disc_layers": 2, "disc_channels": 8}


def _command(data: Path, out: Path, *extra: str) -> list[str]:
    cmd = [sys.executable, "-m", "SyntheticImagingLib", "--progress", "json", "train", "--data", str(data),
           "--task", "brain-tumor-mri", "--generator", "gan3d", "--out", str(out), "--steps", str(STEPS),
           "--batch-size", "2", "--device", "cpu", "--seed", "5", "--checkpoint-every", "2", "--cache-dir", "",
           *extra]
    for key, value in CONFIG.items():
        cmd += ["--config", f"{key}={json.dumps(value)}"]
    return cmd


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    from test_training import make_cases  # same folder: pytest puts it on sys.path

    return write_dataset(make_cases(4), tmp_path_factory.mktemp("kill") / "data")


def test_sigkill_mid_training_then_resume_gives_the_uninterrupted_weights(data, tmp_path):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    subprocess.run(_command(data, straight), check=True, env=_env(), capture_output=True, timeout=600)

    proc = subprocess.Popen(_command(data, killed), env=_env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)
    killed_at = None
    rnd = random.Random(proc.pid)
    kill_step = rnd.randint(3, STEPS - 10)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            event = json.loads(line)
            if event.get("type") == "progress" and event.get("stage") == "train" and event.get("step", 0) >= kill_step:
                # A random moment well inside the run: mid-step, mid-checkpoint-write, anywhere in the next step.
                time.sleep(rnd.uniform(0.0, 0.05))
                killed_at = event["step"]
                os.kill(proc.pid, signal.SIGKILL)
                break
    finally:
        proc.kill()
        proc.wait(timeout=60)
    assert killed_at is not None, "training ended before it could be killed"
    assert proc.returncode == -signal.SIGKILL
    # What a kill leaves: a complete checkpoint (atomic writes), no finished generator.
    state = load_checkpoint(killed / "checkpoints" / "train_state.pt")
    assert 2 <= state["step"] < STEPS
    assert not (killed / "model_card.json").exists()

    resumed = subprocess.run(_command(data, killed, "--resume"), check=True, env=_env(), capture_output=True,
                             text=True, timeout=600)
    result = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert result["type"] == "result" and result["training"]["resumed_from"] == state["step"]
    a = load_checkpoint(straight / WEIGHTS_FILE)["modules"]
    b = load_checkpoint(killed / WEIGHTS_FILE)["modules"]
    assert a.keys() == b.keys()
    for module in a:
        for key in a[module]:
            assert torch.equal(a[module][key], b[module][key]), f"{module}.{key} differs after resume"
