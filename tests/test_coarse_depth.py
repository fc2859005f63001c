"""Tests of pdr_tf.benchmarks.coarse_depth: the oracle that bounds what a coarse depth map can score on normals."""

import numpy as np
import pytest

from pdr_tf.benchmarks import coarse_depth


def _tilted_square(size=64, slope=0.002):
  """A tilted plane covering the centre of the image, 0 (background) elsewhere."""
  u = np.arange(size, dtype=np.float32)
  depth = np.broadcast_to(1.0 + slope * (u[None, :] - size / 2), (size, size)).copy()
  background = np.ones_like(depth, bool)
  background[16:48, 16:48] = False
  depth[background] = 0.0
  return depth


def test_backgrounds_are_filled_far_or_with_the_nearest_object_depth():
  depth = _tilted_square()
  far = coarse_depth.fill_background(depth, "far")
  nearest = coarse_depth.fill_background(depth, "nearest")
  assert far[0, 0] == coarse_depth.FAR_DEPTH and nearest[0, 0] == depth[16, 16]
  np.testing.assert_array_equal(far[16:48, 16:48], depth[16:48, 16:48])
  np.testing.assert_array_equal(nearest[16:48, 16:48], depth[16:48, 16:48])
  with pytest.raises(ValueError, match="mode"):
    coarse_depth.fill_background(depth, "median")


def test_a_plane_survives_coarsening_when_the_background_does_not_step():
  gt = _tilted_square()[None]
  table = coarse_depth.oracle_table(gt, sizes=(16,))
  assert table["flat"] > 10.0  # a slope of 0.002 per pixel tilts the normal by tens of degrees at 10 degrees fov
  assert table["16_nearest"] < 0.1 * table["flat"]
  assert table["16_far"] > table["16_nearest"]  # the smeared step at the edge costs accuracy
