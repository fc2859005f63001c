"""Maps the networks' raw outputs to physical scene parameters (docs/model.md): pure functions.

Depth: subtract the per-image mean (Unsup3D; `SceneRanges.center_depth`), tanh, map [-1, 1] to [min_depth,
max_depth], and pin the two left and right border columns to `border_depth`. Light: [B, 4] raw in [-1, 1] to (ka,
kd, lx, ly), ka and kd mapped to their ranges and the direction components kept (direction = normalize([lx, ly,
1])). View: [B, 6] raw in [-1, 1] to rotations (rx, ry, rz) = raw * rotation range (radians) and translations (tx,
ty, tz) = raw * (xy, xy, z) ranges.
"""

import dataclasses
import math
from typing import Optional, Tuple

import gin
import tensorflow as tf

# The four physical properties, each predicted by its own encoder: the names of the scene parameters, of the PDR
# feature blocks (model.encode, LOOCC, the exported `<name>_features` outputs) and of evaluation's feature sets.
PROPERTIES = ("depth", "albedo", "light", "view")


# How the raw light (ka, kd, lx, ly) and view (rx, ry, rz, tx, ty, tz) change when the image is mirrored left to
# right: the mirror M = diag(-1, 1, 1) of the camera's x axis maps a scene (canonical shape c, rotation R, translation
# t, canonical light l) to (M c, M R M, M t, M l), and M R M negates the rotations about y and z whatever the Euler
# order. Both raw -> parameter maps are linear in these components, so the signs apply to raw and mapped values alike.
LIGHT_MIRROR_SIGNS = (1.0, 1.0, -1.0, 1.0)
VIEW_MIRROR_SIGNS = (1.0, -1.0, -1.0, -1.0, 1.0, 1.0)


@gin.configurable
@dataclasses.dataclass(frozen=True)
class SceneRanges:
  """Ranges of the physical scene parameters. Defaults are Unsup3D's syncar setting; the shipped cars preset pins
  border_depth at 1.02 (gin/pieces/cars.gin), faces use border_depth 1.04 and kd_range (0, 1).

  Attributes:
    min_depth, max_depth: canonical depth range.
    border_depth: depth of the 2-pixel left/right border columns (Unsup3D); None leaves them free (no pin).
    center_depth: subtract each raw depth map's mean before the tanh (Unsup3D), so that the depth's level is set by
      its shape: the more of the image is background, the nearer the background lies to the middle of the range,
      whatever the border's pin. False leaves the level to the network, and a zero raw output (a flat map) then lies
      at `border_depth` (the middle of the range when the border is free).
    ka_range, kd_range: ambient and diffuse strength ranges.
    rotation_range_degrees: |rx|, |ry|, |rz| bound.
    xy_translation_range, z_translation_range: |tx|, |ty| and |tz| bounds.
  """

  min_depth: float = 0.9
  max_depth: float = 1.1
  border_depth: Optional[float] = 1.08
  center_depth: bool = True
  ka_range: Tuple[float, float] = (0.0, 1.0)
  kd_range: Tuple[float, float] = (0.5, 1.0)
  rotation_range_degrees: float = 60.0
  xy_translation_range: float = 0.1
  z_translation_range: float = 0.0

  def __post_init__(self):
    if not 0 < self.min_depth < self.max_depth:
      raise ValueError(f"SceneRanges needs 0 < min_depth < max_depth, got {self.min_depth}, {self.max_depth}")
    if self.border_depth is not None and not self.min_depth <= self.border_depth <= self.max_depth:
      raise ValueError(f"SceneRanges.border_depth {self.border_depth} must lie in [min_depth, max_depth]")
    if not self.center_depth and self.border_depth in (self.min_depth, self.max_depth):
      raise ValueError(
        f"SceneRanges.center_depth=False needs border_depth strictly inside (min_depth, max_depth), where a finite "
        f"raw depth can reach it; got {self.border_depth}"
      )
    for name in ("ka_range", "kd_range"):
      lo, hi = getattr(self, name)
      if not lo <= hi:
        raise ValueError(f"SceneRanges.{name} must be (low, high) with low <= high, got {(lo, hi)}")


def map_range(x, low, high):
  """Maps x in [-1, 1] linearly to [low, high]."""
  return low + (x + 1.0) / 2.0 * (high - low)


