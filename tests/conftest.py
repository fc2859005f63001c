"""Shared pytest set-up: quiet TensorFlow, CPU only, deterministic seeds, gin cleared after every test."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

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


# Test modules whose module-scoped fixture takes 10-40 s (a generated world, an exported model). pytest-xdist builds a
# module's fixture on every worker that runs one of its tests; these modules run whole on one worker instead, so the
# fixture is built once. (xdist's `--dist loadgroup` would do this with marks, but under pytest 9.2 it groups nothing:
# it renames `item._nodeid`, which pytest 9.2's nodes no longer read.)
SHARED_FIXTURE_MODULES = frozenset(
  f"tests/{name}.py" for name in ("test_synthetic", "test_exported_derender", "test_diagnostics", "test_scene_stats")
)


def scheduling_scope(nodeid: str) -> str:
  """The unit of work a test is scheduled in: its module for SHARED_FIXTURE_MODULES, else the test alone."""
  module = nodeid.split("::", 1)[0]
  return module if module in SHARED_FIXTURE_MODULES else nodeid


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
  """pytest.ini's default distribution ("load") with SHARED_FIXTURE_MODULES kept whole; None (xdist's own scheduler)
  for any other --dist a user asks for."""
  if config.getvalue("dist") != "load":
    return None
  from xdist.scheduler import LoadScopeScheduling  # pylint: disable=import-outside-toplevel

  class Scheduling(LoadScopeScheduling):
    def _split_scope(self, nodeid):
      return scheduling_scope(nodeid)

  config.option.loadscopereorder = False  # keep the collection order, the `longest` tests first
  return Scheduling(config, log)


@pytest.fixture
def rng():
  return np.random.RandomState(0)


@pytest.fixture(scope="session", autouse=True)
def _kernel_cache_in_tmp(tmp_path_factory):
  """Builds the tfg kernel into this session's temporary folder instead of the user's cache (~/.cache/pdr_tf): the
  tests write nothing outside their temporary folders, and every session goes through the build (about 5 s per
  xdist worker). A PDR_TF_CACHE_DIR set by the user is kept; subprocesses inherit the setting."""
  if os.environ.get("PDR_TF_CACHE_DIR"):
    yield
    return
  os.environ["PDR_TF_CACHE_DIR"] = str(tmp_path_factory.mktemp("pdr_tf_cache"))
  yield
  del os.environ["PDR_TF_CACHE_DIR"]


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
