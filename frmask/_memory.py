"""How much memory this process may still allocate, and a clear refusal when a job would not fit.

The limit is the smallest of: the kernel's ``MemAvailable`` estimate, the room left under the process's
cgroup memory limit (v2 ``memory.max``, v1 ``memory.limit_in_bytes``), and the room left under the address
space and data rlimits (``ulimit -v`` / ``-d``). Any of them that cannot be read is ignored; with none
readable the answer is None (unknown, nothing is refused).
"""

from __future__ import annotations

import os
from pathlib import Path

GIB = 1 << 30


def _read_int(path) -> int | None:
    try:
        text = Path(path).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _meminfo(key: str) -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_room() -> int | None:
    """Bytes left under this process's cgroup memory limit, or None when unlimited or unknown."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, rel = parts
        rel = rel.lstrip("/")
        if controllers == "":  # cgroup v2
            base = Path("/sys/fs/cgroup") / rel
            limit, used = _read_int(base / "memory.max"), _read_int(base / "memory.current")
        elif "memory" in controllers.split(","):
            base = Path("/sys/fs/cgroup/memory") / rel
            limit, used = _read_int(base / "memory.limit_in_bytes"), _read_int(base / "memory.usage_in_bytes")
        else:
            continue
        if limit is not None and used is not None and limit < 1 << 60:
            return max(limit - used, 0)
    return None


def _rlimit_room() -> int | None:
    try:
        import resource
    except ImportError:  # pragma: no cover - not on Linux
        return None
    rooms = []
    size = None
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            size = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        pass
    for which in (resource.RLIMIT_AS, getattr(resource, "RLIMIT_DATA", None)):
        if which is None:
            continue
        soft, _ = resource.getrlimit(which)
        if soft != resource.RLIM_INFINITY and size is not None:
            rooms.append(max(soft - size, 0))
    return min(rooms) if rooms else None


def available_memory() -> int | None:
    """Bytes this process can still allocate (the module docstring's minimum), or None when unknown."""
    known = [v for v in (_meminfo("MemAvailable"), _cgroup_room(), _rlimit_room()) if v is not None]
    return min(known) if known else None


def format_bytes(n: float) -> str:
    """1.23 GB / 456 MB / 12 kB (decimal units, as people read them)."""
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{int(n)} bytes"


def require_memory(needed: int, what: str) -> None:
    """Raise a ValueError naming ``what`` when ``needed`` bytes would not fit (the check happens before any
    allocation, so the user gets a sentence instead of a MemoryError or a killed process)."""
    room = available_memory()
    if room is not None and needed > room:
        raise ValueError(f"{what} needs about {format_bytes(needed)} of memory, but only {format_bytes(room)} "
                         f"is available to this process")
