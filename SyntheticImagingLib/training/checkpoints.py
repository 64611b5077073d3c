"""Checkpoints that are safe to open and say what they are.

* Every ``.pt`` file is read with ``torch.load(weights_only=True)`` only: tensors, numbers, strings, lists,
  tuples and dicts load; anything that needs pickled code (which could run arbitrary code while loading) is
  refused with a :class:`~SyntheticImagingLib.errors.CheckpointError`.
* Files are written atomically (complete under their final name, or absent).
* Generator weights are bound to their model card: the card records the file's SHA-256, the family and every
  tensor's name and shape; :func:`load_weights` checks all three, so a swapped, edited or foreign weights file is
  refused instead of silently loading.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import CheckpointError
from ..io.atomic import atomic_file

__all__ = [
    "CHECKPOINT_FORMAT",
    "WEIGHTS_FILE",
    "save_checkpoint",
    "load_checkpoint",
    "save_weights",
    "load_weights",
    "tensor_spec",
    "check_tensor_spec",
    "file_sha256",
    "software_versions",
]

#: Marker stored in every file this module writes (a plain string, so it loads with weights_only).
CHECKPOINT_FORMAT = "synthetic-imaging-checkpoint/1"
#: File name of a generator's weights inside its folder.
WEIGHTS_FILE = "weights.pt"

_REFUSED = ("refused: this checkpoint needs pickled code to load, which could run arbitrary code; only plain "
            "tensors and numbers are accepted")


def software_versions() -> dict[str, str]:
    """Versions recorded in model cards (what produced the weights)."""
    import monai

    from .. import __version__

    return {"synthetic_imaging": __version__, "torch": torch.__version__, "monai": monai.__version__,
            "numpy": np.__version__, "python": platform.python_version()}


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file (hex)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_checkpoint(path: str | os.PathLike[str], payload: Mapping[str, Any]) -> Path:
    """Write ``payload`` (tensors, numbers, strings and containers of them) atomically with :func:`torch.save`.

    Args:
        path: the ``.pt`` file to write.
        payload: what to store; the format marker is added.

    Returns:
        the path written.
    """
    path = Path(path)
    with atomic_file(path) as tmp:
        torch.save({"format": CHECKPOINT_FORMAT, **payload}, tmp)
    return path


def load_checkpoint(path: str | os.PathLike[str], *, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a file written by :func:`save_checkpoint`, refusing anything that needs pickled code.

    Args:
        path: the ``.pt`` file.
        map_location: where tensors are loaded (default CPU; the caller moves them).

    Raises:
        CheckpointError: missing, unreadable/truncated, needs pickled code, or not written by this library.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError("checkpoint file not found", where=str(path),
                              fix="check the path; a training folder keeps its state in checkpoints/train_state.pt")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        # weights_only refuses any global it does not know (os.system, custom classes, ...) before calling it
        raise CheckpointError(_REFUSED, where=str(path),
                              fix="only load checkpoints written by this tool; if you trust this file, convert it "
                              "to a plain state_dict in a separate, sandboxed session") from None
    except Exception as err:  # noqa: BLE001 - a damaged zip/pickle fails in many ways (fuzz-found: IndexError...)
        detail = (str(err).splitlines() or [type(err).__name__])[0]
        raise CheckpointError(f"checkpoint cannot be read (truncated or corrupt: {detail})",
                              where=str(path), fix="use an intact copy, or resume from an earlier checkpoint") from None
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError("this file was not written by SyntheticImaging (no format marker)", where=str(path),
                              fix="load checkpoints written by `synthetic-imaging train` or Generator.save")
    return data


def tensor_spec(state: Mapping[str, Mapping[str, torch.Tensor]]) -> dict[str, dict[str, list[int]]]:
    """``{module: {tensor name: shape}}`` of a set of state dicts (recorded in the model card)."""
    return {m: {k: list(v.shape) for k, v in sd.items()} for m, sd in state.items()}


def check_tensor_spec(expected: Mapping[str, Mapping[str, Any]], found: Mapping[str, Mapping[str, Any]], *,
                      where: str, what: str = "the model card") -> None:
    """Raise :class:`CheckpointError` naming the first differences between two tensor specs.

    Args:
        expected: spec from ``what`` (card or a freshly built network).
        found: spec of the weights file.
        where: the path, for the message.
        what: what ``expected`` comes from, for the message.
    """
    problems: list[str] = []
    for module in sorted(set(expected) | set(found)):
        if module not in found:
            problems.append(f"module {module!r} missing from the weights")
            continue
        if module not in expected:
            problems.append(f"unexpected module {module!r} in the weights")
            continue
        e, f = expected[module], found[module]
        for name in sorted(set(e) - set(f))[:3]:
            problems.append(f"{module}.{name} missing")
        for name in sorted(set(f) - set(e))[:3]:
            problems.append(f"{module}.{name} unexpected")
        for name in sorted(set(e) & set(f)):
            if list(e[name]) != list(f[name]):
                problems.append(f"{module}.{name} has shape {list(f[name])}, {what} says {list(e[name])}")
    if problems:
        shown = "; ".join(problems[:6]) + (f"; and {len(problems) - 6} more" if len(problems) > 6 else "")
        raise CheckpointError(f"the weights do not match {what}: {shown}", where=where,
                              fix="keep the weights file with the model card it was saved with (retrain or copy the "
                              "whole generator folder)")


def save_weights(directory: str | os.PathLike[str], *, family: str, state: Mapping[str, Mapping[str, torch.Tensor]],
                 extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Write a generator's network weights (CPU tensors) and return the model-card entry that binds them.

    Args:
        directory: the generator folder.
        family: generator family (stored in the file and checked on load).
        state: ``{module name: state_dict}``.
        extra: further plain values to store beside the weights.

    Returns:
        ``{"file", "sha256", "family", "tensors"}`` for the model card.
    """
    cpu = {m: {k: v.detach().to("cpu").clone() for k, v in sd.items()} for m, sd in state.items()}
    path = save_checkpoint(Path(directory) / WEIGHTS_FILE, {"family": family, "modules": cpu,
                                                            "extra": dict(extra or {})})
    return {"file": WEIGHTS_FILE, "sha256": file_sha256(path), "family": family, "tensors": tensor_spec(cpu)}


