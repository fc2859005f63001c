"""Disentanglement between learned feature blocks, as mean absolute Pearson correlation (PCC) across dimensions.

The paper reports a "mean PCC" between the four learned physical features (depth, albedo, light, view): 0.26
without LOOCC and 0.18 with it, on BBT. It publishes no code or formula, so pdr_tf defines it as follows.

Definition. Let A [N, Da] and B [N, Db] be two feature blocks computed on the same N evaluation samples (e.g.
the depth and albedo features of the same images or tracks).

  1. Constant dimensions are excluded: a column x is constant when max(x) - min(x) <= 1e-12 * max(1, max|x|)
     (dead ReLU units, saturated tanh units). Their number per block is counted and reported, never silently
     mixed in (their correlation is undefined).
  2. For every remaining pair of dimensions (i in A, j in B), r_ij is the Pearson correlation across the N samples:
         r_ij = sum_n (a_ni - mean(a_i)) (b_nj - mean(b_j))
                / sqrt(sum_n (a_ni - mean(a_i))^2 * sum_n (b_nj - mean(b_j))^2)
  3. The block score is the mean of |r_ij| over all Da' * Db' pairs (Da', Db' = non-constant dimensions):
         pcc(A, B) = 1 / (Da' Db') * sum_{i, j} |r_ij|
     The absolute value makes it sign-invariant: negating any dimension does not change it.
  4. Within one block (the diagonal of the matrix), pcc(A, A) is the mean |r_ij| over the Da' (Da' - 1) / 2
     pairs of distinct dimensions i < j (NaN when fewer than two dimensions vary).
  5. The mean PCC of a set of F blocks is the unweighted mean of pcc over its F (F - 1) / 2 distinct pairs of
     blocks (the off-diagonal, upper triangle): each pair of physical properties counts once, whatever its size.

Scale: 0 means no linear relation between any two dimensions, 1 means every dimension of A is an exact linear
function of every dimension of B (e.g. 1-D blocks with B = 3 A - 2). For independent features the score does not
reach 0 on finite N: each r_ij is then about normal with mean 0 and variance 1 / (N - 1), so the expected score
is about sqrt(2 / (pi (N - 1))) (`chance_level`; 0.031 for the 643 BBT tracks, 0.025 for 1000 ShapeNet cars).
Compare scores computed on the same N only.
"""

import logging
import math

import numpy as np

_LOG = logging.getLogger(__name__)

CONSTANT_RTOL = 1e-12


def chance_level(n):
  """Expected mean |PCC| between independent Gaussian features over n samples: sqrt(2 / (pi (n - 1)))."""
  if n < 2:
    raise ValueError(f"n must be at least 2, got {n}")
  return math.sqrt(2.0 / (math.pi * (n - 1)))


def _check_block(x, name):
  x = np.asarray(x)
  if x.ndim != 2:
    raise ValueError(f"feature block {name!r} must have rank 2 [N, D], got shape {x.shape}")
  if x.dtype.kind not in "biuf":
    raise ValueError(f"feature block {name!r} must be numeric, got dtype {x.dtype}")
  if x.shape[0] < 2 or x.shape[1] < 1:
    raise ValueError(f"feature block {name!r} needs at least 2 samples and 1 dimension, got shape {x.shape}")
  x = x.astype(np.float64)
  if not np.all(np.isfinite(x)):
    raise ValueError(f"feature block {name!r} has non-finite values (NaN or inf)")
  return x


def constant_dims(x):
  """Which columns of x [N, D] are constant (see the module docstring). Returns a [D] bool array."""
  x = _check_block(x, "x")
  spread = x.max(axis=0) - x.min(axis=0)
  return spread <= CONSTANT_RTOL * np.maximum(1.0, np.abs(x).max(axis=0))


def _standardize(x, name):
  """Returns (z [N, D'] zero-mean unit-variance non-constant columns, number of constant columns)."""
  x = _check_block(x, name)
  constant = constant_dims(x)
  x = x[:, ~constant]
  x = x - x.mean(axis=0)
  return x / np.sqrt((x**2).mean(axis=0)), int(constant.sum())


def _pcc_between(za, zb):
  r = np.clip(za.T @ zb / za.shape[0], -1.0, 1.0)
  return float(np.abs(r).mean())


