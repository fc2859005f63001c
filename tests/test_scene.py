"""Tests for pdr_tf.render.scene: raw network outputs to physical scene parameters, and the ranges' checks."""

import math

import numpy as np
import pytest
import tensorflow as tf

from pdr_tf.render import scene

RANGES = scene.SceneRanges()


def test_scene_mappings_ranges():
  raw = tf.random.stateless_normal([3, 64, 64, 1], [0, 1]) * 5
  depth = scene.depth_from_raw(raw, RANGES).numpy()
  assert depth.shape == (3, 64, 64)
  assert depth.min() >= 0.9 - 1e-6 and depth.max() <= 1.1 + 1e-6
  np.testing.assert_allclose(depth[:, :, :2], 1.08)
  np.testing.assert_allclose(depth[:, :, -2:], 1.08)
  light = scene.light_from_raw(tf.constant([[-1.0, -1.0, 0.3, -0.2], [1.0, 1.0, 0.0, 0.0]]), RANGES).numpy()
  np.testing.assert_allclose(light, [[0.0, 0.5, 0.3, -0.2], [1.0, 1.0, 0.0, 0.0]], atol=1e-6)
  view = scene.view_from_raw(tf.constant([[1.0, -1.0, 0.5, 1.0, -1.0, 1.0]]), RANGES).numpy()
  np.testing.assert_allclose(view, [[math.pi / 3, -math.pi / 3, math.pi / 6, 0.1, -0.1, 0.0]], atol=1e-6)


def test_scene_ranges_validate():
  with pytest.raises(ValueError):
    scene.SceneRanges(min_depth=1.2, max_depth=1.1)
  with pytest.raises(ValueError):
    scene.SceneRanges(border_depth=2.0)
  with pytest.raises(ValueError):
    scene.SceneRanges(kd_range=(1.0, 0.5))


def test_border_depth_none_leaves_the_border_free():
  free = scene.SceneRanges(border_depth=None)
  raw = tf.random.stateless_normal([2, 16, 16], [0, 2])
  np.testing.assert_array_equal(
    scene.depth_from_raw(raw, free).numpy(), scene.depth_from_raw(raw, RANGES, border=False).numpy()
  )


def test_a_constant_raw_depth_is_the_middle_of_the_range():
  flat = scene.depth_from_raw(tf.fill([1, 8, 8], 3.0), RANGES, border=False).numpy()
  np.testing.assert_allclose(flat, 1.0, atol=1e-6)
  with pytest.raises(ValueError, match=r"\[B, H, W\]"):
    scene.depth_from_raw(tf.zeros([8, 8]), RANGES)


def test_an_uncentred_depth_keeps_its_level_and_starts_flat_at_the_border():
  uncentred = scene.SceneRanges(border_depth=1.02, center_depth=False)
  flat = scene.depth_from_raw(tf.zeros([1, 8, 8]), uncentred).numpy()
  np.testing.assert_allclose(flat, 1.02, atol=1e-6)  # a flat map lies at the background's pinned level
  raw = tf.random.stateless_normal([2, 16, 16], [0, 3]) * 0.1
  shifted = scene.depth_from_raw(raw + 0.05, uncentred, border=False).numpy()
  assert (shifted < scene.depth_from_raw(raw, uncentred, border=False).numpy()).mean() == 0.0  # level not removed
  centred = scene.SceneRanges(border_depth=1.02)
  np.testing.assert_allclose(
    scene.depth_from_raw(raw + 0.05, centred).numpy(), scene.depth_from_raw(raw, centred).numpy(), atol=1e-6
  )
  free = scene.SceneRanges(border_depth=None, center_depth=False)
  np.testing.assert_allclose(scene.depth_from_raw(tf.zeros([1, 8, 8]), free).numpy(), 1.0, atol=1e-6)
  with pytest.raises(ValueError, match="strictly inside"):
    scene.SceneRanges(border_depth=1.1, center_depth=False)


def test_convex_prior_is_a_centred_cap_within_the_range():
  ranges = scene.SceneRanges()
  offset = scene.convex_prior(16, 0.04, ranges).numpy()
  assert offset.shape == (16, 16) and offset[0, 0] == 0.0 and offset[7, 7] < 0.0  # nearer (smaller depth) inside
  with pytest.raises(ValueError, match="amplitude"):
    scene.convex_prior(16, 0.2, ranges)


def test_the_four_properties_are_named_once():
  assert scene.PROPERTIES == ("depth", "albedo", "light", "view")
