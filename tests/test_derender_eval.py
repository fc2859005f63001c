"""Tests of pdr_tf.evaluation.derender_eval: the scorer's report on hand-made scenes, against ground truth and trivial
predictors."""

import numpy as np
import pytest

from pdr_tf.evaluation import derender_eval
from pdr_tf.render import rotations

SIZE = 16


def _scene(n=6, seed=0):
  """Ground truth: a tilted plane patch per image (varying tilt), varying views and lights."""
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
  depth = np.zeros((n, SIZE, SIZE), np.float32)
  for i in range(n):
    depth[i] = 1.0 + 0.002 * (i + 1) * (xx - SIZE / 2) + 0.001 * (yy - SIZE / 2)
  depth[:, :2] = 0.0  # background rows
  light = np.stack(
    [rng.uniform(0.2, 0.5, n), rng.uniform(0.5, 0.9, n), rng.uniform(-0.9, 0.9, n), rng.uniform(-0.9, 0.9, n)], -1
  ).astype(np.float32)
  view = np.zeros((n, 6), np.float32)
  view[:, :3] = np.radians(rng.uniform(-20, 20, (n, 3)))
  return depth, light, view


def test_perfect_prediction_scores_zero_and_flat_depth_scores_the_trivial_error():
  depth, light, view = _scene()
  mask = np.ones_like(depth)
  perfect = derender_eval.DerenderScorer(SIZE)
  perfect.add(np.where(depth > 0, depth, 1.2), mask, light, view, depth, light, view)
  report = perfect.result()
  assert report["n_images"] == 6 and report["empty_masks"] == 0
  for name in ("view", "light", "normals", "depth"):
    assert report["ratios"][name] == pytest.approx(0.0, abs=1e-3), name
  assert report["normals_mad_deg"]["trivial"] > 10.0  # the planes are tilted: flat depth is wrong
  flat = derender_eval.DerenderScorer(SIZE)
  flat.add(np.ones_like(depth), mask, light, view, depth, light, view)
  flat_report = flat.result()
  assert flat_report["ratios"]["normals"] == pytest.approx(1.0, abs=1e-6)
  assert flat_report["ratios"]["depth"] == pytest.approx(1.0, abs=1e-6)
  assert flat_report["normals_mad_deg"]["trivial"] == pytest.approx(report["normals_mad_deg"]["trivial"])


def test_constant_light_and_view_score_no_better_than_trivial_and_batches_accumulate():
  depth, light, view = _scene(n=8, seed=1)
  scorer = derender_eval.DerenderScorer(SIZE)
  constant_light = np.tile([[0.3, 0.7, 0.1, -0.2]], (4, 1)).astype(np.float32)
  constant_view = np.zeros((4, 6), np.float32)
  for part in (slice(0, 4), slice(4, 8)):  # two batches
    scorer.add(
      depth[part], np.ones_like(depth[part]), constant_light, constant_view, depth[part], light[part], view[part]
    )
  report = scorer.result()
  assert scorer.num_images == 8 and report["n_images"] == 8
  assert report["ratios"]["view"] == pytest.approx(1.0, abs=1e-6)
  assert report["ratios"]["light"] >= 1.0 - 1e-9


def test_frame_alignment_carries_over_to_the_light():
  depth, light, view = _scene(n=10, seed=2)
  frame = rotations.euler_to_matrix(np.radians([0.0, 0.0, 25.0]))
  r_pred = rotations.euler_to_matrix(view[:, :3]) @ frame.T
  pred_view = view.copy()
  pred_view[:, :3] = rotations.matrix_to_euler(r_pred)
  d = np.concatenate([light[:, 2:], np.ones((10, 1))], -1) @ frame.T
  pred_light = light.copy()
  pred_light[:, 2:] = d[:, :2] / d[:, 2:]
  scorer = derender_eval.DerenderScorer(SIZE)
  scorer.add(np.where(depth > 0, depth, 1.2), np.ones_like(depth), pred_light, pred_view, depth, light, view)
  report = scorer.result()
  assert report["view"]["alignment"]["angle_deg"] == pytest.approx(25.0, abs=1e-4)
  assert report["ratios"]["view"] < 1e-4 and report["ratios"]["light"] < 1e-4
  line = derender_eval.summary_line(report)
  assert line.startswith("view ") and "(model/trivial)" in line
  assert set(derender_eval.scalars(report)) >= {
    "view_ratio",
    "light_ratio",
    "normals_ratio",
    "depth_ratio",
    "view_alignment_deg",
    "light_horizontal_ratio",
    "light_vertical_ratio",
  }
  assert derender_eval.scalars(report)["light_vertical_error"] < 1e-4  # exact light in the aligned frame


def test_empty_scorer_and_empty_masks():
  assert derender_eval.DerenderScorer(SIZE).result() is None
  depth, light, view = _scene(n=2)
  scorer = derender_eval.DerenderScorer(SIZE)
  scorer.add(depth, np.zeros_like(depth), light, view, depth, light, view)
  with pytest.raises(ValueError, match="empty evaluation mask"):
    scorer.result()