def load_weights(directory: str | os.PathLike[str], card_entry: Mapping[str, Any], *, family: str,
                 expected: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """Load weights saved by :func:`save_weights`, checking them against the model card (and the networks).

    Args:
        directory: the generator folder.
        card_entry: the ``weights`` entry of the model card.
        family: the family that is loading (must match card and file).
        expected: tensor spec of freshly built networks (from the card's config), checked too.

    Returns:
        ``{"modules": {name: state_dict}, "extra": {...}}``.

    Raises:
        CheckpointError: unsafe file, wrong family, changed file (hash), or tensor names/shapes that differ.
    """
    if not isinstance(card_entry, Mapping) or "file" not in card_entry:
        raise CheckpointError("the model card does not describe a weights file", where=str(directory),
                              fix="re-save the generator with this version")
    name = str(card_entry["file"])
    if Path(name).name != name:
        raise CheckpointError(f"the model card names a weights file outside its folder ({name!r})",
                              where=str(directory), fix="the card was edited; use the folder as it was saved")
    path = Path(directory) / name
    if card_entry.get("family") != family:
        raise CheckpointError(f"the model card's weights are for family {card_entry.get('family')!r}, not {family!r}",
                              where=str(path))
    data = load_checkpoint(path)
    if data.get("family") != family:
        raise CheckpointError(f"the weights file belongs to family {data.get('family')!r}, the card says {family!r}",
                              where=str(path), fix="keep each weights file with its own model card")
    sha = card_entry.get("sha256")
    if sha and file_sha256(path) != sha:
        raise CheckpointError("the weights file changed after its model card was written (SHA-256 differs)",
                              where=str(path), fix="restore the original weights file, or retrain and save again")
    modules = data.get("modules")
    if not isinstance(modules, dict) or not all(isinstance(sd, dict) for sd in modules.values()):
        raise CheckpointError("the weights file holds no module state dicts", where=str(path))
    found = tensor_spec(modules)
    check_tensor_spec(card_entry.get("tensors", {}), found, where=str(path), what="the model card")
    if expected is not None:
        check_tensor_spec(expected, found, where=str(path), what="the networks built from the card's config")
    return {"modules": modules, "extra": dict(data.get("extra", {}))}
