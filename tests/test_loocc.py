"""Tests for pdr_tf.model.loocc: config, perturbations, leave-one-out selection, NT-Xent (also mirrored)."""

import math
import os
import textwrap

import gin
import numpy as np
import pytest
import tensorflow as tf

import fixtures
from pdr_tf.model import loocc

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _np_nt_xent(za, zb, tau):
  """Reference NT-Xent written over the stacked 2N vectors, as in the SimCLR paper."""
  n = len(za)
  z = np.concatenate([za, zb]).astype(np.float64)
  z /= np.linalg.norm(z, axis=1, keepdims=True)
  sim = z @ z.T / tau
  losses, hits = np.zeros(2 * n), np.zeros(2 * n)
  for i in range(2 * n):
    positive = (i + n) % (2 * n)
    others = [k for k in range(2 * n) if k != i]  # the positive and the 2N-2 negatives
    losses[i] = -sim[i, positive] + np.log(np.sum(np.exp(sim[i, others])))
    hits[i] = others[int(np.argmax(sim[i, others]))] == positive
  return 0.5 * (losses[:n] + losses[n:]), 0.5 * (hits[:n] + hits[n:])


@pytest.mark.parametrize("tau", [0.1, 0.5, 1.0])
def test_nt_xent_matches_numpy_reference(tau):
  rng = np.random.default_rng(0)
  za = rng.normal(size=(6, 5)).astype(np.float32)
  zb = (za + 0.8 * rng.normal(size=(6, 5))).astype(np.float32)
  out = loocc.nt_xent(za, zb, temperature=tau)
  loss, acc = _np_nt_xent(za, zb, tau)
  assert out["per_example_loss"].shape == (6,) and out["accuracy"].shape == (6,)
  np.testing.assert_allclose(out["per_example_loss"].numpy(), loss, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(out["accuracy"].numpy(), acc)


def test_nt_xent_temperature_and_alignment():
  rng = np.random.default_rng(1)
  za = rng.normal(size=(8, 16)).astype(np.float32)
  aligned = loocc.nt_xent(za, 3.0 * za, temperature=0.5)  # cosine similarity ignores the norm
  assert np.all(aligned["accuracy"].numpy() == 1.0)
  # With perfect positives the loss falls as τ falls; random pairs give about log(2N - 1).
  cold = loocc.nt_xent(za, za, temperature=0.05)["per_example_loss"].numpy().mean()
  assert cold < aligned["per_example_loss"].numpy().mean()
  random_pairs = loocc.nt_xent(rng.normal(size=(64, 32)), rng.normal(size=(64, 32)), temperature=10.0)
  assert abs(random_pairs["per_example_loss"].numpy().mean() - math.log(127)) < 0.05
  # Gradients are finite and reach both sides.
  a, b = tf.Variable(za), tf.Variable(za + 0.1)
  with tf.GradientTape() as tape:
    loss = tf.reduce_mean(loocc.nt_xent(a, b, 0.5)["per_example_loss"])
  for g in tape.gradient(loss, [a, b]):
    assert np.all(np.isfinite(g.numpy())) and np.any(g.numpy() != 0.0)


def test_nt_xent_single_pair_is_zero_and_bad_inputs_raise():
  out = loocc.nt_xent(np.ones((1, 4), np.float32), -np.ones((1, 4), np.float32), 0.5)
  assert out["per_example_loss"].numpy().tolist() == [0.0] and out["accuracy"].numpy().tolist() == [1.0]
  with pytest.raises(ValueError, match="temperature"):
    loocc.nt_xent(np.ones((2, 4)), np.ones((2, 4)), 0.0)
  with pytest.raises(ValueError, match="same shape"):
    loocc.nt_xent(np.ones((2, 4)), np.ones((2, 5)), 0.5)


def _features(b=3):
  return {
    "depth": tf.fill([b, 2], 1.0),
    "albedo": tf.fill([b, 3], 2.0),
    "light": tf.fill([b, 4], 3.0),
    "view": tf.fill([b, 4], 4.0),
    "confidence": tf.zeros([b, 1]),
  }


def test_leave_one_out_selects_exact_columns():
  feats = _features()
  light_out = loocc.leave_one_out_features(feats, "light").numpy()
  np.testing.assert_array_equal(light_out[0], [1, 1, 2, 2, 2, 4, 4, 4, 4])  # depth, albedo, view
  view_out = loocc.leave_one_out_features(feats, "view").numpy()
  np.testing.assert_array_equal(view_out[0], [1, 1, 2, 2, 2, 3, 3, 3, 3])  # depth, albedo, light
  np.testing.assert_array_equal(loocc.leave_one_out_features(feats, False).numpy(), light_out)
  select = tf.function(lambda pv: loocc.leave_one_out_features(feats, pv))
  np.testing.assert_array_equal(select(tf.constant(True)).numpy(), view_out)
  np.testing.assert_array_equal(select(tf.constant(False)).numpy(), light_out)


def test_leave_one_out_errors():
  feats = _features()
  with pytest.raises(ValueError, match="'light' or 'view'"):
    loocc.leave_one_out_features(feats, "depth")
  with pytest.raises(ValueError, match="missing"):
    loocc.leave_one_out_features({"depth": feats["depth"]}, "light")
  uneven = dict(feats, view=tf.zeros([3, 6]))
  assert loocc.leave_one_out_features(uneven, "light").shape == (3, 11)  # strings work with any widths
  with pytest.raises(ValueError, match="equal light and view"):
    loocc.leave_one_out_features(uneven, tf.constant(True))


def test_perturb_light_clipped_stays_in_range_and_is_deterministic():
  cfg = loocc.LooccConfig(mode="light", light_noise="clipped")
  light = np.tile(np.array([[0.5, 0.75, 0.1, -0.2]], np.float32), (500, 1))
  out = loocc.perturb_light(light, cfg, [3, 4], ka_range=(0.0, 1.0), kd_range=(0.5, 1.0)).numpy()
  assert out.shape == (500, 4)
  assert out[:, 0].min() >= 0.0 and out[:, 0].max() <= 1.0 and out[:, 1].min() >= 0.5 and out[:, 1].max() <= 1.0
  delta = out[:, 2:] - light[:, 2:]
  assert np.all(np.abs(delta) <= math.pi / 8 + 1e-6) and delta.max() > 0.3 and delta.min() < -0.3
  assert np.all(out[:, 0] != 0.5)  # every example is perturbed
  np.testing.assert_array_equal(out, loocc.perturb_light(light, cfg, [3, 4], (0.0, 1.0), (0.5, 1.0)).numpy())
  assert not np.array_equal(out, loocc.perturb_light(light, cfg, [3, 5], (0.0, 1.0), (0.5, 1.0)).numpy())
  with pytest.raises(ValueError, match="ka_range"):
    loocc.perturb_light(light, cfg, [3, 4], ka_range=(1.0, 0.0))
  with pytest.raises(ValueError, match="light"):
    loocc.perturb_light(light[:, :3], cfg, [3, 4])


def test_perturb_light_released_perturbs_the_direction_vector_and_clips_nothing():
  cfg = loocc.LooccConfig(mode="light")  # the released default
  assert cfg.light_noise == "released"
  light = np.tile(np.array([[0.9, 0.95, 0.1, -0.2]], np.float32), (2000, 1))
  out = loocc.perturb_light(light, cfg, [5, 6], ka_range=(0.0, 1.0), kd_range=(0.5, 1.0)).numpy()
  assert out[:, 0].max() > 1.2 and out[:, 1].max() > 1.2  # not clipped to the model's ranges
  assert np.all(np.abs(out[:, :2] - light[:, :2]) <= 0.5 + 1e-6)
  # The direction vector (lx, ly, 1) got noise in all three components and is written back as (lx', ly', 1):
  # (lx', ly') = (lx + n_x, ly + n_y) / (1 + n_z), so no (lx', ly') lies outside that family.
  direction = np.concatenate([light[:, 2:], np.ones((2000, 1))], 1)
  scale = np.linspace(1 - math.pi / 8, 1 + math.pi / 8, 201)
  reachable_x = (light[0, 2] + np.array([-math.pi / 8, math.pi / 8]))[:, None] / scale[None]
  assert reachable_x.min() - 1e-6 <= out[:, 2].min() and out[:, 2].max() <= reachable_x.max() + 1e-6
  before = direction / np.linalg.norm(direction, axis=1, keepdims=True)
  after = np.concatenate([out[:, 2:], np.ones((2000, 1))], 1)
  after /= np.linalg.norm(after, axis=1, keepdims=True)
  angle = np.degrees(np.arccos(np.clip((before * after).sum(1), -1, 1)))
  assert angle.max() > 15.0 and angle.min() < 2.0
  np.testing.assert_array_equal(out, loocc.perturb_light(light, cfg, [5, 6], (0.0, 1.0), (0.5, 1.0)).numpy())


def test_released_loss_scale_is_supcon():
  assert loocc.LooccConfig().loss_scale == pytest.approx(0.5 / 0.07)
  assert loocc.LooccConfig(base_temperature=None).loss_scale == 1.0
  with pytest.raises(ValueError, match="base_temperature"):
    loocc.LooccConfig(base_temperature=0.0)
  with pytest.raises(ValueError, match="light_noise"):
    loocc.LooccConfig(light_noise="gaussian")


def test_perturb_view_changes_only_pitch_and_yaw():
  cfg = loocc.LooccConfig(mode="light_view")
  view = np.random.default_rng(2).uniform(-0.5, 0.5, (500, 6)).astype(np.float32)
  out = loocc.perturb_view(view, cfg, tf.constant([7, 8], tf.int64)).numpy()
  delta = out - view
  np.testing.assert_array_equal(out[:, 2:], view[:, 2:])
  assert np.all(np.abs(delta[:, 0]) <= math.pi / 16 + 1e-6) and np.abs(delta[:, 0]).max() > 0.15
  assert np.all(np.abs(delta[:, 1]) <= math.pi / 8 + 1e-6) and np.abs(delta[:, 1]).max() > 0.3
  np.testing.assert_array_equal(out, loocc.perturb_view(view, cfg, [7, 8]).numpy())
  with pytest.raises(ValueError, match="seed"):
    loocc.perturb_view(view, cfg, [1, 2, 3])


def test_choose_perturbation_per_mode():
  assert not loocc.choose_perturbation("light", [0, 0]).numpy()
  choices = [bool(loocc.choose_perturbation("light_view", [s, 1]).numpy()) for s in range(200)]
  assert 60 < sum(choices) < 140  # about half the steps perturb the view
  assert choices == [bool(loocc.choose_perturbation("light_view", [s, 1]).numpy()) for s in range(200)]
  with pytest.raises(ValueError, match="perturbs nothing"):
    loocc.choose_perturbation("none", [0, 0])
  with pytest.raises(ValueError, match="mode"):
    loocc.choose_perturbation("views", [0, 0])


def test_config_defaults_validation_and_gin():
  cfg = loocc.LooccConfig()
  assert (cfg.mode, cfg.weight, cfg.temperature, cfg.enabled) == ("none", 0.01, 0.5, False)
  assert (cfg.ka_delta, cfg.kd_delta) == (0.5, 0.5)
  assert (cfg.light_dir_delta, cfg.pitch_delta, cfg.yaw_delta) == (math.pi / 8, math.pi / 16, math.pi / 8)
  with pytest.raises(ValueError, match="mode"):
    loocc.LooccConfig(mode="light+view")
  with pytest.raises(ValueError, match="temperature"):
    loocc.LooccConfig(temperature=0.0)
  with gin.unlock_config():
    gin.parse_config("LooccConfig.mode = 'light_view'\nLooccConfig.weight = 0.1")
  try:
    configured = loocc.LooccConfig()
  finally:
    gin.clear_config()
  assert configured.mode == "light_view" and configured.weight == 0.1 and configured.enabled


def test_replica_seed_outside_strategy_is_identity():
  np.testing.assert_array_equal(loocc.replica_seed([5, 6]).numpy(), [5, 6])


_MIRRORED_SCRIPT = textwrap.dedent("""
    import json
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from pdr_tf.model import loocc

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    rng = np.random.default_rng(1)
    za = rng.normal(size=(8, 5)).astype(np.float32)
    zb = (za + 0.5 * rng.normal(size=(8, 5))).astype(np.float32)
    result = {}
    for split in (4, 3):  # equal local batches, then 3 + 5
      parts = [(0, split), (split, 8)]
      values = strategy.experimental_distribute_values_from_function(
          lambda ctx: tuple(z[slice(*parts[ctx.replica_id_in_sync_group])] for z in (za, zb)))

      @tf.function
      def step(ab):
        def replica_fn(a, b):
          with tf.GradientTape() as tape:
            tape.watch([a, b])
            out = loocc.nt_xent(a, b, 0.5)
            loss = tf.nn.compute_average_loss(out["per_example_loss"], global_batch_size=8)
          grad_a, grad_b = tape.gradient(loss, [a, b])
          seed = loocc.replica_seed(tf.constant([1, 2]))
          return loss, grad_a, grad_b, out["accuracy"], seed
        return strategy.run(replica_fn, args=ab)

      loss, grad_a, grad_b, acc, seed = step(values)
      local = strategy.experimental_local_results
      result[split] = {
          "loss": float(strategy.reduce(tf.distribute.ReduceOp.SUM, loss, axis=None)),
          "grad_a": np.concatenate([g.numpy() for g in local(grad_a)]).tolist(),
          "grad_b": np.concatenate([g.numpy() for g in local(grad_b)]).tolist(),
          "accuracy": np.concatenate([x.numpy() for x in local(acc)]).tolist(),
          "seeds": [s.numpy().tolist() for s in local(seed)],
      }
    print("RESULT " + json.dumps(result))
""")


def test_mirrored_strategy_matches_single_device():
  result = fixtures.python_result(["-c", _MIRRORED_SCRIPT])

  rng = np.random.default_rng(1)
  za = rng.normal(size=(8, 5)).astype(np.float32)
  zb = (za + 0.5 * rng.normal(size=(8, 5))).astype(np.float32)
  a, b = tf.constant(za), tf.constant(zb)
  with tf.GradientTape() as tape:
    tape.watch([a, b])
    out = loocc.nt_xent(a, b, 0.5)
    loss = tf.reduce_mean(out["per_example_loss"])
  grad_a, grad_b = tape.gradient(loss, [a, b])
  for split in ("4", "3"):
    got = result[split]
    np.testing.assert_allclose(got["loss"], loss.numpy(), rtol=1e-5)
    np.testing.assert_allclose(got["accuracy"], out["accuracy"].numpy())
    np.testing.assert_allclose(got["grad_a"], grad_a.numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(got["grad_b"], grad_b.numpy(), rtol=1e-4, atol=1e-6)
    assert got["seeds"][0] != got["seeds"][1]  # replica_seed differs per replica
