"""Rotation and direction statistics for de-rendering metrics: pure numpy (and scipy) functions.

Views use the renderer's convention: (rx, ry, rz) radians with R = Rz(rz) Ry(ry) Rx(rx) (`geometry.rotation_matrix`).
Distances between rotations are geodesic (the angle of R_a^T R_b, degrees); distances between directions are angles
(degrees). The "median" fits below minimise the mean distance, which is what the reported mean errors measure, so a
fitted frame alignment and a fitted constant predictor are each the best of their kind for that metric.
"""

import numpy as np
from scipy.spatial.transform import Rotation

_TOLERANCE = 1e-10  # radians: a Weiszfeld step smaller than this ends the iteration


def euler_to_matrix(angles) -> np.ndarray:
  """[..., 3] angles (rx, ry, rz) radians -> [..., 3, 3] float64 R = Rz(rz) Ry(ry) Rx(rx)."""
  angles = np.asarray(angles, np.float64)
  if angles.shape[-1:] != (3,):
    raise ValueError(f"angles must have shape [..., 3], got {angles.shape}")
  flat = angles.reshape(-1, 3)
  # scipy's extrinsic "xyz" applies x, then y, then z about the fixed axes: Rz Ry Rx.
  matrices = Rotation.from_euler("xyz", flat).as_matrix()
  return matrices.reshape(angles.shape[:-1] + (3, 3))


def matrix_to_euler(matrices) -> np.ndarray:
  """Inverse of `euler_to_matrix`: [..., 3, 3] rotations -> [..., 3] (rx, ry, rz) radians, ry in [-pi/2, pi/2]."""
  matrices = np.asarray(matrices, np.float64)
  flat = matrices.reshape(-1, 3, 3)
  return Rotation.from_matrix(flat).as_euler("xyz").reshape(matrices.shape[:-2] + (3,))


def geodesic_deg(r_a, r_b) -> np.ndarray:
  """Angle of the rotation taking r_a to r_b, degrees: [..., 3, 3] x [..., 3, 3] -> [...] in [0, 180]."""
  r_a, r_b = np.asarray(r_a, np.float64), np.asarray(r_b, np.float64)
  relative = np.swapaxes(r_a, -1, -2) @ r_b
  shape = relative.shape[:-2]
  return np.degrees(Rotation.from_matrix(relative.reshape(-1, 3, 3)).magnitude()).reshape(shape)


def _check_rotations(rotations, name):
  rotations = np.asarray(rotations, np.float64)
  if rotations.ndim != 3 or rotations.shape[1:] != (3, 3) or rotations.shape[0] == 0:
    raise ValueError(f"{name} must have shape [N, 3, 3] with N >= 1, got {rotations.shape}")
  if not np.all(np.isfinite(rotations)):
    raise ValueError(f"{name} has non-finite values")
  return rotations


def rotation_median(rotations, iterations: int = 100) -> np.ndarray:
  """The rotation X minimising the mean geodesic distance to `rotations` (a geodesic L1 median).

  Starts from the chordal mean (the SVD projection of the mean matrix) and runs Weiszfeld iterations in the tangent
  space at X.

  Args:
    rotations: [N, 3, 3] rotations.
    iterations: maximum Weiszfeld steps.

  Returns:
    [3, 3] float64 rotation.
  """
  rotations = _check_rotations(rotations, "rotations")
  data = Rotation.from_matrix(rotations)
  estimate = data.mean()  # chordal L2 mean
  for _ in range(iterations):
    tangent = (estimate.inv() * data).as_rotvec()  # [N, 3], log map at the estimate
    distance = np.linalg.norm(tangent, axis=-1)
    weights = 1.0 / np.maximum(distance, 1e-12)
    step = (tangent * weights[:, None]).sum(0) / weights.sum()
    estimate = estimate * Rotation.from_rotvec(step)
    if np.linalg.norm(step) < _TOLERANCE:
      break
  return estimate.as_matrix()


def _unit_vectors(vectors, name):
  vectors = np.asarray(vectors, np.float64)
  if vectors.ndim != 2 or vectors.shape[1] != 3 or vectors.shape[0] == 0:
    raise ValueError(f"{name} must have shape [N, 3] with N >= 1, got {vectors.shape}")
  norm = np.linalg.norm(vectors, axis=-1, keepdims=True)
  if not np.all(np.isfinite(norm) & (norm > 0)):
    raise ValueError(f"{name} has zero-length or non-finite vectors")
  return vectors / norm


def light_direction(lxy) -> np.ndarray:
  """Unit light directions normalize([lx, ly, 1]) from [..., 2] (lx, ly), float64 [..., 3]: the NumPy twin of
  `geometry.light_direction`, for the synthetic worlds and the metrics."""
  lxy = np.asarray(lxy, dtype=np.float64)
  v = np.concatenate([lxy, np.ones(lxy.shape[:-1] + (1,))], axis=-1)
  return v / np.linalg.norm(v, axis=-1, keepdims=True)


def angle_deg(u, v) -> np.ndarray:
  """Angle between vectors along the last axis, degrees (atan2 form: exact near 0 and 180)."""
  u, v = np.asarray(u, np.float64), np.asarray(v, np.float64)
  cross = np.linalg.norm(np.cross(u, v), axis=-1)
  return np.degrees(np.arctan2(cross, (u * v).sum(axis=-1)))


def direction_median(directions, iterations: int = 100) -> np.ndarray:
  """The unit vector minimising the mean angle to `directions` [N, 3] (a spherical L1 median); returns [3]."""
  directions = _unit_vectors(directions, "directions")
  estimate = directions.mean(0)
  norm = np.linalg.norm(estimate)
  estimate = estimate / norm if norm > 1e-12 else directions[0]
  for _ in range(iterations):
    cosine = np.clip(directions @ estimate, -1.0, 1.0)
    angle = np.arccos(cosine)
    # Log map at the estimate: the tangent vector towards each direction, of length its angle.
    perpendicular = directions - cosine[:, None] * estimate
    length = np.linalg.norm(perpendicular, axis=-1)
    tangent = perpendicular * (angle / np.maximum(length, 1e-12))[:, None]
    weights = 1.0 / np.maximum(angle, 1e-12)
    step = (tangent * weights[:, None]).sum(0) / weights.sum()
    size = np.linalg.norm(step)
    if size < _TOLERANCE:
      break
    estimate = np.cos(size) * estimate + np.sin(size) * step / size
    estimate /= np.linalg.norm(estimate)
  return estimate
