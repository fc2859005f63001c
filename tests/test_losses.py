"""Tests for pdr_tf.model.losses against NumPy references: masks, confidence, per-example shapes, weights, gradients."""

import dataclasses
import math

import gin
import numpy as np
import pytest
import tensorflow as tf

from pdr_tf.model import losses


def _data(b=3, h=8, w=8, c=3, seed=0):
  rng = np.random.default_rng(seed)  # per call, so that a test's inputs never depend on which tests ran before
  recon = rng.uniform(-1, 1, (b, h, w, c)).astype(np.float32)
  target = rng.uniform(-1, 1, (b, h, w, c)).astype(np.float32)
  mask = (rng.uniform(size=(b, h, w)) > 0.4).astype(np.float32)
  sigma = rng.uniform(0.2, 2.0, (b, h, w, 1)).astype(np.float32)
  return recon, target, mask, sigma


def _np_masked_mean(loss, mask):
  m = np.broadcast_to(mask[..., None], loss.shape)
  return (loss * m).sum(axis=(1, 2, 3)) / (m.sum(axis=(1, 2, 3)) + 1e-7)


def test_photometric_l1_matches_numpy_with_and_without_confidence():
  recon, target, mask, sigma = _data()
  got = losses.photometric_l1(recon, target, mask).numpy()
  assert got.shape == (3,)
  np.testing.assert_allclose(got, _np_masked_mean(np.abs(recon - target), mask), rtol=1e-5)
  expected = _np_masked_mean(math.sqrt(2) * np.abs(recon - target) / sigma + np.log(sigma), mask)
  np.testing.assert_allclose(losses.photometric_l1(recon, target, mask, conf=sigma).numpy(), expected, rtol=1e-5)
  # [B, H, W] sigma and [B, H, W, 1] mask are accepted too.
  np.testing.assert_allclose(
    losses.photometric_l1(recon, target, mask[..., None], conf=sigma[..., 0]).numpy(), expected, rtol=1e-5
  )


def test_photometric_conf_one_is_sqrt2_l1_and_masked_pixels_do_not_count():
  recon, target, mask, _ = _data()
  ones = np.ones(mask.shape, np.float32)
  np.testing.assert_allclose(
    losses.photometric_l1(recon, target, mask, conf=ones).numpy(),
    math.sqrt(2) * losses.photometric_l1(recon, target, mask).numpy(),
    rtol=1e-5,
  )
  # Changing pixels outside the mask changes nothing; an empty mask gives 0 for that example only.
  wild = np.where(mask[..., None] > 0, recon, 100.0).astype(np.float32)
  np.testing.assert_allclose(
    losses.photometric_l1(wild, target, mask).numpy(), losses.photometric_l1(recon, target, mask).numpy(), rtol=1e-6
  )
  mask[1] = 0.0
  got = losses.photometric_l1(recon, target, mask).numpy()
  assert got[1] == 0.0 and got[0] > 0.0 and got[2] > 0.0


def test_per_example_values_do_not_mix_examples():
  recon, target, mask, sigma = _data()
  full = losses.photometric_l1(recon, target, mask, conf=sigma).numpy()
  single = losses.photometric_l1(recon[1:2], target[1:2], mask[1:2], conf=sigma[1:2]).numpy()
  np.testing.assert_allclose(full[1:2], single, rtol=1e-6)


