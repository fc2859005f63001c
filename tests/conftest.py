"""Shared pytest set-up: quiet TensorFlow, CPU only, deterministic seeds, gin cleared after every test."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import gin  # pylint: disable=wrong-import-position
import numpy as np  # pylint: disable=wrong-import-position
import pytest  # pylint: disable=wrong-import-position


def pytest_configure(config):
  config.addinivalue_line("markers", "slow: end-to-end tests taking more than ~20 s (still run in CI)")


@pytest.fixture
def rng():
  return np.random.RandomState(0)


@pytest.fixture(autouse=True)
def _no_gin_leaks():
  """Clears gin after every test: configurables such as Renderer and SceneRanges read bindings at construction, so
  settings parsed by one test would otherwise change the defaults of the next test in the same worker."""
  yield
  gin.clear_config()
