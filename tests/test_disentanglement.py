"""Tests for pdr_tf.evaluation.disentanglement: the mean |PCC| score between feature blocks and its matrix."""

import math

import numpy as np
import pytest

from pdr_tf.evaluation import disentanglement as dis


def test_independent_features_score_near_chance():
  rng = np.random.default_rng(0)
  n = 2000
  a, b = rng.normal(size=(n, 16)), rng.normal(size=(n, 12))
  score = dis.mean_abs_pcc(a, b)
  assert score < 0.03
  assert score == pytest.approx(dis.chance_level(n), rel=0.15)
  assert dis.chance_level(n) == pytest.approx(math.sqrt(2 / (math.pi * (n - 1))))


def test_identical_and_linearly_related_1d_blocks_score_one():
  rng = np.random.default_rng(1)
  a = rng.normal(size=(50, 1))
  assert dis.mean_abs_pcc(a, a) == pytest.approx(1.0)
  assert dis.mean_abs_pcc(a, 3.0 * a - 2.0) == pytest.approx(1.0)
  assert dis.mean_abs_pcc(a, -0.5 * a + 7.0) == pytest.approx(1.0)


def test_block_of_scaled_copies_of_one_signal_scores_one():
  rng = np.random.default_rng(2)
  s = rng.normal(size=(40, 1))
  a = s * np.array([[1.0, -2.0, 0.5]]) + np.array([[0.0, 1.0, 5.0]])
  b = s * np.array([[4.0, -1.0]])
  assert dis.mean_abs_pcc(a, b) == pytest.approx(1.0)
  assert dis.mean_abs_pcc(a) == pytest.approx(1.0)  # within-block: all 3 distinct pairs are |r| = 1


def test_sign_invariance():
  rng = np.random.default_rng(3)
  s = rng.normal(size=(60, 3))
  a = s + 0.5 * rng.normal(size=s.shape)
  b = s @ rng.normal(size=(3, 4)) + 0.5 * rng.normal(size=(60, 4))
  flip = np.array([1.0, -1.0, 1.0, -1.0])
  base = dis.mean_abs_pcc(a, b)
  assert 0.1 < base < 0.95
  assert dis.mean_abs_pcc(-a, b) == pytest.approx(base)
  assert dis.mean_abs_pcc(a, b * flip) == pytest.approx(base)


def test_hand_computed_pair_of_2d_blocks():
  # a0 = x, a1 = y, b0 = x + y with x, y orthogonal zero-mean unit-variance columns:
  # r(x, x+y) = 1/sqrt(2), r(y, x+y) = 1/sqrt(2) -> score 1/sqrt(2); within a: r(x, y) = 0.
  x = np.array([1.0, -1.0, 1.0, -1.0])
  y = np.array([1.0, 1.0, -1.0, -1.0])
  a = np.stack([x, y], axis=1)
  b = (x + y)[:, None]
  assert dis.mean_abs_pcc(a, b) == pytest.approx(1 / math.sqrt(2))
  assert dis.mean_abs_pcc(a) == pytest.approx(0.0)


def test_constant_dims_are_excluded_and_reported():
  rng = np.random.default_rng(4)
  a = rng.normal(size=(30, 1))
  with_dead = np.concatenate([a, np.zeros((30, 2)), np.full((30, 1), 0.1)], axis=1)  # 3 constant columns
  np.testing.assert_array_equal(dis.constant_dims(with_dead), [False, True, True, True])
  assert dis.mean_abs_pcc(with_dead, 2 * a) == pytest.approx(1.0)
  report = dis.disentanglement_report({"depth": with_dead, "light": 2 * a})
  assert report["constant_dims"] == {"depth": 3, "light": 0}
  assert report["dims"] == {"depth": 4, "light": 1}


def test_all_constant_block_is_an_error():
  with pytest.raises(ValueError, match="'view' has no varying dimension"):
    dis.feature_correlation_matrix({"depth": np.eye(5), "view": np.ones((5, 3))})


def test_matrix_structure_and_mean_pcc():
  rng = np.random.default_rng(5)
  n = 300
  shared = rng.normal(size=(n, 1))
  features = {
    "depth": np.concatenate([shared, rng.normal(size=(n, 3))], axis=1),
    "albedo": rng.normal(size=(n, 5)),
    "light": np.concatenate([shared, rng.normal(size=(n, 1))], axis=1),
    "view": rng.normal(size=(n, 2)),
  }
  names, matrix = dis.feature_correlation_matrix(features)
  assert names == ["depth", "albedo", "light", "view"]
  assert matrix.shape == (4, 4)
  np.testing.assert_allclose(matrix, matrix.T)
  # depth-light share one of 4 x 2 = 8 pairs at |r| = 1, the other 7 are independent (about chance level).
  assert matrix[0, 2] == pytest.approx(1 / 8 + 7 / 8 * dis.chance_level(n), abs=0.03)
  assert matrix[0, 1] < 0.1 and matrix[1, 3] < 0.1
  assert matrix[0, 2] == pytest.approx(dis.mean_abs_pcc(features["depth"], features["light"]))
  assert matrix[0, 0] == pytest.approx(dis.mean_abs_pcc(features["depth"]))
  expected = matrix[np.triu_indices(4, k=1)].mean()
  assert dis.mean_pcc(matrix) == pytest.approx(expected)
  assert dis.mean_pcc(features) == pytest.approx(expected)
  report = dis.disentanglement_report(features)
  assert report["mean_pcc"] == pytest.approx(expected)
  assert report["n_samples"] == n


def test_within_block_is_nan_for_one_varying_dim():
  names, matrix = dis.feature_correlation_matrix({"a": np.arange(10.0)[:, None], "b": np.eye(10)})
  assert math.isnan(matrix[0, 0])
  assert not math.isnan(matrix[1, 1])


def test_errors():
  with pytest.raises(ValueError, match="differ in their number of samples"):
    dis.feature_correlation_matrix({"a": np.eye(4), "b": np.eye(5)})
  with pytest.raises(ValueError, match="'a' must have rank 2"):
    dis.feature_correlation_matrix({"a": np.zeros(4)})
  with pytest.raises(ValueError, match="non-finite"):
    dis.feature_correlation_matrix({"a": np.array([[np.nan], [1.0]])})
  with pytest.raises(ValueError, match="non-empty dict"):
    dis.feature_correlation_matrix({})
  with pytest.raises(ValueError, match="at least 2 feature blocks"):
    dis.mean_pcc(np.ones((1, 1)))
  with pytest.raises(ValueError, match="at least 2 samples"):
    dis.feature_correlation_matrix({"a": np.ones((1, 3))})
