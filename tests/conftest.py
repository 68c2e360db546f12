"""Fixtures shared by the test files; plain helpers they import are in support.py (`from support import run`).

The repository root goes on the path so tests can import the Keras reference models that the benchmarks
use too (`benchmarks.keras_reference`): pytest puts only this folder there."""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
# remembered value checks of data files go to a folder of the test run's own, never the user's cache
os.environ["SPECC_CACHE"] = tempfile.mkdtemp(prefix="specc-cache-")

from support import import_keras  # noqa: E402  (support imports the reference module: after the path)


@pytest.fixture(scope="session")
def keras():
    """Keras on an installed backend; the test is skipped without one."""
    return import_keras()
