"""Clustering metrics from ground-truth classes and predicted clusters (pure numpy / scipy / scikit-learn).

Every function takes `labels_true` and `labels_pred`: 1-D arrays of equal length N holding ints or strings (any
values `np.unique` can sort). Class and cluster ids are only compared for equality, so every metric is invariant
to renaming classes or clusters.

Conventions:
  * "Cluster accuracy" in the face-clustering literature, and the paper's Table 1, is the weighted cluster purity
    (WCP): each cluster is given its majority class, accuracy = sum of majority counts / N. It is 1.0 when every
    sample is its own cluster, so it is reported beside the one-to-one Hungarian accuracy.
  * Pairwise and BCubed precision/recall are ratios whose denominator can be zero (no pair of samples shares a
    cluster, or a class). Such a ratio is 1.0 (vacuously true: no pair is wrong), so a perfect clustering scores
    1.0 everywhere.
  * Ties for a cluster's majority class go to the class that sorts first (`np.argmax`).
"""

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn import metrics as sk_metrics

REPORT_KEYS = (
  "wcp",
  "hungarian_accuracy",
  "nmi",
  "ari",
  "pairwise_precision",
  "pairwise_recall",
  "pairwise_f1",
  "bcubed_precision",
  "bcubed_recall",
  "bcubed_f1",
  "weighted_f1",
)


def _as_labels(labels, name):
  labels = np.asarray(labels)
  if labels.ndim != 1:
    raise ValueError(f"{name} must be a 1-D array of labels, got shape {labels.shape}")
  if labels.dtype.kind == "f" and not np.all(np.isfinite(labels)):
    raise ValueError(f"{name} contains NaN or infinite labels")
  if labels.dtype.kind not in "biufUSO":
    raise ValueError(f"{name} must hold ints or strings, got dtype {labels.dtype}")
  return labels


def check_labels(labels_true, labels_pred, min_samples=1):
  """Validates a pair of label arrays.

  Args:
      labels_true: [N] ground-truth classes.
      labels_pred: [N] predicted clusters.
      min_samples: the fewest samples the calling metric can work with.

  Returns:
      (labels_true, labels_pred) as 1-D numpy arrays.

  Raises:
      ValueError: wrong rank, empty input, length mismatch, NaN labels, or fewer than `min_samples` samples.
  """
  labels_true = _as_labels(labels_true, "labels_true")
  labels_pred = _as_labels(labels_pred, "labels_pred")
  if labels_true.shape[0] != labels_pred.shape[0]:
    raise ValueError(f"labels_true and labels_pred differ in length: {labels_true.shape[0]} vs {labels_pred.shape[0]}")
  if labels_true.shape[0] == 0:
    raise ValueError("labels_true and labels_pred are empty")
  if labels_true.shape[0] < min_samples:
    raise ValueError(f"this metric needs at least {min_samples} samples, got {labels_true.shape[0]}")
  return labels_true, labels_pred


def contingency_matrix(labels_true, labels_pred):
  """Counts of samples per (class, cluster).

  Args:
      labels_true: [N] ground-truth classes.
      labels_pred: [N] predicted clusters.

  Returns:
      (matrix [C, K] int64, classes [C], clusters [K]): matrix[c, k] is the number of samples of class classes[c]
      in cluster clusters[k]; classes and clusters are sorted unique values.
  """
  labels_true, labels_pred = check_labels(labels_true, labels_pred)
  classes, class_idx = np.unique(labels_true, return_inverse=True)
  clusters, cluster_idx = np.unique(labels_pred, return_inverse=True)
  matrix = np.zeros((classes.size, clusters.size), dtype=np.int64)
  np.add.at(matrix, (class_idx.ravel(), cluster_idx.ravel()), 1)
  return matrix, classes, clusters


def weighted_cluster_purity(labels_true, labels_pred):
  """Weighted cluster purity (the literature's "cluster accuracy"): sum over clusters of the majority count / N."""
  matrix, _, _ = contingency_matrix(labels_true, labels_pred)
  return float(matrix.max(axis=0).sum() / matrix.sum())


def hungarian_accuracy(labels_true, labels_pred):
  """One-to-one accuracy: the best matching of clusters to classes (each used at most once), matched count / N.

  Works when the number of clusters differs from the number of classes: unmatched samples count as errors.
  """
  matrix, _, _ = contingency_matrix(labels_true, labels_pred)
  rows, cols = linear_sum_assignment(matrix, maximize=True)
  return float(matrix[rows, cols].sum() / matrix.sum())


def nmi(labels_true, labels_pred):
  """Normalized mutual information with the arithmetic-mean normalisation (scikit-learn's default, made explicit)."""
  labels_true, labels_pred = check_labels(labels_true, labels_pred)
  return float(sk_metrics.normalized_mutual_info_score(labels_true, labels_pred, average_method="arithmetic"))


