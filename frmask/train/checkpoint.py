"""Training checkpoints: atomic ``torch.save`` files in ``RUN/checkpoints/step_NNNNNNNN.pt``.

A checkpoint is a dict with ``format`` = :data:`FORMAT`, ``version``, ``step`` (steps completed),
``config`` (:meth:`TrainConfig.to_dict`), ``num_classes``, ``backbone`` and ``head`` (state dicts, no
``module.`` prefix), ``optimizer``, ``scheduler``, ``lambda`` (the distillation schedule's dict), ``scaler``
(the float16 GradScaler's state; empty otherwise), ``log_interval`` (``sums``, ``count``, ``seconds``: the
running CE / KD sums, step count and time of the log interval under way, averaged over the processes, so the
first ``log.csv`` row after a resume equals an uninterrupted run's), ``rng``
(a list with one entry per process: torch CPU / CUDA, numpy and python ``random`` states) and
``world_size``. Everything is tensors and plain Python values, so checkpoints load with
``torch.load(weights_only=True)`` (no arbitrary code runs when reading one). Writing goes to a temporary file beside the target, then ``os.replace`` (never a partial
file); only the newest ``keep`` checkpoints are kept. A save first removes the stale temporary files a killed
save left in ``checkpoints/`` (the rule of :mod:`frmask._temps`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from frmask._atomic import atomic_path
from frmask._temps import remove_stale_temps

__all__ = ["FORMAT", "VERSION", "checkpoint_dir", "checkpoint_path", "list_checkpoints", "latest_checkpoint",
           "resolve_checkpoint", "save_checkpoint", "load_checkpoint", "rng_state", "set_rng_state"]

FORMAT = "frmask-train-checkpoint"
VERSION = 1
_NAME = re.compile(r"^step_(\d+)\.pt$")


def checkpoint_dir(run: str | Path) -> Path:
    return Path(run) / "checkpoints"


def checkpoint_path(run: str | Path, step: int) -> Path:
    return checkpoint_dir(run) / f"step_{step:08d}.pt"


def list_checkpoints(run: str | Path) -> list[tuple[int, Path]]:
    """``(step, path)`` of the run's checkpoints, oldest first."""
    folder = checkpoint_dir(run)
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        match = _NAME.match(path.name)
        if match and path.is_file():
            found.append((int(match.group(1)), path))
    return sorted(found)


def latest_checkpoint(run: str | Path) -> Path | None:
    found = list_checkpoints(run)
    return found[-1][1] if found else None


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint file, or a run folder's latest checkpoint; FileNotFoundError naming what is missing."""
    path = Path(path).expanduser()
    if path.is_dir():
        latest = latest_checkpoint(path)
        if latest is None:
            raise FileNotFoundError(f"run folder {path} has no checkpoint (expected {checkpoint_dir(path)}/"
                                    f"step_*.pt)")
        return latest
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint or run folder not found: {path}")
    return path


def save_checkpoint(run: str | Path, step: int, state: dict[str, Any], keep: int = 3) -> Path:
    """Write ``state`` (plus format, version and step) atomically; prune to the newest ``keep`` (0: all)."""
    import torch

    path = checkpoint_path(run, step)
    remove_stale_temps(path.parent, _NAME.match)  # what a kill -9 while saving any step left (frmask._temps)
    payload = {"format": FORMAT, "version": VERSION, "step": int(step), **state}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    if keep > 0:
        for _, old in list_checkpoints(run)[:-keep]:
            old.unlink(missing_ok=True)
    return path


def load_checkpoint(path: str | Path, map_location="cpu") -> dict[str, Any]:
    """A checkpoint written by :func:`save_checkpoint`; ValueError naming the file when it is not one."""
    import pickle

    import torch

    path = resolve_checkpoint(path)
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as exc:
        first = re.sub(r"\x1b\[[0-9;]*m", "", (str(exc).strip().splitlines() or [""])[0]).rstrip(". ")
        raise ValueError(f"{path}: not a readable checkpoint ({type(exc).__name__}: {first}; only tensors and "
                         f"plain values are loaded)") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{path}: not an frmask training checkpoint (no format={FORMAT!r} entry)")
    if data.get("version", 0) > VERSION:
        raise ValueError(f"{path}: checkpoint version {data.get('version')} is newer than this frmask "
                         f"reads ({VERSION})")
    data["path"] = str(path)
    return data


def rng_state() -> dict[str, Any]:
    """This process's random states: torch CPU (and CUDA when initialised), numpy global, python ``random``."""
    import random

    import numpy as np
    import torch

    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"torch": torch.get_rng_state(),
             "numpy": {"name": str(name), "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
             "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    import random

    import numpy as np
    import torch

    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
