"""Shared pytest set-up: quiet TensorFlow, CPU only, deterministic seeds, gin cleared after every test."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
# One intra-op thread per TensorFlow process: pytest runs two workers (pytest.ini), and several tests start more
# TensorFlow processes, on CI's two cores; with TensorFlow's default of one thread per core, their thread pools spin
# against each other. Inherited by every subprocess a test starts.
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import gin  # pylint: disable=wrong-import-position
import numpy as np  # pylint: disable=wrong-import-position
import pytest  # pylint: disable=wrong-import-position


def pytest_configure(config):
  config.addinivalue_line("markers", "slow: end-to-end tests taking more than ~20 s (still run in CI)")
  config.addinivalue_line("markers", "longest: the few tests of several minutes; collected first (see below)")


def pytest_collection_modifyitems(items):
  """Puts the `longest` tests first (a stable sort, the same order on every xdist worker), so that they start at
  once instead of running alone at the end while the other worker idles."""
  items.sort(key=lambda item: item.get_closest_marker("longest") is None)


@pytest.fixture
def rng():
  return np.random.RandomState(0)


@pytest.fixture(autouse=True)
def _no_gin_leaks():
  """Clears gin after every test: configurables such as Renderer and SceneRanges read bindings at construction, so
  settings parsed by one test would otherwise change the defaults of the next test in the same worker."""
  yield
  gin.clear_config()


# The small de-renderer and images that the model and objective tests share (built once per module).
@pytest.fixture(scope="module")
def tiny_model():
  import fixtures  # pylint: disable=import-outside-toplevel  (TensorFlow loads only for tests that ask)

  return fixtures.tiny_de_renderer()


@pytest.fixture(scope="module")
def images():
  import fixtures  # pylint: disable=import-outside-toplevel

  return fixtures.tiny_images()
