"""Hooks for the trainer's tests."""

import os
import signal


def ctrl_c_after(step: int):
    """An ``on_step`` hook of :func:`frmask.train.loop.train` that sends this process a real SIGINT (Ctrl-C)
    once ``step`` steps are done: the run checkpoints and stops there, as when a user interrupts it."""

    def hook(done, trainer):
        if done == step:
            os.kill(os.getpid(), signal.SIGINT)

    return hook