def test_perceptual_nll_matches_numpy_and_pools_the_mask():
  rng = np.random.default_rng(1)
  f1 = rng.normal(size=(2, 4, 4, 5)).astype(np.float32)
  f2 = rng.normal(size=(2, 4, 4, 5)).astype(np.float32)
  sigma = rng.uniform(0.5, 2.0, (2, 4, 4, 1)).astype(np.float32)
  mask16 = (rng.uniform(size=(2, 16, 16)) > 0.3).astype(np.float32)
  pooled = mask16.reshape(2, 4, 4, 4, 4).mean(axis=(2, 4))  # avg-pool by 4
  d2 = (f1 - f2) ** 2
  np.testing.assert_allclose(losses.perceptual_nll(f1, f2, pooled).numpy(), _np_masked_mean(d2, pooled), rtol=1e-5)
  expected = _np_masked_mean(d2 / (2 * sigma**2) + np.log(sigma), pooled)
  np.testing.assert_allclose(losses.perceptual_nll(f1, f2, pooled, conf=sigma).numpy(), expected, rtol=1e-5)
  # A full-resolution mask is pooled to the feature size.
  np.testing.assert_allclose(losses.perceptual_nll(f1, f2, mask16, conf=sigma).numpy(), expected, rtol=1e-5)
  np.testing.assert_allclose(losses.downsample_mask(mask16, 4).numpy()[..., 0], pooled, rtol=1e-6)
  with pytest.raises(ValueError, match="multiple of 4"):
    losses.perceptual_nll(f1, f2, np.ones((2, 10, 10), np.float32))


def test_depth_smoothness_is_total_variation():
  depth = np.random.default_rng(2).uniform(0.9, 1.1, (2, 6, 7)).astype(np.float32)
  expected = np.abs(np.diff(depth, axis=2)).mean(axis=(1, 2)) + np.abs(np.diff(depth, axis=1)).mean(axis=(1, 2))
  np.testing.assert_allclose(losses.depth_smoothness(depth).numpy(), expected, rtol=1e-5)
  assert np.all(losses.depth_smoothness(np.ones((2, 5, 5), np.float32)).numpy() == 0.0)
  # A ramp of slope s along x has horizontal TV s and no vertical TV.
  ramp = np.tile(np.arange(5, dtype=np.float32) * 0.01, (1, 4, 1))
  np.testing.assert_allclose(losses.depth_smoothness(ramp).numpy(), [0.01], rtol=1e-5)
  # Unsup3D divides the differences by the depth range (max_depth - min_depth = 0.2 for cars): 5x larger.
  np.testing.assert_allclose(losses.depth_smoothness(ramp, depth_range=0.2).numpy(), [0.05], rtol=1e-5)
  with pytest.raises(ValueError, match="depth_range"):
    losses.depth_smoothness(ramp, depth_range=0.0)


def test_edge_aware_smoothness_prefers_a_step_at_the_guide_edge():
  # The same height change, once as a ramp across a uniform guide and once as a step where the guide has an edge:
  # plain total variation charges both alike; the edge-aware term charges the step less.
  ramp = np.tile(np.linspace(0.0, 0.04, 8, dtype=np.float32), (1, 8, 1))
  step = np.tile(np.where(np.arange(8) < 4, 0.0, 0.04).astype(np.float32), (1, 8, 1))
  guide = np.zeros((1, 8, 8, 3), np.float32)
  guide[:, :, 4:] = 1.0
  plain = [losses.depth_smoothness(d).numpy()[0] for d in (ramp, step)]
  np.testing.assert_allclose(plain[0], plain[1], rtol=1e-5)
  aware = [losses.depth_smoothness(d, guide=guide, edge_sharpness=5.0).numpy()[0] for d in (ramp, step)]
  np.testing.assert_allclose(aware[1], plain[1] * np.exp(-5.0), rtol=1e-5)  # the one step sits on the edge
  assert aware[0] > 10 * aware[1]
  # α = 0 ignores the guide; a uniform guide weighs every difference by 1.
  np.testing.assert_allclose(losses.depth_smoothness(ramp, guide=guide, edge_sharpness=0.0).numpy(), [plain[0]])
  np.testing.assert_allclose(
    losses.depth_smoothness(ramp, guide=np.zeros_like(guide), edge_sharpness=5.0).numpy(), [plain[0]], rtol=1e-5
  )
  with pytest.raises(ValueError, match="guide"):
    losses.depth_smoothness(ramp, edge_sharpness=1.0)
  with pytest.raises(ValueError, match="edge_sharpness"):
    losses.depth_smoothness(ramp, guide=guide, edge_sharpness=-1.0)
  with pytest.raises(ValueError, match="smooth_edge_sharpness"):
    losses.ReconstructionWeights(smooth_edge_sharpness=-1.0)