def depth_from_raw(raw, ranges: SceneRanges, border: bool = True, name="depth_from_raw") -> tf.Tensor:
  """Canonical depth from the depth network's raw output.

  Args:
    raw: [B, H, W, 1] or [B, H, W] unbounded.
    ranges: scene ranges.
    border: pin the two left and right border columns to `ranges.border_depth` (Unsup3D); False gives the depth
      before that, on which the smoothness loss is computed.

  Returns:
    [B, H, W] depth in [min_depth, max_depth] (border columns at border_depth when `border`).
  """
  with tf.name_scope(name):
    raw = tf.convert_to_tensor(raw, tf.float32)
    if raw.shape.rank == 4:
      raw = raw[..., 0]
    if raw.shape.rank != 3:
      raise ValueError(f"raw depth must be [B, H, W] or [B, H, W, 1], got {raw.shape}")
    if ranges.center_depth:
      depth = tf.tanh(raw - tf.reduce_mean(raw, axis=[1, 2], keepdims=True))
    else:
      depth = tf.tanh(raw + flat_raw_depth(ranges))
    depth = map_range(depth, ranges.min_depth, ranges.max_depth)
    return with_border(depth, ranges) if border else depth


def flat_raw_depth(ranges: SceneRanges) -> float:
  """The raw level (before the tanh) at which an uncentred depth lies at `border_depth`: 0 for a free border."""
  if ranges.border_depth is None:
    return 0.0
  middle, half = (ranges.max_depth + ranges.min_depth) / 2.0, (ranges.max_depth - ranges.min_depth) / 2.0
  return math.atanh((ranges.border_depth - middle) / half)


def with_border(depth, ranges: SceneRanges) -> tf.Tensor:
  """[B, H, W] depth with its two left and right border columns set to `ranges.border_depth` (unchanged if None)."""
  if ranges.border_depth is None:
    return depth
  width = depth.shape[2]
  border = tf.constant([1.0] * 2 + [0.0] * (width - 4) + [1.0] * 2, tf.float32)
  return depth * (1.0 - border) + ranges.border_depth * border


def light_from_raw(raw, ranges: SceneRanges, name="light_from_raw") -> tf.Tensor:
  """[B, 4] raw light in [-1, 1] -> [B, 4] (ka, kd, lx, ly)."""
  with tf.name_scope(name):
    raw = tf.convert_to_tensor(raw, tf.float32)
    ka = map_range(raw[:, 0:1], *ranges.ka_range)
    kd = map_range(raw[:, 1:2], *ranges.kd_range)
    return tf.concat([ka, kd, raw[:, 2:4]], axis=1)


def view_from_raw(raw, ranges: SceneRanges, name="view_from_raw") -> tf.Tensor:
  """[B, 6] raw view in [-1, 1] -> [B, 6] (rx, ry, rz radians, tx, ty, tz)."""
  with tf.name_scope(name):
    raw = tf.convert_to_tensor(raw, tf.float32)
    scale = tf.constant(
      [math.radians(ranges.rotation_range_degrees)] * 3
      + [ranges.xy_translation_range] * 2
      + [ranges.z_translation_range],
      tf.float32,
    )
    return raw * scale


def convex_prior(
  size: int, amplitude: float, ranges: SceneRanges, radius: float = 0.4, aspect: float = 1.0
) -> tf.Tensor:
  """A raw-depth offset that makes the canonical depth a centred spherical cap `amplitude` nearer than its rim.

  Added to the depth network's raw output, it starts the canonical depth as a convex bump instead of a plane: a
  shape prior (as GAN2Shape's ellipsoid) that breaks shape from shading's convex / concave ambiguity, which a
  flat start leaves to chance. The network can learn any other shape from there.

  Args:
    size: side S of the depth map.
    amplitude: depth difference between the cap's rim and its centre (scene units, >= 0).
    ranges: scene ranges (the raw -> depth mapping).
    radius: cap radius across (x) as a fraction of S.
    aspect: the cap's extent along y over its extent along x (a symmetric object's canonical symmetry axis is
      vertical, which is where elongated objects such as cars are long).

  Returns:
    [S, S] float32 raw offset (0 outside the cap).
  """
  half_range = (ranges.max_depth - ranges.min_depth) / 2.0
  if not 0 <= amplitude < half_range:
    raise ValueError(f"convex prior amplitude must be in [0, {half_range}), got {amplitude!r}")
  centre = (size - 1) / 2.0
  grid = tf.range(size, dtype=tf.float32) - centre
  r2 = ((grid[:, None] / aspect) ** 2 + grid[None, :] ** 2) / (radius * size) ** 2
  cap = tf.sqrt(tf.nn.relu(1.0 - r2))
  return -tf.atanh(amplitude / half_range) * cap
