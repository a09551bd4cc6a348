"""frmask: masked face recognition evaluation.

Subpackages are imported lazily so that ``import frmask`` and the ``frmask`` command stay fast:
``frmask.metrics`` (ISO/IEC 19795-1 verification metrics) and ``frmask.io`` (file formats).
"""

from importlib import import_module

from frmask._version import __version__

__all__ = ["__version__", "metrics", "io"]

_SUBPACKAGES = {"metrics", "io", "faces", "synth"}


def __getattr__(name):
    if name in _SUBPACKAGES:
        return import_module(f"frmask.{name}")
    raise AttributeError(f"module 'frmask' has no attribute {name!r}")
