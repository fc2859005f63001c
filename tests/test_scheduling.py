"""The suite's xdist scheduling (conftest.py): modules with an expensive module-scoped fixture run whole on one
worker, every other test is its own unit of work."""

import os
import types

import conftest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_a_shared_fixture_module_is_one_unit_and_any_other_test_its_own():
  module = "tests/test_synthetic.py"
  assert module in conftest.SHARED_FIXTURE_MODULES
  assert (
    conftest.scheduling_scope(f"{module}::test_a") == conftest.scheduling_scope(f"{module}::test_b[cars]") == module
  )
  other = "tests/test_trainer.py::test_tiny_run_loss_falls"
  assert conftest.scheduling_scope(other) == other


def test_every_shared_fixture_module_exists():
  for module in conftest.SHARED_FIXTURE_MODULES:
    assert os.path.isfile(os.path.join(REPO, module)), module


class _Config:
  """The pieces of a pytest config that xdist's scheduler factory reads."""

  def __init__(self, dist):
    self.values = {"dist": dist, "tx": ["2*popen"]}
    self.option = types.SimpleNamespace()

  def getvalue(self, name):
    return self.values[name]


def test_the_default_distribution_gets_the_grouping_scheduler_in_collection_order():
  config = _Config("load")
  scheduler = conftest.pytest_xdist_make_scheduler(config, None)
  module = "tests/test_synthetic.py"
  assert scheduler._split_scope(f"{module}::test_a") == module  # pylint: disable=protected-access
  assert scheduler._split_scope("tests/test_model.py::test_b") == "tests/test_model.py::test_b"  # pylint: disable=protected-access
  assert config.option.loadscopereorder is False  # the `longest` tests stay first


def test_another_distribution_a_user_asks_for_is_left_to_xdist():
  assert conftest.pytest_xdist_make_scheduler(_Config("loadfile"), None) is None
