"""A new run folder is all or nothing until its first checkpoint.

:class:`NewRun` guards the start of a new training run: when an error (or a second Ctrl-C) ends it before a
checkpoint is saved, the entries the run created (``config.toml``, ``log.csv``, ``eval.csv``,
``losses.png``, ``tensorboard/``, an empty ``checkpoints/``) are removed again, and the run folder itself
when the run created it and it is then empty. Only those names, and only when they were not there before the
run started: a file of the user's is never touched. Once a checkpoint exists the folder is a run that
``--resume`` continues, and everything is kept.
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

from frmask.train.checkpoint import checkpoint_dir, list_checkpoints

__all__ = ["RUN_ENTRIES", "NewRun"]

RUN_ENTRIES = ("config.toml", "log.csv", "eval.csv", "losses.png", "tensorboard", "checkpoints")
"""What a run writes into its folder (besides frmask's own hidden temporaries)."""


def _discard(out: Path, existed: bool, before: set[str]) -> None:
    if not out.is_dir() or list_checkpoints(out):
        return
    for name in RUN_ENTRIES:
        path = out / name
        if name in before or not (path.exists() or path.is_symlink()):
            continue
        if path.is_dir() and not path.is_symlink():
            if path == checkpoint_dir(out):
                with contextlib.suppress(OSError):
                    path.rmdir()  # only when empty: a stray file in it stays
            else:
                shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    if not existed:
        with contextlib.suppress(OSError):
            out.rmdir()  # only when empty


class NewRun:
    """The state of ``out`` before a new run starts; :meth:`discard` removes what the run added to it when
    it holds no checkpoint yet (call it from the run's error path, then re-raise). ``active=False`` (a
    resumed run, or a process other than rank 0) makes :meth:`discard` do nothing."""

    def __init__(self, out, *, active: bool = True):
        self.out, self.active = Path(out), active
        self.existed = self.out.is_dir()
        self.before = {name for name in RUN_ENTRIES if (self.out / name).exists()} if self.existed else set()

    def discard(self) -> None:
        if self.active:
            _discard(self.out, self.existed, self.before)
