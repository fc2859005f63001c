"""Tests for pdr_tf.evaluation.derender_metrics against closed forms: SIDE, MAD, erosion, light and view errors."""

import logging
import math

import numpy as np
import pytest

from scipy.spatial.transform import Rotation

from pdr_tf.evaluation import derender_metrics as dm
from pdr_tf.render import geometry
from pdr_tf.render import rotations


def _depth(seed=0, n=2, size=6):
  return np.random.default_rng(seed).uniform(0.9, 1.1, size=(n, size, size))


def test_side_is_zero_for_a_depth_scaled_by_a_constant():
  gt = _depth()
  mask = np.ones(gt.shape, dtype=bool)
  np.testing.assert_allclose(dm.side_per_image(1.7 * gt, gt, mask), 0.0, atol=1e-12)
  assert dm.side(gt, gt, mask) == pytest.approx(0.0, abs=1e-12)


def test_side_hand_computed():
  # Two masked pixels with log ratios 0 and ln 2: the standard deviation of {0, ln 2} is ln(2) / 2.
  gt = np.ones((1, 2, 2))
  pred = np.array([[[1.0, 2.0], [5.0, 9.0]]])
  mask = np.array([[[True, True], [False, False]]])
  assert dm.side_per_image(pred, gt, mask)[0] == pytest.approx(math.log(2) / 2)
  # Same as sqrt(mean(d^2) - mean(d)^2) for d = [0, ln 2]: sqrt(ln2^2 / 2 - ln2^2 / 4).
  assert dm.side(pred[0], gt[0], mask[0]) == pytest.approx(math.sqrt(math.log(2) ** 2 / 4))


def test_side_mean_over_images_and_background_zero_depth_is_ignored():
  gt = np.ones((2, 1, 3))
  gt[:, :, 2] = 0.0  # no object there: formats' ground truth depth is 0 outside the object
  pred = np.array([[[1.0, 2.0, -1.0]], [[3.0, 3.0, 0.0]]])
  mask = gt > 0
  per_image = dm.side_per_image(pred, gt, mask)
  np.testing.assert_allclose(per_image, [math.log(2) / 2, 0.0])
  assert dm.side(pred, gt, mask) == pytest.approx(math.log(2) / 4)


def test_side_empty_masks(caplog):
  gt = np.ones((2, 2, 2))
  mask = np.zeros(gt.shape, dtype=bool)
  mask[0] = True
  per_image = dm.side_per_image(2 * gt, gt, mask)
  assert per_image[0] == pytest.approx(0.0) and math.isnan(per_image[1])
  with caplog.at_level(logging.WARNING):
    assert dm.side(2 * gt, gt, mask) == pytest.approx(0.0)
  assert "1 of 2 images have an empty mask" in caplog.text
  with pytest.raises(ValueError, match="every image has an empty mask"):
    dm.side(gt, gt, np.zeros(gt.shape, dtype=bool))


def test_side_errors():
  gt = np.ones((1, 2, 2))
  mask = np.ones(gt.shape, dtype=bool)
  with pytest.raises(ValueError, match="depth_pred must be finite and positive"):
    dm.side(np.zeros_like(gt), gt, mask)
  with pytest.raises(ValueError, match="differ in shape"):
    dm.side(np.ones((1, 2, 3)), gt, mask)
  with pytest.raises(ValueError, match="mask has shape"):
    dm.side(gt, gt, np.ones((1, 3, 2), dtype=bool))
  with pytest.raises(ValueError, match=r"must have shape \[N, H, W\]"):
    dm.side(np.ones(4), np.ones(4), np.ones(4, dtype=bool))
  with pytest.raises(ValueError, match="only 0 and 1"):
    dm.side(gt, gt, np.full(gt.shape, 0.5))


def _normals(shape, vec):
  return np.broadcast_to(np.asarray(vec, dtype=np.float64), shape + (3,)).copy()


def test_mad_closed_forms():
  shape = (2, 3, 3)
  mask = np.ones(shape, dtype=bool)
  z = _normals(shape, [0, 0, 1])
  assert dm.mad(z, z, mask) == pytest.approx(0.0, abs=1e-12)
  assert dm.mad(z, _normals(shape, [1, 0, 0]), mask) == pytest.approx(90.0)
  assert dm.mad(z, _normals(shape, [0, 0, -1]), mask) == pytest.approx(180.0)
  # Lengths do not matter: [0, 0, 5] vs [2, 0, 2] is 45 degrees.
  assert dm.mad(5 * z, _normals(shape, [2, 0, 2]), mask) == pytest.approx(45.0)


def test_mad_masked_mean_per_image():
  z = _normals((1, 1, 2), [0, 0, 1])
  other = z.copy()
  other[0, 0, 1] = [0, 1, 0]  # 90 degrees off at the second pixel
  np.testing.assert_allclose(dm.mad_per_image(z, other, np.array([[[True, True]]])), [45.0])
  np.testing.assert_allclose(dm.mad_per_image(z, other, np.array([[[True, False]]])), [0.0], atol=1e-12)


