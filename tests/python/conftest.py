"""Shared fixtures of the libvib package's tests (tests/python).

Run with `make check-python`, or from the repository's root:
    PYTHONPATH=python LIBVIB_PATH=lib/libvib.so.0 /usr/bin/python3 -m pytest -q tests/python
"""

import os
import sys

import numpy as np
import pytest

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
if os.path.join(ROOT, "python") not in sys.path:
    sys.path.insert(0, os.path.join(ROOT, "python"))

import libvib  # noqa: E402

# A tiny problem: 24 rows of 6 inputs, 3 classes.
IN, K, CLASSES, N = 6, 3, 3, 24


@pytest.fixture
def data():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((N, IN)).astype(np.float32)
    y = (np.arange(N) % CLASSES).astype(np.int32)
    return x, y


@pytest.fixture
def model():
    m = libvib.Model(IN, K, CLASSES, encoder=(8,), seed=7)
    yield m
    m.close()
