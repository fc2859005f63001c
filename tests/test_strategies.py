"""Tests for pdr_tf.training.strategies: strategy choice, chief detection from TF_CONFIG, per-worker folders."""

import json

import pytest
import tensorflow as tf

from pdr_tf.training import strategies


def test_default_and_auto_on_a_cpu_machine():
  assert strategies.make_strategy("default") is tf.distribute.get_strategy()
  if not tf.config.list_logical_devices("GPU"):
    assert strategies.make_strategy("auto") is tf.distribute.get_strategy()


def test_unknown_strategy_and_multi_worker_without_tf_config(monkeypatch):
  with pytest.raises(ValueError, match="Unknown strategy 'nope'"):
    strategies.make_strategy("nope")
  monkeypatch.delenv("TF_CONFIG", raising=False)
  with pytest.raises(ValueError, match="TF_CONFIG"):
    strategies.make_strategy("multi_worker")


@pytest.mark.parametrize(
  "config, chief",
  [
    (None, True),
    ({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 0}}, True),
    ({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}}, False),
    ({"cluster": {"chief": ["c:0"], "worker": ["a:1"]}, "task": {"type": "worker", "index": 0}}, False),
    ({"cluster": {"chief": ["c:0"], "worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}, True),
  ],
)
def test_chief_from_environment(monkeypatch, config, chief):
  if config is None:
    monkeypatch.delenv("TF_CONFIG", raising=False)
  else:
    monkeypatch.setenv("TF_CONFIG", json.dumps(config))
  assert strategies.is_chief_from_environment() is chief


def test_the_chief_writes_in_place():
  strategy = tf.distribute.get_strategy()
  assert strategies.task_info(strategy) == ("chief", 0) and strategies.is_chief(strategy)
  assert strategies.worker_dir("/some/checkpoints", strategy) == "/some/checkpoints"
