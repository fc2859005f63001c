"""Tests for pdr_tf.evaluation.plots: each figure is a valid, non-trivial PNG on disk; PCA and column order by value."""

import numpy as np
import pytest
from PIL import Image

from pdr_tf.evaluation import plots


def _check_png(path, expected):
  assert path == str(expected)
  assert expected.stat().st_size > 5000
  with Image.open(expected) as image:
    assert image.format == "PNG"
    width, height = image.size
    assert width > 200 and height > 200
    # Not a blank canvas: several distinct colours.
    assert len(image.convert("RGB").getcolors(maxcolors=1 << 20)) > 10


def test_embedding_scatter(tmp_path):
  rng = np.random.default_rng(0)
  features = rng.normal(size=(60, 8))
  labels = np.repeat(["leonard", "penny", "raj"], 20)
  out = tmp_path / "sub" / "scatter.png"
  _check_png(plots.embedding_scatter(features, labels, out), out)


def test_embedding_scatter_one_dim_and_label_mismatch(tmp_path):
  out = tmp_path / "one.png"
  _check_png(plots.embedding_scatter(np.arange(10.0)[:, None], np.arange(10) % 2, out), out)
  with pytest.raises(ValueError, match="labels must have shape"):
    plots.embedding_scatter(np.zeros((4, 2)), [0, 1], tmp_path / "bad.png")


def test_pca_2d_finds_the_dominant_axes():
  rng = np.random.default_rng(1)
  t = rng.normal(size=200)
  features = np.stack([10 * t, 0.1 * rng.normal(size=200), np.zeros(200)], axis=1)
  points, explained = plots.pca_2d(features)
  np.testing.assert_allclose(np.abs(points[:, 0]), np.abs(10 * (t - t.mean())), atol=0.01)
  assert explained[0] > 0.99 and explained.sum() == pytest.approx(1.0)


def test_hungarian_column_order():
  # Class 0 matches column 2, class 1 column 0; column 1 is unmatched and goes last.
  matrix = np.array([[0, 1, 9], [7, 2, 0]])
  np.testing.assert_array_equal(plots.hungarian_column_order(matrix), [2, 0, 1])
  # More classes than clusters: every column matched, in the order of the rows that got them.
  np.testing.assert_array_equal(plots.hungarian_column_order(np.array([[1, 0], [0, 5], [6, 0]])), [1, 0])


def test_confusion_matrix_plot(tmp_path):
  true = ["a"] * 10 + ["b"] * 8 + ["c"] * 6
  pred = [2] * 9 + [0] * 9 + [1] * 6
  out = tmp_path / "confusion.png"
  _check_png(plots.confusion_matrix_plot(true, pred, out), out)


def test_correlation_heatmap_with_nan(tmp_path):
  names = ["depth", "albedo", "light", "view"]
  matrix = np.array([[np.nan, 0.2, 0.3, 0.1], [0.2, 0.4, 0.25, 0.15], [0.3, 0.25, 0.9, 0.05], [0.1, 0.15, 0.05, 0.5]])
  out = tmp_path / "pcc.png"
  _check_png(plots.correlation_heatmap(names, matrix, out), out)
  with pytest.raises(ValueError, match=r"shape \[4, 4\]"):
    plots.correlation_heatmap(names, np.zeros((3, 3)), tmp_path / "bad.png")
