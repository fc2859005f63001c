"""Tests for pdr_tf.baselines.pixels_pca: downsampling, PCA fit/embed/reconstruct and .npz round trip."""

import numpy as np
import pytest

from pdr_tf.baselines import pixels_pca


def random_images(n, size=16, seed=0):
  """[n, size, size, 3] smooth-ish images in [-1, 1]: random low-rank mixtures, so PCA has structure to find."""
  rng = np.random.default_rng(seed)
  bases = rng.uniform(-1, 1, (6, size, size, 3))
  weights = rng.dirichlet(np.ones(6), n)
  noise = rng.normal(0, 0.01, (n, size, size, 3))
  return np.clip(np.tensordot(weights, bases, axes=1) + noise, -1, 1).astype(np.float32)


def test_downsample_block_mean():
  images = np.arange(2 * 4 * 4 * 3, dtype=np.float32).reshape(2, 4, 4, 3)
  small = pixels_pca.downsample_images(images, 2)
  assert small.shape == (2, 2, 2, 3)
  np.testing.assert_allclose(small[0, 0, 0], images[0, :2, :2].mean(axis=(0, 1)))
  np.testing.assert_allclose(small[1, 1, 0], images[1, 2:, :2].mean(axis=(0, 1)))
  np.testing.assert_array_equal(pixels_pca.downsample_images(images, 1), images)
  with pytest.raises(ValueError, match="divide"):
    pixels_pca.downsample_images(images, 3)
  with pytest.raises(ValueError, match="positive integer"):
    pixels_pca.downsample_images(images, 0)


def test_fit_and_embed_shapes():
  images = random_images(40, size=64)
  state = pixels_pca.fit_pca(images, n_components=8)
  assert state.components.shape == (8, 32 * 32 * 3)
  assert state.mean.shape == (32 * 32 * 3,)
  assert state.image_shape == (64, 64, 3) and state.downsample == 2 and state.n_components == 8
  codes = pixels_pca.embed_pca(state, images[:5])
  assert codes.shape == (5, 8) and codes.dtype == np.float32
  # Orthonormal axes, sorted by variance; the training codes have the fitted variances.
  np.testing.assert_allclose(state.components @ state.components.T, np.eye(8), atol=1e-4)
  assert np.all(np.diff(state.explained_variance) <= 1e-6)
  train_codes = pixels_pca.embed_pca(state, images)
  np.testing.assert_allclose(train_codes.var(axis=0, ddof=1), state.explained_variance, rtol=1e-3)


def test_embed_matches_projection_without_downsampling():
  images = random_images(20, size=8)
  state = pixels_pca.fit_pca(images, n_components=5, downsample=1)
  flat = images.reshape(20, -1)
  np.testing.assert_allclose(pixels_pca.embed_pca(state, images), (flat - flat.mean(0)) @ state.components.T, atol=1e-4)


def test_more_components_explain_more_variance():
  images = random_images(30, size=16, seed=1)
  errors, explained = [], []
  for c in (1, 2, 4, 8):
    state = pixels_pca.fit_pca(images, n_components=c, downsample=2)
    recon = pixels_pca.reconstruct_pca(state, pixels_pca.embed_pca(state, images))
    errors.append(float(((recon - pixels_pca.downsample_images(images, 2)) ** 2).mean()))
    explained.append(float(state.explained_variance_ratio.sum()))
  assert all(a > b for a, b in zip(errors, errors[1:])), errors
  assert all(a < b for a, b in zip(explained, explained[1:])), explained
  # Six latent bases plus tiny noise: eight components explain almost everything.
  assert explained[-1] > 0.99 and errors[-1] < 1e-3


def test_deterministic_for_seed():
  images = random_images(30, size=16, seed=2)
  a = pixels_pca.fit_pca(images, n_components=4, seed=0)
  b = pixels_pca.fit_pca(images, n_components=4, seed=0)
  np.testing.assert_array_equal(a.components, b.components)


def test_round_trip(tmp_path):
  images = random_images(25, size=16, seed=3)
  state = pixels_pca.fit_pca(images, n_components=6, downsample=4)
  path = pixels_pca.save_pca(state, tmp_path / "nested" / "pca.npz")
  loaded = pixels_pca.load_pca(path)
  assert loaded.downsample == 4 and loaded.image_shape == (16, 16, 3)
  for field in ("mean", "components", "explained_variance", "explained_variance_ratio"):
    np.testing.assert_array_equal(getattr(loaded, field), getattr(state, field))
  np.testing.assert_array_equal(pixels_pca.embed_pca(loaded, images), pixels_pca.embed_pca(state, images))


def test_errors(tmp_path):
  images = random_images(10, size=8)
  with pytest.raises(ValueError, match=r"exceeds min\(N, D\)"):
    pixels_pca.fit_pca(images, n_components=11, downsample=1)  # N = 10
  with pytest.raises(ValueError, match=r"exceeds min\(N, D\)"):
    pixels_pca.fit_pca(images, n_components=4, downsample=8)  # D = 1 * 1 * 3
  with pytest.raises(ValueError, match="n_components"):
    pixels_pca.fit_pca(images, n_components=0)
  with pytest.raises(ValueError, match=r"\[-1, 1\]"):
    pixels_pca.fit_pca(images * 255, n_components=2)
  with pytest.raises(ValueError, match="floating point"):
    pixels_pca.fit_pca(np.zeros((10, 8, 8, 3), np.uint8), n_components=2)
  with pytest.raises(ValueError, match="shape"):
    pixels_pca.fit_pca(images[..., 0], n_components=2)
  state = pixels_pca.fit_pca(images, n_components=2)
  with pytest.raises(ValueError, match="like the fitted PCA"):
    pixels_pca.embed_pca(state, random_images(3, size=16))
  with pytest.raises(ValueError, match="codes"):
    pixels_pca.reconstruct_pca(state, np.zeros((3, 5)))
  with pytest.raises(ValueError, match=r"\.npz"):
    pixels_pca.save_pca(state, tmp_path / "pca.bin")
  with pytest.raises(FileNotFoundError):
    pixels_pca.load_pca(tmp_path / "missing.npz")
  np.savez(tmp_path / "other.npz", x=np.zeros(3))
  with pytest.raises(ValueError, match="not a PCA state"):
    pixels_pca.load_pca(tmp_path / "other.npz")
