"""Tests for pdr_tf.evaluation.metrics: hand-computed clustering scores, extreme clusterings and input checks."""

import math

import numpy as np
import pytest

from pdr_tf.evaluation import metrics

# A small case checked by hand.  Classes [0 0 0 1 1 1], clusters [0 0 1 1 1 1]:
#   contingency  class 0: (2, 1)   class 1: (0, 3)     cluster sizes (2, 4), class sizes (3, 3), N = 6
TRUE_SMALL = [0, 0, 0, 1, 1, 1]
PRED_SMALL = [0, 0, 1, 1, 1, 1]


def test_contingency_matrix_counts_and_sorted_ids():
  matrix, classes, clusters = metrics.contingency_matrix(["b", "a", "a"], [7, 7, 3])
  assert classes.tolist() == ["a", "b"]
  assert clusters.tolist() == [3, 7]
  np.testing.assert_array_equal(matrix, [[1, 1], [0, 1]])
  assert matrix.dtype == np.int64


def test_hand_computed_small_case():
  report = metrics.clustering_report(TRUE_SMALL, PRED_SMALL)
  # WCP: majority counts 2 (cluster 0) + 3 (cluster 1) = 5 of 6.  Hungarian: 0->0 (2) and 1->1 (3), also 5/6.
  assert report["wcp"] == pytest.approx(5 / 6)
  assert report["hungarian_accuracy"] == pytest.approx(5 / 6)
  # Pairs: same cluster C(2,2)+C(4,2) = 7; same class C(3,2)+C(3,2) = 6; both C(2,2)+C(3,2) = 4.
  # precision 4/7, recall 4/6, F1 = 2 pr / (p + r) = 8/13.
  assert report["pairwise_precision"] == pytest.approx(4 / 7)
  assert report["pairwise_recall"] == pytest.approx(2 / 3)
  assert report["pairwise_f1"] == pytest.approx(8 / 13)
  # ARI: index 4, expected 6*7/15 = 2.8, max (6+7)/2 = 6.5 -> (4-2.8)/(6.5-2.8) = 12/37.
  assert report["ari"] == pytest.approx(12 / 37)
  # BCubed precision: cluster 0 (2^2+0)/2 = 2, cluster 1 (1^2+3^2)/4 = 2.5 -> 4.5/6 = 3/4.
  # BCubed recall: class 0 (2^2+1^2)/3 = 5/3, class 1 3^2/3 = 3 -> (14/3)/6 = 7/9.  F1 = 42/55.
  assert report["bcubed_precision"] == pytest.approx(3 / 4)
  assert report["bcubed_recall"] == pytest.approx(7 / 9)
  assert report["bcubed_f1"] == pytest.approx(42 / 55)
  # Majority mapping keeps the clusters as they are: class 0 P=1, R=2/3, F1=0.8; class 1 P=3/4, R=1, F1=6/7;
  # equal supports -> (0.8 + 6/7) / 2 = 29/35.
  assert report["weighted_f1"] == pytest.approx(29 / 35)
  # NMI: H(true) = ln 2, H(pred) = -(1/3 ln 1/3 + 2/3 ln 2/3),
  # MI = 1/3 ln 2 + 1/6 ln(1/2) + 1/2 ln(3/2); NMI = MI / ((H(true) + H(pred)) / 2).
  h_true = math.log(2)
  h_pred = -(1 / 3 * math.log(1 / 3) + 2 / 3 * math.log(2 / 3))
  mi = 1 / 3 * math.log(2) + 1 / 6 * math.log(1 / 2) + 1 / 2 * math.log(3 / 2)
  assert report["nmi"] == pytest.approx(mi / ((h_true + h_pred) / 2))


def test_report_has_stable_keys_and_floats():
  report = metrics.clustering_report(TRUE_SMALL, PRED_SMALL)
  assert tuple(report) == metrics.REPORT_KEYS
  assert all(type(v) is float for v in report.values())


def test_perfect_clustering_scores_one_with_renamed_clusters_and_string_labels():
  true = ["leonard", "leonard", "penny", "sheldon", "sheldon", "penny", "raj"]
  pred = [4, 4, 9, 0, 0, 9, 2]
  report = metrics.clustering_report(true, pred)
  for key, value in report.items():
    assert value == pytest.approx(1.0), key


def test_all_in_one_cluster():
  true = [0, 0, 0, 1, 1, 2]
  pred = [5] * 6
  report = metrics.clustering_report(true, pred)
  assert report["wcp"] == pytest.approx(3 / 6)
  assert report["hungarian_accuracy"] == pytest.approx(3 / 6)
  assert report["nmi"] == pytest.approx(0.0)
  assert report["ari"] == pytest.approx(0.0)
  # Same-class pairs C(3,2)+C(2,2) = 4 out of C(6,2) = 15 pairs in the cluster.
  assert report["pairwise_precision"] == pytest.approx(4 / 15)
  assert report["pairwise_recall"] == pytest.approx(1.0)
  # BCubed precision (9 + 4 + 1) / 6 / 6 = 7/18, recall 1.
  assert report["bcubed_precision"] == pytest.approx(7 / 18)
  assert report["bcubed_recall"] == pytest.approx(1.0)
  # Everything maps to class 0: its F1 = 2 * 0.5 * 1 / 1.5 = 2/3 with weight 3/6; others score 0.
  assert report["weighted_f1"] == pytest.approx(1 / 3)


