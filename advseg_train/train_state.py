"""Training checkpoints: atomic writes, code-free loading, RNG states as plain tensors/lists.

A checkpoint is a ``torch.save`` of a dict holding only tensors, numbers, strings, lists and
dicts, so it loads with ``torch.load(weights_only=True)``. It is written to a temporary file
next to the target, flushed and fsynced, then renamed over the target (``os.replace``): a
process killed at any moment leaves either the previous file or the new one, never a torn one.

Layout (``advseg_format = "train-checkpoint/1"``)::

    {"advseg_format", "config": {...}, "position": {"epoch", "iter", "global_step"},
     "model": {"nets", "optimizers", "schedulers", "scaler", "pools"},
     "rng": {"torch", "cuda", "numpy", "python"},
     "generator": {"name": "G_A" | "G", "config": GeneratorConfig dict}}
"""

from __future__ import annotations

import io
import os
import random
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from advseg_sdk.files import atomic_path

__all__ = [
    "FORMAT",
    "CheckpointLoadError",
    "rng_state",
    "set_rng_state",
    "save_checkpoint",
    "load_checkpoint",
]

FORMAT = "train-checkpoint/1"


class CheckpointLoadError(ValueError):
    """A checkpoint is missing, unreadable or not ours; the message names the file."""


def rng_state() -> dict[str, Any]:
    """torch (CPU + every CUDA device), numpy and Python RNG states, as tensors and numbers."""
    np_state = np.random.get_state()
    assert isinstance(np_state, tuple)  # the legacy form: ("MT19937", keys, pos, has_gauss, cached)
    py_version, py_internal, py_gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": {
            "version": int(py_version),
            "internal": torch.tensor(py_internal, dtype=torch.int64),
            "gauss_next": py_gauss,
        },
    }


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    torch.set_rng_state(state["torch"].cpu())
    cuda = list(state.get("cuda") or [])
    if cuda and torch.cuda.is_available():
        n = min(len(cuda), torch.cuda.device_count())
        torch.cuda.set_rng_state_all([s.cpu() for s in cuda[:n]])
    n = state["numpy"]
    np.random.set_state(
        ("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    p = state["python"]
    random.setstate((p["version"], tuple(int(v) for v in p["internal"].tolist()), p["gauss_next"]))


def save_checkpoint(path: str | os.PathLike, state: Mapping[str, Any], sleep_s: float = 0.0) -> Path:
    """Write ``state`` atomically to ``path``.

    ``sleep_s`` (a debug hook for kill tests) pauses half-way through writing the bytes of the
    temporary file, so a test can kill the process mid-write."""
    path = Path(path)
    state = {"advseg_format": FORMAT, **state}
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            if sleep_s > 0:
                buf = io.BytesIO()
                torch.save(state, buf)
                data = buf.getbuffer()
                half = len(data) // 2
                f.write(data[:half])
                f.flush()
                time.sleep(sleep_s)
                f.write(data[half:])
            else:
                torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a training checkpoint without executing code (``weights_only=True``)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointLoadError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # truncated zip, foreign pickle, ...
        raise CheckpointLoadError(
            f"checkpoint {path} cannot be read safely ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); "
            "it may be truncated or not an advseg training checkpoint"
        ) from None
    if not isinstance(state, dict) or state.get("advseg_format") != FORMAT:
        found = state.get("advseg_format") if isinstance(state, dict) else type(state).__name__
        raise CheckpointLoadError(f"{path} is not an advseg training checkpoint ({FORMAT}); found {found!r}")
    return state
