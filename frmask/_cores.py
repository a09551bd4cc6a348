"""How many worker processes or threads ``auto`` means: the CPU cores this process may run on."""

from __future__ import annotations

import os

__all__ = ["available_cores", "resolve_workers"]


def available_cores() -> int:
    """The cores this process may use: ``len(os.sched_getaffinity(0))`` (which honours taskset and cgroup CPU
    sets) where the platform has it, else ``os.cpu_count()``, at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def resolve_workers(value) -> int:
    """A worker count from ``"auto"`` (:func:`available_cores`) or a positive integer (or its text)."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text == "auto":
            return available_cores()
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"workers must be 'auto' or a positive integer, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"workers must be 'auto' or a positive integer, got {value!r}")
    return value