def test_reconstruction_loss_combines_terms_with_weights():
  terms = {
    k: tf.constant(v, tf.float32)
    for k, v in {
      "l1": [1.0, 2.0],
      "l1_flip": [3.0, 4.0],
      "perc": [5.0, 6.0],
      "perc_flip": [7.0, 8.0],
      "smooth": [9.0, 10.0],
    }.items()
  }
  w = losses.ReconstructionWeights(lambda_flip=0.5, lambda_perc=2.0, lambda_smooth=0.1)
  expected = (
    np.array([1, 2])
    + 0.5 * np.array([3, 4])
    + 2.0 * (np.array([5, 6]) + 0.5 * np.array([7, 8]))
    + 0.1 * np.array([9, 10])
  )
  np.testing.assert_allclose(losses.reconstruction_loss(terms, w).numpy(), expected, rtol=1e-6)
  # Zero-weight terms may be absent and are ignored even when NaN.
  no_perc = dataclasses.replace(w, lambda_perc=0.0, lambda_smooth=0.0)
  got = losses.reconstruction_loss(
    {"l1": terms["l1"], "l1_flip": terms["l1_flip"], "perc": tf.constant([np.nan, np.nan])}, no_perc
  )
  np.testing.assert_allclose(got.numpy(), [2.5, 4.0])
  with pytest.raises(ValueError, match="perc"):
    losses.reconstruction_loss({"l1": terms["l1"], "l1_flip": terms["l1_flip"]}, w)
  with pytest.raises(ValueError, match="unknown"):
    losses.reconstruction_loss({"l1": terms["l1"], "bogus": terms["l1"]}, no_perc)


def test_reconstruction_weights_presets_validation_and_gin():
  assert losses.ReconstructionWeights() == losses.ReconstructionWeights.faces()
  faces = losses.ReconstructionWeights.faces()
  assert (faces.lambda_flip, faces.lambda_perc, faces.lambda_smooth, faces.use_confidence) == (0.5, 1.0, 0.0, True)
  cars = losses.ReconstructionWeights.cars()
  assert (cars.lambda_flip, cars.lambda_perc, cars.lambda_smooth, cars.use_confidence) == (1.0, 0.01, 0.1, False)
  with pytest.raises(ValueError, match="lambda_perc"):
    losses.ReconstructionWeights(lambda_perc=-1.0)
  with gin.unlock_config():
    gin.parse_config("ReconstructionWeights.lambda_smooth = 0.25\nReconstructionWeights.use_confidence = False")
  try:
    configured = losses.ReconstructionWeights()
  finally:
    gin.clear_config()
  assert configured.lambda_smooth == 0.25 and configured.use_confidence is False


def test_a_clipped_target_bounds_the_render_from_one_side_only():
  """A pixel recorded at 255 (1.0) is fitted by any render at or above 1 and pays for a darker one; at 0 (-1.0) the
  same downwards; an unclipped pixel, even one a quantisation step short of the end, is plain L1."""
  target = tf.constant([1.0, 1.0, -1.0, -1.0, 1.0 - 2.0 / 255.0, 0.2])[None, None, None, :]
  recon = tf.constant([1.3, 0.8, -1.2, -0.7, 1.3, 0.5])[None, None, None, :]
  with tf.GradientTape() as tape:
    tape.watch(recon)
    bounded = losses.bound_by_clipped_target(recon, target)
    residual = tf.abs(bounded - target)
  np.testing.assert_allclose(residual.numpy().ravel(), [0.0, 0.2, 0.0, 0.3, 0.3 + 2.0 / 255.0, 0.3], atol=1e-6)
  np.testing.assert_allclose(tape.gradient(residual, recon).numpy().ravel(), [0.0, -1.0, 0.0, 1.0, 1.0, 1.0])
  with pytest.raises(ValueError, match="bound_clipped"):
    losses.ReconstructionWeights(bound_clipped=1)


