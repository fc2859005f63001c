"""Shared pytest set-up: quiet TensorFlow, CPU only, deterministic seeds."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # pylint: disable=wrong-import-position
import pytest  # pylint: disable=wrong-import-position


def pytest_configure(config):
  config.addinivalue_line("markers", "slow: end-to-end tests taking more than ~20 s (still run in CI)")


@pytest.fixture
def rng():
  return np.random.RandomState(0)
