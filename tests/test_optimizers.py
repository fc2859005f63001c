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


def _two_steps(optimizer, weight, gradient):
  variable = keras.Variable([weight], name="w")
  for _ in range(2):
    optimizer.apply_gradients([(tf.constant([gradient]), variable)])
  return variable.numpy().item()


def test_l2_is_added_to_the_gradient_as_in_pytorch_adam():
  """PyTorch's Adam(weight_decay=c) steps on g + c w: with l2 = 0.5 a zero gradient on w = 2 is a gradient of 1,
  so Adam moves the weight toward zero by ~lr per step; the decoupled weight decay of AdamW moves it by lr c w."""
  plain = _two_steps(_adam(), 2.0, 1.0)
  coupled = _two_steps(_adam(l2=0.5), 2.0, 0.0)
  np.testing.assert_allclose(coupled, plain, rtol=1e-6)
  np.testing.assert_allclose(2.0 - coupled, 2 * LR, rtol=1e-3)
  decoupled = _two_steps(optimizers.ScaledAdamW(learning_rate=LR, weight_decay=0.5, epsilon=1e-8), 2.0, 0.0)
  assert 0.0 < 2.0 - decoupled < 2.5 * LR * 0.5 * 2.0
  assert _adam(l2=0.5).get_config()["l2"] == 0.5


def test_the_decoupled_weight_decay_uses_each_networks_own_rate():
  """With a zero gradient Adam does not move a weight, so each step only decays it: w *= 1 - lr * multiplier * wd,
  at the multiplied rate while the multipliers hold, then at the base rate."""
  model = _TwoNets()
  variables = [model.depth_net.kernel, model.albedo_net.kernel]
  for variable in variables:
    variable.assign([[2.0]])
  optimizer = optimizers.ScaledAdamW(
    learning_rate=LR, weight_decay=0.5, epsilon=1e-8, lr_multipliers={"depth_net": 0.1}, multiplier_steps=2
  )
  weights = []
  for _ in range(3):
    optimizer.apply_gradients([(tf.zeros_like(v), v) for v in variables])
    weights.append([v.numpy().item() for v in variables])
  depth, albedo = np.array(weights).T
  np.testing.assert_allclose(depth, 2.0 * np.cumprod([1 - 0.1 * LR * 0.5, 1 - 0.1 * LR * 0.5, 1 - LR * 0.5]), rtol=1e-6)
  np.testing.assert_allclose(albedo, 2.0 * (1 - LR * 0.5) ** np.arange(1, 4), rtol=1e-6)


def test_without_multipliers_the_steps_equal_keras_adamw_to_the_bit():
  gradients = np.random.RandomState(0).normal(size=(5, 3, 4)).astype(np.float32)
  weights = []
  for optimizer in (
    keras.optimizers.AdamW(learning_rate=LR, weight_decay=0.3, epsilon=1e-8),
    optimizers.ScaledAdamW(learning_rate=LR, weight_decay=0.3, epsilon=1e-8, lr_multipliers={"light_net": 2.0}),
  ):
    variable = keras.Variable(np.linspace(-1.0, 1.0, 12, dtype=np.float32).reshape(3, 4), name="w")
    for gradient in gradients:
      optimizer.apply_gradients([(tf.constant(gradient), variable)])
    weights.append(variable.numpy())
  np.testing.assert_array_equal(weights[1], weights[0])


@pytest.mark.parametrize("bad", [-1e-4, True, "5e-4"])
def test_bad_l2_is_refused(bad):
  with pytest.raises(ValueError, match="l2"):
    _adam(l2=bad)


@pytest.mark.parametrize("style", ["decoupled", "l2"])
def test_trainer_weight_decay_style_picks_the_optimizers_decay(tmp_path, style):
  from pdr_tf.training import trainer as trainer_lib  # pylint: disable=import-outside-toplevel

  trainer = trainer_lib.Trainer(workdir=str(tmp_path), weight_decay=5e-4, weight_decay_style=style)
  optimizer = trainer_lib.default_optimizer(trainer)
  assert (optimizer.weight_decay, optimizer.l2) == ((5e-4, 0.0) if style == "decoupled" else (0.0, 5e-4))
  assert trainer.settings()["weight_decay_style"] == style
  with pytest.raises(ValueError, match="weight_decay_style"):
    trainer_lib.Trainer(workdir=str(tmp_path), weight_decay_style="coupled")