def test_gradients_are_finite_and_only_flow_through_masked_pixels():
  recon, target, mask, sigma = _data()
  recon_v, sigma_v = tf.Variable(recon), tf.Variable(sigma)
  f = tf.Variable(np.random.default_rng(3).normal(size=(3, 2, 2, 4)).astype(np.float32))
  with tf.GradientTape() as tape:
    l1 = losses.photometric_l1(recon_v, target, mask, conf=sigma_v)
    perc = losses.perceptual_nll(f, tf.zeros_like(f), mask, conf=tf.ones([3, 2, 2, 1]))
    smooth = losses.depth_smoothness(recon_v[..., 0])
    total = tf.reduce_sum(
      losses.reconstruction_loss(
        {"l1": l1, "l1_flip": l1, "perc": perc, "perc_flip": perc, "smooth": smooth},
        losses.ReconstructionWeights.cars(),
      )
    )
  g_recon, g_sigma, g_f = tape.gradient(total, [recon_v, sigma_v, f])
  for g in (g_recon, g_sigma, g_f):
    assert np.all(np.isfinite(g.numpy())) and np.any(g.numpy() != 0.0)
  # sigma only influences the loss where the mask is on.
  assert np.all(g_sigma.numpy()[mask[..., None] == 0] == 0.0)


def test_shape_errors_name_the_input():
  recon, target, mask, _ = _data()
  with pytest.raises(ValueError, match="recon"):
    losses.photometric_l1(recon[0], target, mask)
  with pytest.raises(ValueError, match="mask"):
    losses.photometric_l1(recon, target, mask[:, :4])
  with pytest.raises(ValueError, match="depth"):
    losses.depth_smoothness(recon)


def test_view_cycle_compares_the_tilts_only():
  predicted = tf.constant([[0.1, -0.2, 0.5, 0.01, 0.02, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0]])
  target = tf.constant([[0.3, -0.2, -0.5, 0.09, -0.02, 0.0], [0.1, 0.3, 1.0, 0.0, 0.0, 0.0]])
  np.testing.assert_allclose(losses.view_cycle(predicted, target), [0.1, 0.2], rtol=1e-6)


def test_view_rotation_l1_compares_the_three_rotations_only():
  predicted = tf.constant([[0.1, -0.2, 0.5, 0.01, 0.02, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0]])
  target = tf.constant([[0.4, -0.2, 0.5, 0.09, -0.02, 0.0], [0.1, 0.3, -0.2, 0.5, 0.0, 0.0]])
  np.testing.assert_allclose(losses.view_rotation_l1(predicted, target), [0.1, 0.2], rtol=1e-6)


def test_photometric_pair_scores_the_render_and_its_mirror_each_with_its_confidence_channel():
  rng = np.random.RandomState(0)
  recon, mirror, target = (tf.constant(rng.uniform(-1, 1, (2, 4, 4, 3)), tf.float32) for _ in range(3))
  mask = tf.constant(rng.uniform(0, 1, (2, 4, 4)) > 0.3, tf.float32)
  conf = tf.constant(rng.uniform(0.5, 2.0, (2, 4, 4, 2)), tf.float32)
  pair = losses.photometric_pair(recon, mirror, target, mask, conf)
  np.testing.assert_allclose(pair["l1"], losses.photometric_l1(recon, target, mask, conf[..., 0:1]), rtol=1e-6)
  np.testing.assert_allclose(pair["l1_flip"], losses.photometric_l1(mirror, target, mask, conf[..., 1:2]), rtol=1e-6)
  plain = losses.photometric_pair(recon, mirror, target, mask)
  np.testing.assert_allclose(plain["l1_flip"], losses.photometric_l1(mirror, target, mask), rtol=1e-6)
  assert not np.allclose(pair["l1"], plain["l1"])