def test_mad_errors():
  mask = np.ones((1, 2, 2), dtype=bool)
  z = _normals((1, 2, 2), [0, 0, 1])
  with pytest.raises(ValueError, match="zero-length"):
    dm.mad(np.zeros_like(z), z, mask)
  with pytest.raises(ValueError, match=r"\[N, H, W, 3\]"):
    dm.mad(z[..., :2], z[..., :2], mask)
  # Zero normals outside the mask are fine.
  z_bg = z.copy()
  z_bg[0, 0, 0] = 0.0
  mask[0, 0, 0] = False
  assert dm.mad(z_bg, z, mask) == pytest.approx(0.0, abs=1e-12)


def test_erode_mask():
  mask = np.ones((5, 5), dtype=bool)
  once = dm.erode_mask(mask)
  assert once.shape == (5, 5) and once.dtype == bool
  expected = np.zeros((5, 5), dtype=bool)
  expected[1:4, 1:4] = True  # the image border counts as background
  np.testing.assert_array_equal(once, expected)
  twice = dm.erode_mask(mask, pixels=2)
  assert twice.sum() == 1 and twice[2, 2]
  np.testing.assert_array_equal(dm.erode_mask(mask, pixels=0), mask)
  # A hole removes its 3x3 neighbourhood; batches are eroded image by image.
  batch = np.ones((2, 7, 7), dtype=np.uint8)
  batch[1, 3, 3] = 0
  out = dm.erode_mask(batch)
  assert out[0].sum() == 25 and out[1].sum() == 25 - 9
  with pytest.raises(ValueError, match="non-negative int"):
    dm.erode_mask(mask, pixels=-1)


def test_light_direction():
  np.testing.assert_allclose(
    dm.light_direction([[3.0, 4.0]]), [[3 / math.sqrt(26), 4 / math.sqrt(26), 1 / math.sqrt(26)]]
  )


def test_param_errors():
  with pytest.raises(ValueError, match=r"light_pred must have shape \[N, 4\]"):
    dm.light_report(np.zeros((2, 3)), np.zeros((2, 4)))
  with pytest.raises(ValueError, match="differ in shape"):
    dm.view_report(np.zeros((2, 6)), np.zeros((3, 6)))
  with pytest.raises(ValueError, match="non-finite"):
    dm.view_report(np.full((1, 6), np.nan), np.zeros((1, 6)))


# ----------------------------------------------------------------------------------- views and lights vs trivial


def _random_views(n, seed=0, tilt=20.0, azimuth=30.0):
  rng = np.random.default_rng(seed)
  views = np.zeros((n, 6))
  views[:, :2] = np.radians(rng.uniform(-tilt, tilt, (n, 2)))
  views[:, 2] = np.radians(rng.uniform(-azimuth, azimuth, n))
  return views


def test_a_fixed_frame_rotation_gives_zero_view_error_and_is_reported():
  gt = _random_views(200)
  frame = rotations.euler_to_matrix(np.radians([10.0, -25.0, 40.0]))  # world canonical -> model canonical
  # A model whose canonical frame is rotated by `frame`: R_gt = R_pred frame, so R_pred = R_gt frame^T.
  r_pred = rotations.euler_to_matrix(gt[:, :3]) @ frame.T
  pred = np.concatenate([rotations.matrix_to_euler(r_pred), gt[:, 3:]], axis=1)
  report = dm.view_report(pred, gt)
  assert report["geodesic_deg"]["model"] == pytest.approx(0.0, abs=1e-5)
  np.testing.assert_allclose(report["alignment"]["matrix"], frame, atol=1e-7)
  np.testing.assert_allclose(report["alignment"]["euler_deg"], [10.0, -25.0, 40.0], atol=1e-5)
  assert report["geodesic_deg"]["trivial"] > 10.0  # the views vary: a constant cannot match them
  assert report["geodesic_deg"]["ratio"] == pytest.approx(0.0, abs=1e-6)
  # The raw Euler-angle error (the old metric) calls this model badly wrong.
  assert max(report["raw_euler_mae_deg"]) > 10.0


def test_a_constant_view_scores_the_trivial_error_and_the_trivial_fit_is_the_best_constant():
  gt = _random_views(300, seed=1)
  pred = np.zeros_like(gt)
  pred[:, :3] = np.radians([5.0, 50.0, -20.0])  # any constant: alignment absorbs it
  report = dm.view_report(pred, gt)
  assert report["geodesic_deg"]["ratio"] == pytest.approx(1.0, abs=1e-6)
  # The fitted constant beats other constants, e.g. the identity and the chordal mean.
  r_gt = rotations.euler_to_matrix(gt[:, :3])
  identity_error = rotations.geodesic_deg(np.broadcast_to(np.eye(3), r_gt.shape), r_gt).mean()
  assert report["geodesic_deg"]["trivial"] <= identity_error + 1e-9


