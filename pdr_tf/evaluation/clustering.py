"""Clustering of learned features (Ward agglomerative or k-means) and per-track averaging, in numpy/scikit-learn."""

import numpy as np
from sklearn.cluster import AgglomerativeClustering, KMeans

METHODS = ("ward", "kmeans")


def _check_features(features, name="features"):
  features = np.asarray(features)
  if features.ndim != 2:
    raise ValueError(f"{name} must have rank 2 [N, D], got shape {features.shape}")
  if features.dtype.kind not in "biuf":
    raise ValueError(f"{name} must be numeric, got dtype {features.dtype}")
  features = features.astype(np.float64)
  if features.shape[0] == 0 or features.shape[1] == 0:
    raise ValueError(f"{name} is empty: shape {features.shape}")
  if not np.all(np.isfinite(features)):
    bad = int(np.count_nonzero(~np.isfinite(features).all(axis=1)))
    raise ValueError(f"{name} has non-finite values (NaN or inf) in {bad} of {features.shape[0]} rows")
  return features


def l2_normalize_rows(features, eps=1e-12):
  """Scales each row to unit Euclidean norm; all-zero rows stay zero.

  Args:
      features: [N, D] array.
      eps: norms below this are treated as zero.

  Returns:
      [N, D] float64 array.
  """
  features = _check_features(features)
  norms = np.linalg.norm(features, axis=1, keepdims=True)
  return features / np.maximum(norms, eps)


def cluster(features, k, method="ward", seed=0, l2_normalize=False):
  """Clusters feature vectors into k groups.

  Args:
      features: [N, D] finite feature vectors, one per sample (or per track after `average_by_group`).
      k: number of clusters, 2 <= k <= N (the evaluation uses the number of ground-truth classes).
      method: "ward" (agglomerative, Ward linkage, deterministic; the released code's choice) or "kmeans"
          (KMeans with n_init=10 and random_state=seed).
      seed: random seed for "kmeans"; unused by "ward".
      l2_normalize: scale every feature vector to unit norm first.

  Returns:
      [N] int64 cluster ids in [0, k).

  Raises:
      ValueError: wrong rank, non-finite features, k out of range, or an unknown method.
  """
  features = _check_features(features)
  if method not in METHODS:
    raise ValueError(f"unknown clustering method {method!r}; expected one of {METHODS}")
  if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
    raise ValueError(f"k must be an int, got {k!r}")
  n = features.shape[0]
  if k < 2:
    raise ValueError(f"k must be at least 2, got {k}")
  if k > n:
    raise ValueError(f"k={k} is larger than the number of samples N={n}")
  if l2_normalize:
    features = l2_normalize_rows(features)
  if method == "ward":
    model = AgglomerativeClustering(n_clusters=int(k), linkage="ward")
  else:
    model = KMeans(n_clusters=int(k), n_init=10, random_state=seed)
  return model.fit_predict(features).astype(np.int64)


def _group_index(group_ids, n):
  group_ids = np.asarray(group_ids)
  if group_ids.ndim != 1:
    raise ValueError(f"group_ids must be 1-D, got shape {group_ids.shape}")
  if group_ids.shape[0] != n:
    raise ValueError(f"group_ids has {group_ids.shape[0]} entries but there are {n} samples")
  if n == 0:
    raise ValueError("group_ids is empty")
  unique, first, inverse = np.unique(group_ids, return_index=True, return_inverse=True)
  # np.unique sorts; re-number groups in the order they first appear so outputs follow the input order.
  order = np.argsort(first, kind="stable")
  rank = np.empty_like(order)
  rank[order] = np.arange(order.size)
  return unique[order], rank[inverse.ravel()]


def average_by_group(features, group_ids):
  """Averages feature vectors per group (e.g. the frames of a face track).

  Args:
      features: [N, D] per-sample features.
      group_ids: [N] group of each sample (ints or strings).

  Returns:
      (group_features [G, D] float64 means, group_ids [G]) with groups in order of first appearance.
  """
  features = _check_features(features)
  ids, index = _group_index(group_ids, features.shape[0])
  sums = np.zeros((ids.size, features.shape[1]), dtype=np.float64)
  np.add.at(sums, index, features)
  counts = np.bincount(index, minlength=ids.size).astype(np.float64)
  return sums / counts[:, None], ids


def labels_by_group(labels, group_ids):
  """Carries one label per group, in the same group order as `average_by_group`.

  Args:
      labels: [N] per-sample labels.
      group_ids: [N] group of each sample.

  Returns:
      (group_labels [G], group_ids [G]).

  Raises:
      ValueError: a group holds more than one distinct label, or shapes disagree.
  """
  labels = np.asarray(labels)
  if labels.ndim != 1:
    raise ValueError(f"labels must be 1-D, got shape {labels.shape}")
  ids, index = _group_index(group_ids, labels.shape[0])
  first = np.full(ids.size, -1, dtype=np.int64)
  # The first sample of each group, by going backwards so earlier samples overwrite later ones.
  first[index[::-1]] = np.arange(labels.shape[0])[::-1]
  group_labels = labels[first]
  conflicts = labels != group_labels[index]
  if np.any(conflicts):
    bad = ids[np.unique(index[conflicts])]
    shown = ", ".join(str(b) for b in bad[:5])
    raise ValueError(f"{bad.size} group(s) have conflicting labels, e.g. {shown}")
  return group_labels, ids
