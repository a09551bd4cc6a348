"""Shared test configuration.

Hypothesis explores new examples on every run; under CI (CI set in the environment) it is derandomized so
that a run is reproducible: the same examples every time.
"""

import os
import sys
from pathlib import Path

import pytest
from hypothesis import settings

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/oracles.py

settings.register_profile("ci", derandomize=True, deadline=None)
if os.environ.get("CI"):
    settings.load_profile("ci")


def pytest_configure(config):
    """Keep the test run's caches out of the user's home: the prepared-template cache goes to a temporary
    folder unless the caller chose one (FRMASK_TEMPLATE_CACHE)."""
    import tempfile

    if "FRMASK_TEMPLATE_CACHE" not in os.environ:
        os.environ["FRMASK_TEMPLATE_CACHE"] = tempfile.mkdtemp(prefix="frmask-template-cache-")
    if "FRMASK_CACHE" not in os.environ:
        os.environ["FRMASK_CACHE"] = os.path.join(tempfile.mkdtemp(prefix="frmask-cache-"), "embeddings.sqlite")


@pytest.fixture(scope="module")
def two_torch_threads():
    """At most two torch threads for a module's tests (as on CI), the previous setting restored after."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    yield
    torch.set_num_threads(old)
