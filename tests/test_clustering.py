"""Tests for pdr_tf.evaluation.clustering: Ward / k-means on separable blobs, per-group averaging, labels, errors."""

import numpy as np
import pytest

from pdr_tf.evaluation import clustering


from pdr_tf.evaluation import metrics


def _blobs(seed=0, per_class=20, k=3, dim=5):
  rng = np.random.default_rng(seed)
  centers = rng.normal(size=(k, dim)) * 10.0
  labels = np.repeat(np.arange(k), per_class)
  features = centers[labels] + rng.normal(scale=0.3, size=(labels.size, dim))
  return features, labels


@pytest.mark.parametrize("method", ["ward", "kmeans"])
def test_separable_blobs_are_recovered(method):
  features, labels = _blobs()
  pred = clustering.cluster(features, 3, method=method)
  assert pred.shape == labels.shape
  assert pred.dtype == np.int64
  assert set(pred.tolist()) == {0, 1, 2}
  assert metrics.hungarian_accuracy(labels, pred) == 1.0


def test_ward_is_deterministic_and_kmeans_repeatable_per_seed():
  features, _ = _blobs(seed=1, per_class=8, k=4)
  features = features + np.random.default_rng(5).normal(scale=8.0, size=features.shape)  # overlapping groups
  np.testing.assert_array_equal(clustering.cluster(features, 4), clustering.cluster(features, 4))
  np.testing.assert_array_equal(
    clustering.cluster(features, 4, method="kmeans", seed=3), clustering.cluster(features, 4, method="kmeans", seed=3)
  )


def test_l2_normalize_clusters_by_direction():
  # Two directions at very different scales: without normalisation the far points dominate Ward (the near ones of
  # both directions end up together), with it the split is by direction.
  rng = np.random.default_rng(0)
  scales = np.concatenate([np.full(10, 1.0), np.full(10, 100.0)])
  direction = np.tile([0, 1], 10)
  base = np.array([[1.0, 0.0], [0.0, 1.0]])[direction] + rng.normal(scale=0.01, size=(20, 2))
  features = base * scales[:, None]
  by_norm = clustering.cluster(features, 2)
  by_direction = clustering.cluster(features, 2, l2_normalize=True)
  assert metrics.hungarian_accuracy(direction, by_direction) == 1.0
  assert metrics.hungarian_accuracy(direction, by_norm) < 0.8


def test_l2_normalize_rows_keeps_zero_rows():
  out = clustering.l2_normalize_rows([[3.0, 4.0], [0.0, 0.0]])
  np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0]])


@pytest.mark.parametrize(
  "kwargs, message",
  [
    (dict(features=np.zeros((5, 2)), k=1), "at least 2"),
    (dict(features=np.zeros((5, 2)), k=6), "larger than the number of samples"),
    (dict(features=np.zeros((5, 2)), k=2.0), "must be an int"),
    (dict(features=np.zeros(5), k=2), "rank 2"),
    (dict(features=np.zeros((5, 2, 1)), k=2), "rank 2"),
    (dict(features=np.array([[0.0, np.nan]] * 5), k=2), "non-finite"),
    (dict(features=np.array([[0.0, np.inf]] * 5), k=2), "non-finite"),
    (dict(features=np.zeros((5, 2)), k=2, method="spectral"), "unknown clustering method"),
    (dict(features=np.zeros((0, 2)), k=2), "empty"),
  ],
)
def test_cluster_errors(kwargs, message):
  with pytest.raises(ValueError, match=message):
    clustering.cluster(**kwargs)


def test_average_by_group_keeps_first_appearance_order():
  features = np.array([[1.0, 0.0], [10.0, 10.0], [3.0, 2.0], [20.0, 30.0], [5.0, 5.0]])
  groups = ["t9", "t2", "t9", "t2", "t1"]
  means, ids = clustering.average_by_group(features, groups)
  assert ids.tolist() == ["t9", "t2", "t1"]
  np.testing.assert_allclose(means, [[2.0, 1.0], [15.0, 20.0], [5.0, 5.0]])


def test_average_by_group_errors():
  with pytest.raises(ValueError, match="3 entries but there are 2 samples"):
    clustering.average_by_group(np.zeros((2, 3)), [0, 1, 2])
  with pytest.raises(ValueError, match="1-D"):
    clustering.average_by_group(np.zeros((2, 3)), [[0, 1]])
  with pytest.raises(ValueError, match="non-finite"):
    clustering.average_by_group(np.array([[np.nan]]), [0])


def test_labels_by_group_matches_average_order():
  groups = [7, 3, 7, 5, 3]
  labels = ["penny", "raj", "penny", "sheldon", "raj"]
  group_labels, ids = clustering.labels_by_group(labels, groups)
  _, avg_ids = clustering.average_by_group(np.zeros((5, 1)), groups)
  assert ids.tolist() == avg_ids.tolist() == [7, 3, 5]
  assert group_labels.tolist() == ["penny", "raj", "sheldon"]


def test_labels_by_group_rejects_conflicts():
  with pytest.raises(ValueError, match="1 group\\(s\\) have conflicting labels, e.g. 3"):
    clustering.labels_by_group([0, 1, 1, 2], [3, 3, 4, 5])
