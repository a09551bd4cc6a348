"""frmask's one interface to ``torch.distributed``: several processes (``torchrun``), one answer.

Under ``torchrun --nproc-per-node K [--nnodes N ...]`` every process has the environment variables
``RANK`` (0 .. WORLD_SIZE-1, over all nodes), ``WORLD_SIZE`` and ``LOCAL_RANK`` (the process's index on its
node, which picks its GPU). Without them frmask runs as one process (rank 0 of 1) and nothing here talks
to another process.

- :func:`env` reads the three variables (ValueError naming the variable for a bad value).
- :func:`start` / :func:`process_group` initialise the default process group when ``WORLD_SIZE > 1`` and
  it is not initialised yet (``nccl`` for a CUDA device, ``gloo`` otherwise) plus a ``gloo`` side group
  for the CPU-side collectives below, and destroy what they created, and only that, at the end.
- :func:`shard` is the share of ``n`` items (images, comparison blocks) of one rank: a contiguous block
  or, interleaved, every ``world``-th item; the shares of all ranks partition ``range(n)``.
- :func:`gather_objects`, :func:`gather_arrays` collect one value per rank on every rank (rank order).
- :func:`checked` runs a step on every rank and then lets every rank know whether any rank failed: when
  one did, every rank raises that error (the lowest failing rank's, prefixed ``rank R:``), so a failure on
  one rank ends all of them instead of leaving the others waiting in the next collective.
  :func:`on_main` is the same for work only rank 0 does (writing the run folder): the others wait and
  get its outcome.

With one process every function here is the plain single-process computation: no group, no pickling.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

_ERRORS = {"ValueError": ValueError, "OSError": OSError}


@dataclass(frozen=True)
class Env:
    """This process's place among the processes torchrun started (rank 0 of 1 without torchrun)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0


def env() -> Env:
    """``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` from the environment (defaults 0, 1, 0); ValueError when one is
    not an integer, ``WORLD_SIZE < 1``, ``RANK`` outside ``0 .. WORLD_SIZE-1`` or ``LOCAL_RANK < 0``."""

    def get(name: str, default: int) -> int:
        text = os.environ.get(name)
        try:
            return default if text is None or text == "" else int(text)
        except ValueError:
            raise ValueError(f"environment variable {name}={text!r} is not an integer") from None

    rank, world, local = get("RANK", 0), get("WORLD_SIZE", 1), get("LOCAL_RANK", 0)
    if world < 1:
        raise ValueError(f"environment variable WORLD_SIZE={world} must be at least 1")
    if not 0 <= rank < world:
        raise ValueError(f"environment variable RANK={rank} must be in 0 .. WORLD_SIZE-1 = {world - 1}")
    if local < 0:
        raise ValueError(f"environment variable LOCAL_RANK={local} must not be negative")
    return Env(rank, world, local)


class Session:
    """The processes of one run: ``rank``, ``world``, ``local_rank``, the gloo side group ``ctrl`` (None for
    one process). :func:`start` makes it; :meth:`close` destroys what it created."""

    def __init__(self, where: Env, ctrl, created: bool) -> None:
        self.rank, self.world, self.local_rank = where.rank, where.world, where.local_rank
        self.ctrl = ctrl
        self._created = created
        self._previous = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def side_group(self):
        """A new gloo group of all ranks (every rank must call it, in the same order), or None for one process."""
        if self.world == 1:
            return None
        import torch.distributed as dist

        return dist.new_group(backend="gloo")

    def close(self) -> None:
        """Destroy the process group if :func:`start` created it; forget this session."""
        global _current
        if _current is self:
            _current = self._previous
        if self._created:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()
            self._created = False


_current: Session | None = None


def start(device=None) -> Session:
    """Join the processes of this run (module docstring); ``device`` (a torch device or its name, or
    ``"auto"``: ``cuda:LOCAL_RANK`` when torch has CUDA; plain ``"cuda"``: ``cuda:LOCAL_RANK``): a CUDA device
    torch can use makes the default group nccl (and is made the current CUDA device), anything else (None: the
    CPU) gloo."""
    global _current
    where = env()
    created = False
    ctrl = None
    if where.world > 1:
        import torch
        import torch.distributed as dist

        if not dist.is_initialized():
            if device == "auto":
                device = f"cuda:{where.local_rank}" if torch.cuda.is_available() else "cpu"
            dev = torch.device(device) if device is not None else torch.device("cpu")
            if dev.type == "cuda" and not torch.cuda.is_available():  # e.g. onnxruntime's CUDA, torch's CPU build
                dev = torch.device("cpu")
            if dev.type == "cuda" and dev.index is None:  # plain "cuda": the GPU of this process on its node
                dev = torch.device("cuda", where.local_rank)
            if dev.type == "cuda":
                torch.cuda.set_device(dev)
            dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
            created = True
        ctrl = dist.new_group(backend="gloo")
    session = Session(where, ctrl, created)
    session._previous = _current
    _current = session
    return session


