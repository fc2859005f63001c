"""Tests of pdr_tf.model.optimizers.ScaledAdamW: per-network learning-rate multipliers and how long they hold."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from pdr_tf.model import optimizers

LR = 1e-2


class _TwoNets(keras.Model):
  """One scalar weight in a 'depth_net' and one in an 'albedo_net', as the de-renderer names its networks."""

  def __init__(self):
    super().__init__()
    self.depth_net = keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros", name="depth_net")
    self.albedo_net = keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros", name="albedo_net")
    self.depth_net.build((None, 1))
    self.albedo_net.build((None, 1))


def _step_sizes(optimizer, steps):
  """Per step, how far each network's weight moved under a constant gradient of 1 (Adam moves ~lr * multiplier)."""
  model = _TwoNets()
  variables = [model.depth_net.kernel, model.albedo_net.kernel]
  moves = []
  for _ in range(steps):
    before = [v.numpy().item() for v in variables]
    optimizer.apply_gradients([(tf.ones_like(v), v) for v in variables])
    moves.append([abs(v.numpy().item() - b) for v, b in zip(variables, before)])
  return np.array(moves)


def _adam(**kwargs):
  return optimizers.ScaledAdamW(learning_rate=LR, weight_decay=0.0, epsilon=1e-8, **kwargs)


def test_a_multiplier_scales_its_networks_step_only():
  moves = _step_sizes(_adam(lr_multipliers={"depth_net": 0.1}), 3)
  np.testing.assert_allclose(moves[:, 0], 0.1 * LR, rtol=1e-3)
  np.testing.assert_allclose(moves[:, 1], LR, rtol=1e-3)


def test_the_multipliers_hold_for_multiplier_steps_then_every_network_trains_at_the_base_rate():
  moves = _step_sizes(_adam(lr_multipliers={"depth_net": 0.1}, multiplier_steps=2), 4)
  np.testing.assert_allclose(moves[:2, 0], 0.1 * LR, rtol=1e-3)
  np.testing.assert_allclose(moves[2:, 0], LR, rtol=1e-3)
  np.testing.assert_allclose(moves[:, 1], LR, rtol=1e-3)
  assert _adam(multiplier_steps=2).get_config()["multiplier_steps"] == 2


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "100"])
def test_bad_multiplier_steps_are_refused(bad):
  with pytest.raises(ValueError, match="multiplier_steps"):
    _adam(lr_multipliers={"depth_net": 0.1}, multiplier_steps=bad)


@pytest.mark.parametrize("bad", [0, -0.5, True, "0.1"])
def test_bad_multipliers_are_refused(bad):
  with pytest.raises(ValueError, match="depth_net"):
    _adam(lr_multipliers={"depth_net": bad})
