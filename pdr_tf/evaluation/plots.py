"""Evaluation figures written as PNG files with matplotlib's Agg canvas (never a screen, never pyplot state)."""

import os

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from scipy.optimize import linear_sum_assignment

from pdr_tf.evaluation import metrics

MAX_LEGEND_ENTRIES = 20
MAX_ANNOTATED_CELLS = 400
DPI = 100


def _save(fig, path):
  path = os.fspath(path)
  parent = os.path.dirname(path)
  if parent:
    os.makedirs(parent, exist_ok=True)
  # An explicit Agg canvas: works whatever backend pyplot may have selected elsewhere in the process.
  FigureCanvasAgg(fig)
  fig.savefig(path, format="png", dpi=DPI, bbox_inches="tight")
  return path


def pca_2d(features):
  """Projects features onto their first two principal components.

  Args:
      features: [N, D] array, N >= 2.

  Returns:
      (points [N, 2], explained [2] fraction of the total variance per axis; a missing axis (D = 1) is zeros).
  """
  features = np.asarray(features, dtype=np.float64)
  if features.ndim != 2 or features.shape[0] < 2 or features.shape[1] < 1:
    raise ValueError(f"features must have shape [N, D] with N >= 2, got {features.shape}")
  if not np.all(np.isfinite(features)):
    raise ValueError("features has non-finite values")
  centred = features - features.mean(axis=0)
  _, s, vt = np.linalg.svd(centred, full_matrices=False)
  points = np.zeros((features.shape[0], 2))
  explained = np.zeros(2)
  m = min(2, vt.shape[0])
  points[:, :m] = centred @ vt[:m].T
  total = (s**2).sum()
  if total > 0:
    explained[:m] = s[:m] ** 2 / total
  return points, explained


def _colors(n):
  cmap = colormaps["tab10" if n <= 10 else "tab20"]
  return [cmap(i % cmap.N) for i in range(n)]


def embedding_scatter(features, labels, path, title="Embedding (PCA)"):
  """Scatter plot of a 2-D PCA projection of the features, one colour per label.

  Args:
      features: [N, D] features (N >= 2).
      labels: [N] labels (classes or clusters; ints or strings).
      path: output PNG path (parent folders are created).
      title: figure title.

  Returns:
      The PNG path as a str.
  """
  points, explained = pca_2d(features)
  labels = np.asarray(labels)
  if labels.shape != (points.shape[0],):
    raise ValueError(f"labels must have shape [{points.shape[0]}] to match features, got {labels.shape}")
  names = np.unique(labels)
  fig = Figure(figsize=(6, 5))
  ax = fig.add_subplot()
  for name, color in zip(names, _colors(names.size)):
    sel = labels == name
    ax.scatter(points[sel, 0], points[sel, 1], s=12, color=color, label=f"{name} ({int(sel.sum())})", alpha=0.8)
  ax.set_xlabel(f"PC 1 ({100 * explained[0]:.1f}% variance)")
  ax.set_ylabel(f"PC 2 ({100 * explained[1]:.1f}% variance)")
  ax.set_title(title)
  if names.size <= MAX_LEGEND_ENTRIES:
    ax.legend(loc="best", fontsize="small", markerscale=1.5)
  return _save(fig, path)


def hungarian_column_order(matrix):
  """Column order that puts each row's Hungarian-matched column on the diagonal.

  Args:
      matrix: [C, K] contingency counts (rows classes, columns clusters).

  Returns:
      [K] int column indices: matched columns in row order, then unmatched columns by decreasing total count.
  """
  matrix = np.asarray(matrix)
  rows, cols = linear_sum_assignment(matrix, maximize=True)
  matched = [int(c) for _, c in sorted(zip(rows, cols))]
  taken = set(matched)
  rest = [c for c in np.argsort(-matrix.sum(axis=0), kind="stable") if c not in taken]
  return np.array(matched + [int(c) for c in rest], dtype=np.int64)


def confusion_matrix_plot(labels_true, labels_pred, path, title=None):
  """Contingency heatmap: rows are true classes, columns clusters ordered by Hungarian matching.

  Args:
      labels_true: [N] classes.
      labels_pred: [N] clusters.
      path: output PNG path.
      title: figure title; by default the WCP and Hungarian accuracy.

  Returns:
      The PNG path as a str.
  """
  matrix, classes, clusters = metrics.contingency_matrix(labels_true, labels_pred)
  order = hungarian_column_order(matrix)
  matrix, clusters = matrix[:, order], clusters[order]
  if title is None:
    title = (
      f"WCP {metrics.weighted_cluster_purity(labels_true, labels_pred):.4f}, "
      f"Hungarian {metrics.hungarian_accuracy(labels_true, labels_pred):.4f}"
    )
  fig = Figure(figsize=(1.5 + 0.6 * clusters.size, 1.5 + 0.5 * classes.size))
  ax = fig.add_subplot()
  image = ax.imshow(matrix, cmap="Blues", aspect="auto")
  fig.colorbar(image, ax=ax, label="samples")
  ax.set_xticks(range(clusters.size), [str(c) for c in clusters], rotation=45, ha="right")
  ax.set_yticks(range(classes.size), [str(c) for c in classes])
  ax.set_xlabel("cluster (Hungarian order)")
  ax.set_ylabel("true class")
  ax.set_title(title)
  if matrix.size <= MAX_ANNOTATED_CELLS:
    threshold = matrix.max() / 2
    for (i, j), count in np.ndenumerate(matrix):
      ax.text(
        j, i, str(count), ha="center", va="center", fontsize="small", color="white" if count > threshold else "black"
      )
  return _save(fig, path)


def correlation_heatmap(names, matrix, path, title="Mean |PCC| between features"):
  """Heatmap of a feature-block correlation matrix (e.g. from `disentanglement.feature_correlation_matrix`).

  Args:
      names: [F] block names.
      matrix: [F, F] scores in [0, 1] (NaN cells are shown as "n/a").
      path: output PNG path.
      title: figure title.

  Returns:
      The PNG path as a str.
  """
  names = [str(n) for n in names]
  matrix = np.asarray(matrix, dtype=np.float64)
  if matrix.shape != (len(names), len(names)):
    raise ValueError(f"matrix must have shape [{len(names)}, {len(names)}] to match names, got {matrix.shape}")
  fig = Figure(figsize=(1.5 + 0.9 * len(names), 1.0 + 0.8 * len(names)))
  ax = fig.add_subplot()
  image = ax.imshow(np.ma.masked_invalid(matrix), cmap="viridis", vmin=0.0, vmax=1.0)
  fig.colorbar(image, ax=ax, label="mean |PCC|")
  ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
  ax.set_yticks(range(len(names)), names)
  ax.set_title(title)
  for (i, j), value in np.ndenumerate(matrix):
    text = "n/a" if not np.isfinite(value) else f"{value:.2f}"
    ax.text(
      j,
      i,
      text,
      ha="center",
      va="center",
      fontsize="small",
      color="white" if np.isfinite(value) and value < 0.6 else "black",
    )
  return _save(fig, path)