@contextmanager
def process_group(device=None) -> Iterator[Session]:
    """:func:`start` for a ``with`` block; the group it created is destroyed when the block ends."""
    session = start(device)
    try:
        yield session
    finally:
        session.close()


def current() -> Session | None:
    """The innermost session :func:`start` began and did not close yet (None outside any)."""
    return _current


def rank() -> int:
    return _current.rank if _current is not None else 0


def world_size() -> int:
    """How many processes share the work of the current session (1 outside one)."""
    return _current.world if _current is not None else 1


def is_main() -> bool:
    """True on rank 0 (and outside any session): the process that writes files and prints."""
    return rank() == 0


def barrier() -> None:
    """Wait until every rank of the current session gets here (nothing for one process)."""
    if world_size() > 1:
        import torch.distributed as dist

        dist.barrier(group=_current.ctrl)


def shard(n: int, rank: int, world: int, *, interleaved: bool = False) -> range:
    """The items of ``range(n)`` rank ``rank`` of ``world`` handles: the contiguous block
    ``[n * rank // world, n * (rank + 1) // world)`` (sizes differ by at most one; in rank order the blocks
    are ``range(n)``), or, ``interleaved``, ``rank, rank + world, ...`` (for items of unequal cost in order,
    such as the blocks of a triangle)."""
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"rank {rank} of {world} processes: expected 0 <= rank < world")
    if n < 0:
        raise ValueError(f"cannot shard {n} items")
    if interleaved:
        return range(rank, n, world)
    return range(n * rank // world, n * (rank + 1) // world)


def my_shard(n: int, *, interleaved: bool = False) -> range:
    """:func:`shard` for this process in the current session (``range(n)`` for one process)."""
    return shard(n, rank(), world_size(), interleaved=interleaved)


def gather_objects(obj: Any) -> list:
    """Every rank's ``obj`` (picklable), in rank order, on every rank (``[obj]`` for one process)."""
    if world_size() == 1:
        return [obj]
    import torch.distributed as dist

    out: list = [None] * world_size()
    dist.all_gather_object(out, obj, group=_current.ctrl)
    return out


def gather_arrays(array: np.ndarray) -> list[np.ndarray]:
    """Every rank's numpy ``array`` (any length; the other dimensions and the dtype must agree), in rank
    order, on every rank: an all_gather of the raw values over the gloo group (no pickling of the data)."""
    array = np.ascontiguousarray(array)
    if world_size() == 1:
        return [array]
    import torch
    import torch.distributed as dist

    shapes = gather_objects((array.shape, array.dtype.str))
    if len({(s[1:], d) for s, d in shapes}) != 1:
        raise ValueError(f"gather_arrays: ranks disagree on the shape or dtype: {shapes}")
    sizes = [int(np.prod(s, dtype=np.int64)) for s, _ in shapes]
    raw = array.view(np.uint8).reshape(-1) if array.size else np.zeros(0, np.uint8)
    width = max(sizes) * array.dtype.itemsize
    mine = torch.zeros(max(width, 1), dtype=torch.uint8)
    mine[:raw.size] = torch.from_numpy(raw if raw.flags.writeable else raw.copy())
    parts = [torch.empty_like(mine) for _ in sizes]
    dist.all_gather(parts, mine, group=_current.ctrl)
    del mine
    # views of the received buffers (they stay alive with them): no second copy of everything
    return [p.numpy()[:size * array.dtype.itemsize].view(array.dtype).reshape(shape)
            for p, size, (shape, _) in zip(parts, sizes, shapes)]


def all_mean(tensor):
    """The mean of a torch ``tensor`` over the ranks (an all_reduce on the default group, so on the
    tensor's device; a copy of it for one process)."""
    values = tensor.clone()
    if world_size() > 1:
        import torch.distributed as dist

        dist.all_reduce(values)
        values /= world_size()
    return values


def checked(step: Callable[[], Any]) -> Any:
    """Run ``step()`` on this rank and return its result, once every rank has finished its own: when any
    rank's step raised, every rank raises the error of the lowest such rank (ValueError and OSError keep
    their type, other errors become RuntimeError; message ``rank R: ...``). Every rank must call it.
    With one process: ``step()``, its errors untouched."""
    if world_size() == 1:
        return step()
    try:
        result, failure = step(), None
    except Exception as exc:  # noqa: BLE001 -- sent to every rank, raised there
        result, failure = None, (type(exc), str(exc))
    outcomes = gather_objects(None if failure is None else (_kind(failure[0]), failure[1]))
    for r, outcome in enumerate(outcomes):
        if outcome is not None:
            kind, message = outcome
            raise _ERRORS.get(kind, RuntimeError)(f"rank {r}: {message}")
    return result


def on_main(step: Callable[[], Any]) -> Any:
    """Run ``step()`` on rank 0 only (e.g. write the run folder); the other ranks wait for it and raise its
    error when it failed (:func:`checked`). Returns the result on rank 0, None on the others."""
    main = is_main()
    return checked(lambda: step() if main else None)


def _kind(cls: type) -> str:
    for name, base in _ERRORS.items():
        if issubclass(cls, base):
            return name
    return cls.__name__