def test_every_sample_its_own_cluster():
  true = [0, 0, 0, 1, 1, 2]
  pred = list(range(6))
  report = metrics.clustering_report(true, pred)
  assert report["wcp"] == pytest.approx(1.0)  # why WCP alone is not enough
  assert report["hungarian_accuracy"] == pytest.approx(3 / 6)  # one cluster per class at most
  assert report["bcubed_precision"] == pytest.approx(1.0)
  # recall: class of 3 -> 1/3 each, class of 2 -> 1/2 each, singleton -> 1: (1 + 1 + 1) / 6.
  assert report["bcubed_recall"] == pytest.approx(0.5)
  assert report["pairwise_precision"] == pytest.approx(1.0)  # no pair shares a cluster: vacuously 1
  assert report["pairwise_recall"] == pytest.approx(0.0)
  assert report["pairwise_f1"] == pytest.approx(0.0)
  assert report["ari"] == pytest.approx(0.0)
  assert report["weighted_f1"] == pytest.approx(1.0)
  assert 0.0 < report["nmi"] < 1.0


def test_permutation_invariance_of_class_and_cluster_names():
  rng = np.random.default_rng(0)
  true = rng.integers(0, 4, size=40)
  pred = rng.integers(0, 5, size=40)
  base = metrics.clustering_report(true, pred)
  class_perm = np.array([2, 0, 3, 1])
  cluster_perm = np.array(["e", "c", "a", "d", "b"])
  renamed = metrics.clustering_report(class_perm[true], cluster_perm[pred])
  for key in metrics.REPORT_KEYS:
    assert renamed[key] == pytest.approx(base[key]), key


def test_sample_order_does_not_matter():
  rng = np.random.default_rng(1)
  true = rng.integers(0, 3, size=30)
  pred = rng.integers(0, 3, size=30)
  order = rng.permutation(30)
  a = metrics.clustering_report(true, pred)
  b = metrics.clustering_report(true[order], pred[order])
  for key in metrics.REPORT_KEYS:
    assert b[key] == pytest.approx(a[key]), key


def test_hungarian_with_more_and_fewer_clusters_than_classes():
  true = [0, 0, 1, 1, 2, 2]
  # Two clusters for three classes: best matching covers 4 of 6; WCP is also 4/6 here.
  assert metrics.hungarian_accuracy(true, [0, 0, 1, 1, 1, 1]) == pytest.approx(4 / 6)
  # Four clusters, class 0 split in two: one half stays unmatched.
  assert metrics.hungarian_accuracy(true, [0, 3, 1, 1, 2, 2]) == pytest.approx(5 / 6)
  assert metrics.weighted_cluster_purity(true, [0, 3, 1, 1, 2, 2]) == pytest.approx(1.0)


def test_wcp_differs_from_hungarian_when_two_clusters_share_a_majority():
  true = [0, 0, 0, 0, 1, 1]
  pred = [0, 0, 1, 1, 1, 1]
  # Both clusters' majority is class 0 (2 of 2, and a 2-2 tie broken to class 0): WCP = (2 + 2) / 6.
  assert metrics.weighted_cluster_purity(true, pred) == pytest.approx(4 / 6)
  # One-to-one: cluster 0 -> class 0 (2) and cluster 1 -> class 1 (2) = 4/6, no better matching exists.
  assert metrics.hungarian_accuracy(true, pred) == pytest.approx(4 / 6)
  pred2 = [0, 0, 0, 1, 1, 1]  # cluster majorities 0 (3/3) and 1 (2/3): both metrics 5/6
  assert metrics.weighted_cluster_purity(true, pred2) == pytest.approx(5 / 6)
  assert metrics.hungarian_accuracy(true, pred2) == pytest.approx(5 / 6)


def test_majority_mapped_labels():
  mapped = metrics.majority_mapped_labels(["x", "x", "y", "y", "y"], [1, 1, 1, 2, 2])
  assert mapped.tolist() == ["x", "x", "x", "y", "y"]


@pytest.mark.parametrize(
  "fn",
  [
    metrics.weighted_cluster_purity,
    metrics.hungarian_accuracy,
    metrics.nmi,
    metrics.ari,
    metrics.pairwise_scores,
    metrics.bcubed_scores,
    metrics.majority_mapped_weighted_f1,
    metrics.clustering_report,
  ],
)
def test_input_errors(fn):
  with pytest.raises(ValueError, match="differ in length"):
    fn([0, 1, 1], [0, 1])
  with pytest.raises(ValueError, match="empty"):
    fn([], [])
  with pytest.raises(ValueError, match="1-D"):
    fn([[0, 1]], [[0, 1]])
  with pytest.raises(ValueError, match="NaN"):
    fn([0.0, np.nan], [0, 1])


@pytest.mark.parametrize("fn", [metrics.ari, metrics.pairwise_scores, metrics.clustering_report])
def test_pair_based_metrics_need_two_samples(fn):
  with pytest.raises(ValueError, match="at least 2 samples"):
    fn([0], [0])


def test_single_sample_is_fine_for_count_based_metrics():
  assert metrics.weighted_cluster_purity([3], [1]) == 1.0
  assert metrics.bcubed_scores([3], [1]) == (1.0, 1.0, 1.0)
