"""Tests of scripts/diagnostics/feature_geometry.py's statistics on hand-made features."""

import numpy as np
import pytest

import fixtures  # pylint: disable=wrong-import-order  (tests/ is on sys.path)


@pytest.fixture(scope="module")
def fg():
  return fixtures.load_diagnostic("feature_geometry")


def _classes(rng, n_per_class=20, k=3, dims=4, spread=0.1):
  """k well separated classes along the diagonal, with small isotropic noise."""
  labels = np.repeat(np.arange(k), n_per_class)
  x = rng.normal(0.0, spread, size=(labels.size, dims))
  x += 10.0 * labels[:, None]
  return x, labels


def test_participation_ratio_counts_the_directions_the_variance_spreads_over(fg):
  rng = np.random.default_rng(0)
  one = np.zeros((500, 5))
  one[:, 2] = rng.normal(size=500)
  assert fg.participation_ratio(one) == pytest.approx(1.0)
  even = rng.normal(size=(20000, 4))
  assert fg.participation_ratio(even) == pytest.approx(4.0, rel=0.05)
  assert fg.participation_ratio(np.ones((10, 3))) == 0.0


def test_between_share_is_one_for_points_at_their_class_means_and_near_zero_for_noise(fg):
  rng = np.random.default_rng(1)
  labels = np.repeat(np.arange(4), 50)
  at_means = np.eye(4)[labels] * 3.0
  assert fg.between_share(at_means, labels) == pytest.approx(1.0)
  noise = rng.normal(size=(labels.size, 8))
  assert fg.between_share(noise, labels) < 0.1
  assert fg.between_share(np.zeros((6, 2)), np.array([0, 0, 0, 1, 1, 1])) == 0.0


def test_dead_dims_and_standardize(fg):
  x = np.stack([np.arange(6.0), np.full(6, 3.0), np.arange(6.0) * 1e-9], axis=1)
  assert fg.dead_dims(x) == 2
  z = fg.standardize(x)
  np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-12)
  np.testing.assert_allclose(z[:, 0].std(), 1.0)
  np.testing.assert_array_equal(z[:, 1], 0.0)


def test_separable_classes_score_full_marks_and_the_probe_sees_through_a_bad_geometry(fg):
  rng = np.random.default_rng(2)
  x, labels = _classes(rng)
  report = fg.block_report(x, labels)
  assert report["ward"] == report["ward_standardized"] == report["probe"] == 1.0
  assert report["between_share"] > 0.99 and report["dims"] == 4 and report["dead"] == 0
  # The classes' axis buried under a wide nuisance axis: Euclidean Ward follows the nuisance, a linear probe does not.
  buried = np.concatenate([x * 0.01, rng.normal(0.0, 5.0, size=(labels.size, 1))], axis=1)
  report = fg.block_report(buried, labels)
  assert report["ward"] < 0.8
  assert report["probe"] == 1.0
  assert report["between_share"] < 0.01


def test_the_probe_is_left_out_when_a_class_is_smaller_than_the_folds(fg):
  x = np.arange(12.0).reshape(6, 2)
  assert fg.probe_accuracy(x, np.array([0, 0, 0, 1, 1, 1])) is None


def test_geometry_reports_each_block_and_depth_plus_albedo_and_averages_tracks(fg):
  rng = np.random.default_rng(3)
  x, labels = _classes(rng, n_per_class=10, k=2)
  features = {"depth": x, "albedo": x[:, :2], "light": rng.normal(size=(x.shape[0], 3))}
  rows = fg.geometry(features, labels)
  assert list(rows) == ["depth", "albedo", "light", "depth+albedo"]
  assert rows["depth+albedo"]["dims"] == 6
  tracks = np.arange(labels.size) // 2  # two frames per track, both of one class
  rows = fg.geometry(features, labels, tracks)
  assert rows["depth"]["probe"] == 1.0 and rows["depth"]["ward"] == 1.0
  table = fg.markdown({"run": rows})
  assert table.count("\n") == 1 + len(rows)
  assert "| run | depth+albedo | 6 |" in table
