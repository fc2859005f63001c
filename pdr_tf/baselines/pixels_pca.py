"""Raw-pixel baseline: images block-averaged by an integer factor, flattened, and projected with PCA.

The fitted state is a plain `PCAState` of NumPy arrays (no sklearn object), so embedding is one matrix product and
the state round-trips through a single .npz file.
"""

import dataclasses
import os

import numpy as np
from sklearn.decomposition import PCA

from pdr_tf.baselines import image_checks


@dataclasses.dataclass(frozen=True)
class PCAState:
  """A fitted pixel PCA.

  Attributes:
    mean: float32 [D], the mean of the flattened, downsampled training images.
    components: float32 [C, D], orthonormal principal axes, by decreasing variance.
    explained_variance: float32 [C], variance of the training data along each axis.
    explained_variance_ratio: float32 [C], that variance over the total variance.
    downsample: the integer block-average factor applied to H and W before flattening.
    image_shape: (H, W, 3) of the images it was fitted on; `embed_pca` requires the same.
  """

  mean: np.ndarray
  components: np.ndarray
  explained_variance: np.ndarray
  explained_variance_ratio: np.ndarray
  downsample: int
  image_shape: tuple

  @property
  def n_components(self):
    return int(self.components.shape[0])


def _check_images(images, name="images"):
  images = np.asarray(images)
  if images.ndim != 4 or images.shape[-1] != 3:
    raise ValueError(f"{name} must be [N, H, W, 3], got shape {images.shape}")
  if images.shape[0] == 0:
    raise ValueError(f"{name} is empty (N = 0)")
  if not np.issubdtype(images.dtype, np.floating):
    raise ValueError(f"{name} must be floating point in [-1, 1], got dtype {images.dtype}")
  image_checks.check_model_range(name, images)
  return images


def downsample_images(images, factor):
  """Block-averages images by an integer factor (pure function).

  Args:
    images: float [N, H, W, C]; H and W divisible by `factor`.
    factor: integer >= 1; 1 returns the images unchanged (as float32).

  Returns:
    float32 [N, H/factor, W/factor, C].
  """
  if isinstance(factor, bool) or not isinstance(factor, (int, np.integer)) or factor < 1:
    raise ValueError(f"downsample must be a positive integer, got {factor!r}")
  images = np.asarray(images, dtype=np.float32)
  n, h, w, c = images.shape
  if h % factor or w % factor:
    raise ValueError(f"downsample={factor} must divide the image size {h}x{w}")
  if factor == 1:
    return images
  return images.reshape(n, h // factor, factor, w // factor, factor, c).mean(axis=(2, 4))


def _flatten(images, factor):
  small = downsample_images(images, factor)
  return small.reshape(small.shape[0], -1)


def fit_pca(images, n_components=64, seed=0, downsample=2):
  """Fits PCA to downsampled, flattened pixels.

  Args:
    images: float [N, H, W, 3] in [-1, 1].
    n_components: C, number of principal components; at most min(N, D) with D = (H/f)*(W/f)*3.
    seed: random_state of sklearn's (possibly randomized) SVD, for reproducibility.
    downsample: integer factor f; H and W must be divisible by it.

  Returns:
    A `PCAState`.
  """
  images = _check_images(images)
  if isinstance(n_components, bool) or not isinstance(n_components, (int, np.integer)) or n_components < 1:
    raise ValueError(f"n_components must be a positive integer, got {n_components!r}")
  x = _flatten(images, downsample)
  n, d = x.shape
  if n_components > min(n, d):
    raise ValueError(
      f"n_components={n_components} exceeds min(N, D) = min({n}, {d}) "
      f"(N images, D = pixels*3 after downsample={downsample})"
    )
  pca = PCA(n_components=int(n_components), random_state=seed)
  pca.fit(x)
  return PCAState(
    mean=pca.mean_.astype(np.float32),
    components=pca.components_.astype(np.float32),
    explained_variance=pca.explained_variance_.astype(np.float32),
    explained_variance_ratio=pca.explained_variance_ratio_.astype(np.float32),
    downsample=int(downsample),
    image_shape=tuple(int(s) for s in images.shape[1:]),
  )


def _check_shape(state, images):
  if tuple(images.shape[1:]) != tuple(state.image_shape):
    raise ValueError(
      f"images must be [N, {', '.join(map(str, state.image_shape))}] like the fitted PCA, got shape {images.shape}"
    )


def embed_pca(pca_state, images):
  """Projects images onto the principal axes.

  Args:
    pca_state: a `PCAState` from `fit_pca` or `load_pca`.
    images: float [N, H, W, 3] in [-1, 1], the same H, W as at fitting.

  Returns:
    float32 np.ndarray [N, C], the PCA coordinates (not whitened).
  """
  images = _check_images(images)
  _check_shape(pca_state, images)
  x = _flatten(images, pca_state.downsample)
  return ((x - pca_state.mean) @ pca_state.components.T).astype(np.float32)


def reconstruct_pca(pca_state, codes):
  """Maps PCA coordinates back to downsampled images.

  Args:
    pca_state: a `PCAState`.
    codes: float [N, C'] with C' <= C: coordinates on the first C' axes (truncation gives the rank-C' reconstruction).

  Returns:
    float32 [N, H/f, W/f, 3], in the pixel units of the fitted images.
  """
  codes = np.asarray(codes, dtype=np.float32)
  if codes.ndim != 2 or codes.shape[1] > pca_state.n_components:
    raise ValueError(f"codes must be [N, C'] with C' <= {pca_state.n_components}, got shape {codes.shape}")
  h, w, c = pca_state.image_shape
  f = pca_state.downsample
  x = codes @ pca_state.components[: codes.shape[1]] + pca_state.mean
  return x.reshape(-1, h // f, w // f, c).astype(np.float32)


def save_pca(pca_state, path):
  """Writes a `PCAState` to an .npz file.

  Args:
    pca_state: the state to save.
    path: file path ending in ".npz" (parent folders are created).

  Returns:
    The path as a string.
  """
  path = os.fspath(path)
  if not path.endswith(".npz"):
    raise ValueError(f"PCA state path must end with '.npz', got {path!r}")
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  np.savez(
    path,
    mean=pca_state.mean,
    components=pca_state.components,
    explained_variance=pca_state.explained_variance,
    explained_variance_ratio=pca_state.explained_variance_ratio,
    downsample=np.int64(pca_state.downsample),
    image_shape=np.asarray(pca_state.image_shape, np.int64),
  )
  return path


def load_pca(path):
  """Reads a `PCAState` written by `save_pca`.

  Args:
    path: the .npz file.

  Returns:
    The `PCAState`.
  """
  path = os.fspath(path)
  if not os.path.exists(path):
    raise FileNotFoundError(f"PCA state file not found: {path}")
  with np.load(path, allow_pickle=False) as data:
    missing = {f.name for f in dataclasses.fields(PCAState)} - set(data.files)
    if missing:
      raise ValueError(f"{path} is not a PCA state file: missing {sorted(missing)}")
    return PCAState(
      mean=data["mean"],
      components=data["components"],
      explained_variance=data["explained_variance"],
      explained_variance_ratio=data["explained_variance_ratio"],
      downsample=int(data["downsample"]),
      image_shape=tuple(int(s) for s in data["image_shape"]),
    )