def _pcc_within(z):
  d = z.shape[1]
  if d < 2:
    return float("nan")
  r = np.clip(z.T @ z / z.shape[0], -1.0, 1.0)
  return float(np.abs(r[np.triu_indices(d, k=1)]).mean())


def mean_abs_pcc(a, b=None):
  """Mean |PCC| between the dimensions of two blocks, or between distinct dimensions of one block.

  Args:
      a: [N, Da] features.
      b: [N, Db] features of the same N samples, or None for the within-block score of `a`.

  Returns:
      float in [0, 1]; NaN for b=None when fewer than two dimensions of `a` vary.

  Raises:
      ValueError: bad shapes, non-finite values, different N, or a block whose every dimension is constant.
  """
  blocks = {"a": a} if b is None else {"a": a, "b": b}
  _, matrix = feature_correlation_matrix(blocks)
  return float(matrix[0, 0] if b is None else matrix[0, 1])


def _standardize_all(features):
  if not isinstance(features, dict) or not features:
    raise ValueError("features must be a non-empty dict of name -> [N, D] array")
  names = list(features)
  standardized, n_constant = [], {}
  for name in names:
    z, n_constant[name] = _standardize(features[name], name)
    standardized.append(z)
  sizes = {name: z.shape[0] for name, z in zip(names, standardized)}
  if len(set(sizes.values())) != 1:
    raise ValueError(f"feature blocks differ in their number of samples: {sizes}")
  return names, standardized, n_constant


def feature_correlation_matrix(features):
  """Pairwise mean |PCC| between feature blocks.

  Args:
      features: dict name -> [N, D_name] array, all over the same N samples (insertion order is kept).

  Returns:
      (names [F] list of str, matrix [F, F] float64): matrix[i, j] = pcc(block i, block j) off the diagonal,
      the within-block score on it.

  Raises:
      ValueError: bad shapes or values, different N, or a block with no varying dimension.
  """
  names, standardized, n_constant = _standardize_all(features)
  for name, z in zip(names, standardized):
    if n_constant[name]:
      _LOG.info(
        "feature block %r: %d of %d dimensions are constant and excluded from the PCC",
        name,
        n_constant[name],
        n_constant[name] + z.shape[1],
      )
    if z.shape[1] == 0 and len(names) > 1:
      raise ValueError(f"feature block {name!r} has no varying dimension: its correlation is undefined")
  f = len(names)
  matrix = np.empty((f, f), dtype=np.float64)
  for i in range(f):
    matrix[i, i] = _pcc_within(standardized[i])
    for j in range(i + 1, f):
      matrix[i, j] = matrix[j, i] = _pcc_between(standardized[i], standardized[j])
  return names, matrix


def mean_pcc(features_or_matrix):
  """The mean PCC: mean of the off-diagonal (distinct block pairs) of the correlation matrix.

  Args:
      features_or_matrix: a dict of feature blocks (as for `feature_correlation_matrix`) or a square [F, F]
          matrix it returned, F >= 2.

  Returns:
      float in [0, 1].
  """
  if isinstance(features_or_matrix, dict):
    _, matrix = feature_correlation_matrix(features_or_matrix)
  else:
    matrix = np.asarray(features_or_matrix, dtype=np.float64)
  if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] < 2:
    raise ValueError(
      f"mean_pcc needs at least 2 feature blocks (a square [F, F] matrix, F >= 2), got shape {matrix.shape}"
    )
  return float(matrix[np.triu_indices(matrix.shape[0], k=1)].mean())


def disentanglement_report(features):
  """The correlation matrix, mean PCC and constant-dimension counts, ready for JSON.

  Args:
      features: dict name -> [N, D_name] array (at least two blocks).

  Returns:
      dict with names (list), matrix (nested lists, NaN kept as float), mean_pcc, n_samples, chance_level,
      constant_dims (name -> count) and dims (name -> total dimensions).
  """
  names, matrix = feature_correlation_matrix(features)
  _, _, n_constant = _standardize_all(features)
  n = int(np.asarray(features[names[0]]).shape[0])
  return {
    "names": names,
    "matrix": matrix.tolist(),
    "mean_pcc": mean_pcc(matrix),
    "n_samples": n,
    "chance_level": chance_level(n),
    "constant_dims": n_constant,
    "dims": {name: int(np.asarray(features[name]).shape[1]) for name in names},
  }