def ari(labels_true, labels_pred):
  """Adjusted Rand index (needs at least 2 samples: it counts pairs)."""
  labels_true, labels_pred = check_labels(labels_true, labels_pred, min_samples=2)
  return float(sk_metrics.adjusted_rand_score(labels_true, labels_pred))


def _ratio(num, den):
  return float(num / den) if den > 0 else 1.0


def _f1(precision, recall):
  return 0.0 if precision + recall == 0 else float(2.0 * precision * recall / (precision + recall))


def pairwise_scores(labels_true, labels_pred):
  """Pairwise precision, recall and F1 over all unordered pairs of samples.

  A pair is a true positive when both samples share a class and a cluster; precision = TP / pairs sharing a
  cluster, recall = TP / pairs sharing a class.

  Returns:
      (precision, recall, f1) floats in [0, 1].
  """
  labels_true, labels_pred = check_labels(labels_true, labels_pred, min_samples=2)
  # sklearn counts ordered pairs ([[TN, FP], [FN, TP]]): the factor 2 cancels in the ratios.
  (_, fp), (fn, tp) = sk_metrics.cluster.pair_confusion_matrix(labels_true, labels_pred)
  precision = _ratio(tp, tp + fp)
  recall = _ratio(tp, tp + fn)
  return precision, recall, _f1(precision, recall)


def bcubed_scores(labels_true, labels_pred):
  """BCubed precision, recall and F1 (Bagga & Baldwin 1998; Amigo et al. 2009).

  Per sample i: precision_i = |cluster(i) and class(i)| / |cluster(i)|, recall_i = |cluster(i) and class(i)| /
  |class(i)|, both counting i itself; the scores are means over samples. From the contingency matrix n[c, k]:
  precision = sum n[c, k]^2 / n[:, k].sum() / N and recall = sum n[c, k]^2 / n[c, :].sum() / N.

  Returns:
      (precision, recall, f1) floats in (0, 1].
  """
  matrix, _, _ = contingency_matrix(labels_true, labels_pred)
  counts = matrix.astype(np.float64)
  n = counts.sum()
  squared = counts**2
  precision = float((squared / counts.sum(axis=0, keepdims=True)).sum() / n)
  recall = float((squared / counts.sum(axis=1, keepdims=True)).sum() / n)
  return precision, recall, _f1(precision, recall)


def majority_mapped_labels(labels_true, labels_pred):
  """Replaces each sample's cluster by that cluster's majority class.

  Returns:
      [N] array of classes (same dtype as the unique values of labels_true).
  """
  matrix, classes, clusters = contingency_matrix(labels_true, labels_pred)
  majority = classes[matrix.argmax(axis=0)]
  cluster_idx = np.searchsorted(clusters, np.asarray(labels_pred))
  return majority[cluster_idx]


def majority_mapped_weighted_f1(labels_true, labels_pred):
  """The released PDR code's F1: scikit-learn weighted F1 of the majority-mapped predictions.

  Classes that no cluster maps to score F1 0 (zero_division=0) and still carry their support weight.
  """
  labels_true, labels_pred = check_labels(labels_true, labels_pred)
  mapped = majority_mapped_labels(labels_true, labels_pred)
  return float(sk_metrics.f1_score(labels_true, mapped, average="weighted", zero_division=0))


def clustering_report(labels_true, labels_pred):
  """All clustering metrics under stable keys (`REPORT_KEYS`).

  Args:
      labels_true: [N] ground-truth classes, N >= 2.
      labels_pred: [N] predicted clusters.

  Returns:
      dict[str, float] with keys wcp, hungarian_accuracy, nmi, ari, pairwise_precision, pairwise_recall,
      pairwise_f1, bcubed_precision, bcubed_recall, bcubed_f1, weighted_f1.
  """
  labels_true, labels_pred = check_labels(labels_true, labels_pred, min_samples=2)
  pw_p, pw_r, pw_f = pairwise_scores(labels_true, labels_pred)
  bc_p, bc_r, bc_f = bcubed_scores(labels_true, labels_pred)
  report = {
    "wcp": weighted_cluster_purity(labels_true, labels_pred),
    "hungarian_accuracy": hungarian_accuracy(labels_true, labels_pred),
    "nmi": nmi(labels_true, labels_pred),
    "ari": ari(labels_true, labels_pred),
    "pairwise_precision": pw_p,
    "pairwise_recall": pw_r,
    "pairwise_f1": pw_f,
    "bcubed_precision": bc_p,
    "bcubed_recall": bc_r,
    "bcubed_f1": bc_f,
    "weighted_f1": majority_mapped_weighted_f1(labels_true, labels_pred),
  }
  assert tuple(report) == REPORT_KEYS
  return report
