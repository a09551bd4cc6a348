"""Shared test configuration.

Hypothesis explores new examples on every run; under CI (CI set in the environment) it is derandomized so
that a run is reproducible: the same examples every time.
"""

import os
import sys
from pathlib import Path

from hypothesis import settings

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/oracles.py

settings.register_profile("ci", derandomize=True, deadline=None)
if os.environ.get("CI"):
    settings.load_profile("ci")
