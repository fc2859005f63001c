"""The suite's xdist scheduling (conftest.py): modules with an expensive module-scoped fixture run whole on one
worker, every other test is its own unit of work."""

import os

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
