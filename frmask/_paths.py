"""How two paths relate: the same file (through symlinks, hard links, ``..``), or one inside the other.

Used to refuse an output that would overwrite, or sit inside, the input it is made from.
"""

from __future__ import annotations

import os
from pathlib import Path


def same_file(a, b) -> bool:
    """Whether ``a`` and ``b`` name the same file or folder: the same inode when both exist (symlinks and hard
    links included), else the same resolved path."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return Path(a).resolve() == Path(b).resolve()


def is_inside(child, parent) -> bool:
    """Whether ``child`` is ``parent`` or lies somewhere below it (each existing ancestor of ``child`` is
    compared with ``parent`` by inode, so symlinked and bind-mounted spellings count too)."""
    child = Path(os.path.abspath(child))
    return any(same_file(p, parent) for p in (child, *child.parents))


def refuse_same(output, input_, what: str = "input") -> None:
    """ValueError when writing ``output`` would overwrite ``input_`` (the same file, however spelled)."""
    if os.path.lexists(output) and same_file(output, input_):
        raise ValueError(f"{output}: this output is the {what} {input_} itself; choose another output path")


def refuse_nested(output, input_, what: str = "input") -> None:
    """ValueError when the output folder ``output`` is the folder ``input_``, lies inside it or holds it."""
    if is_inside(output, input_):
        raise ValueError(f"{output}: the output folder must not be the {what} folder {input_} or lie inside it")
    if is_inside(input_, output):
        raise ValueError(f"{output}: the output folder must not hold the {what} folder {input_} (replacing it "
                         f"would delete the {what})")