def test_geodesic_and_euler_conventions_match_the_renderer():
  angles = np.radians([[30.0, 0.0, 0.0], [0.0, 0.0, 45.0], [12.0, -40.0, 75.0]])
  matrices = rotations.euler_to_matrix(angles)
  np.testing.assert_allclose(matrices, geometry.rotation_matrix(angles.astype(np.float32)).numpy(), atol=1e-6)
  np.testing.assert_allclose(rotations.matrix_to_euler(matrices), angles, atol=1e-9)
  np.testing.assert_allclose(rotations.geodesic_deg(np.eye(3), matrices[:2]), [30.0, 45.0], atol=1e-9)
  np.testing.assert_allclose(rotations.geodesic_deg(matrices, matrices), 0.0, atol=1e-6)


def test_rotation_median_minimises_the_mean_geodesic_error():
  centre = rotations.euler_to_matrix(np.radians([20.0, -10.0, 5.0]))
  spread = rotations.euler_to_matrix(_random_views(101, seed=2)[:, :3])
  data = centre @ spread
  data[:20] = rotations.euler_to_matrix(np.radians([[170.0, 0.0, 0.0]] * 20))  # far outliers
  median = rotations.rotation_median(data)
  chordal = rotations.rotation_median(data, iterations=0)
  cost = lambda x: rotations.geodesic_deg(np.broadcast_to(x, data.shape), data).mean()
  assert cost(median) < cost(chordal)
  for axis in np.eye(3):  # a local minimum: small perturbations do not improve it
    for sign in (1, -1):
      nudge = Rotation.from_rotvec(sign * np.radians(0.5) * axis).as_matrix()
      assert cost(median) <= cost(median @ nudge) + 1e-9


def test_direction_median():
  rng = np.random.default_rng(3)
  centre = np.array([0.3, -0.2, 1.0]) / np.linalg.norm([0.3, -0.2, 1.0])
  # Directions symmetric about the centre: the median is the centre.
  tangent = np.cross(centre, [1.0, 0.0, 0.0])
  tangent /= np.linalg.norm(tangent)
  angles = np.radians(rng.uniform(5, 40, 50))
  pairs = [np.cos(a) * centre + s * np.sin(a) * tangent for a in angles for s in (1, -1)]
  np.testing.assert_allclose(rotations.direction_median(np.array(pairs)), centre, atol=1e-6)
  with pytest.raises(ValueError, match="zero-length"):
    rotations.direction_median(np.zeros((2, 3)))


def test_light_report_in_one_frame():
  rng = np.random.default_rng(4)
  gt = np.stack(
    [
      rng.uniform(0.25, 0.55, 100),
      rng.uniform(0.5, 0.9, 100),
      rng.uniform(-0.9, 0.9, 100),
      rng.uniform(-0.9, 0.9, 100),
    ],
    -1,
  )
  frame = rotations.euler_to_matrix(np.radians([0.0, 0.0, 30.0]))
  # The model's light directions live in its frame: d_model = frame d_world, written as (lx, ly) with z = 1.
  d_model = dm.light_direction(gt[:, 2:]) @ frame.T
  pred = gt.copy()
  pred[:, 2:] = d_model[:, :2] / d_model[:, 2:]
  report = dm.light_report(pred, gt, alignment=frame)
  assert report["direction_deg"]["model"] == pytest.approx(0.0, abs=1e-6)
  assert report["ka_mae"]["model"] == pytest.approx(0.0) and report["kd_mae"]["ratio"] == pytest.approx(0.0)
  # Without the alignment the same prediction is wrong, and a constant prediction is no better than trivial.
  assert dm.light_report(pred, gt)["direction_deg"]["model"] > 5.0
  constant = np.tile([0.4, 0.7, 0.0, 0.0], (100, 1))
  assert dm.light_report(constant, gt)["direction_deg"]["ratio"] >= 1.0 - 1e-9
  assert dm.light_report(constant, gt)["ka_mae"]["ratio"] >= 1.0 - 1e-9


def test_light_axis_angles_are_the_arctangents_of_lx_and_ly():
  lxy = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, -1.0], [0.5, 0.3]])
  np.testing.assert_allclose(dm.light_axis_angles(dm.light_direction(lxy)), np.degrees(np.arctan(lxy)), atol=1e-9)


def test_light_report_splits_a_learnt_side_light_from_an_unlearnt_vertical_one():
  rng = np.random.default_rng(5)
  gt = np.stack([np.full(200, 0.4), np.full(200, 0.7), rng.uniform(-0.8, 0.8, 200), rng.uniform(-0.8, 0.8, 200)], -1)
  pred = gt.copy()
  pred[:, 3] = 0.0  # lx exact, ly at the constant: what a model that cannot see the vertical light predicts
  report = dm.light_report(pred, gt)
  assert report["horizontal_deg"]["model"] == pytest.approx(0.0, abs=1e-9)
  assert report["vertical_deg"]["ratio"] == pytest.approx(1.0, abs=0.05)
  assert 0.0 < report["direction_deg"]["ratio"] < 1.0
