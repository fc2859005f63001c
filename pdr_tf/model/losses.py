"""Unsup3D reconstruction losses as pure per-example functions: photometric, perceptual, depth smoothness, total.

Every loss returns a [B] tensor (the mean over that example's masked pixels and channels) and never reduces over the
batch, so a trainer scales exactly once with `tf.nn.compute_average_loss(per_example, global_batch_size)`. Masked means
are sum(loss * mask) / (sum(mask) * C + eps): an example whose mask is empty contributes 0. Confidence maps sigma enter
as in Unsup3D, with a small epsilon (1e-7) inside divisions and logarithms.
"""

import dataclasses
import math
from typing import Dict, Mapping

import gin
import tensorflow as tf

_EPS = 1e-7
_SQRT2 = math.sqrt(2.0)


def _check(tensor, name, rank):
  tensor = tf.convert_to_tensor(tensor, dtype=tf.float32)
  if tensor.shape.rank is not None and tensor.shape.rank != rank:
    raise ValueError(f"{name} must have rank {rank}, got shape {tensor.shape}")
  return tensor


def _map(tensor, name, like):
  """Checks a [B, H, W] or [B, H, W, 1] map against `like` [B, H, W, C] and returns it as [B, H, W, 1]."""
  tensor = tf.convert_to_tensor(tensor, dtype=tf.float32)
  if tensor.shape.rank == 3:
    tensor = tensor[..., None]
  if tensor.shape.rank != 4 or tensor.shape[-1] not in (1, None):
    raise ValueError(f"{name} must be [B, H, W] or [B, H, W, 1], got shape {tensor.shape}")
  if not tensor.shape[:3].is_compatible_with(like.shape[:3]):
    raise ValueError(f"{name} spatial shape {tensor.shape[:3]} does not match {like.shape[:3]}")
  return tensor


def _masked_mean(loss, mask):
  """[B, H, W, C] loss and [B, H, W, 1] mask -> [B] mean over the masked pixels and all channels."""
  channels = tf.cast(tf.shape(loss)[-1], loss.dtype)
  numerator = tf.reduce_sum(loss * mask, axis=[1, 2, 3])
  return numerator / (tf.reduce_sum(mask, axis=[1, 2, 3]) * channels + _EPS)


def photometric_l1(recon, target, mask, conf=None, name="photometric_l1") -> tf.Tensor:
  """Masked photometric L1, or its Laplacian negative log-likelihood when a confidence map is given.

  Args:
    recon: [B, H, W, C] reconstructed image in [-1, 1].
    target: [B, H, W, C] input image in [-1, 1].
    mask: [B, H, W] or [B, H, W, 1] weights in {0, 1} (fractions allowed), broadcast over channels.
    conf: optional sigma [B, H, W] or [B, H, W, 1], positive.

  Returns:
    [B] masked mean of |recon - target| without conf, or of sqrt(2) |recon - target| / sigma + log sigma with it.
  """
  with tf.name_scope(name):
    recon, target = _check(recon, "recon", 4), _check(target, "target", 4)
    if not recon.shape.is_compatible_with(target.shape):
      raise ValueError(f"recon {recon.shape} and target {target.shape} must have the same shape")
    loss = tf.abs(recon - target)
    if conf is not None:
      sigma = _map(conf, "conf", recon)
      loss = loss * _SQRT2 / (sigma + _EPS) + tf.math.log(sigma + _EPS)
    return _masked_mean(loss, _map(mask, "mask", recon))


# Half a step of 8-bit quantisation in [-1, 1]: a decoded pixel within it of the range's end was clipped by the camera.
CLIPPED_TOLERANCE = 0.5 / 127.5


def bound_by_clipped_target(recon, target, low=-1.0, high=1.0, tolerance=CLIPPED_TOLERANCE) -> tf.Tensor:
  """The reconstruction as a photometric loss should compare it where the camera clipped the target.

  A pixel recorded at the top of the range says only that the scene was at least that bright (at the bottom: at
  most that dark), so a render beyond the clipped value fits it as well as the value itself. Returns recon with
  min(recon, high) where target >= high - tolerance and max(recon, low) where target <= low + tolerance, per
  channel; elsewhere recon unchanged (and so its gradient).
  """
  recon, target = _check(recon, "recon", 4), _check(target, "target", 4)
  recon = tf.where(target >= high - tolerance, tf.minimum(recon, high), recon)
  return tf.where(target <= low + tolerance, tf.maximum(recon, low), recon)


def photometric_pair(recon, recon_flip, target, mask, conf=None) -> Dict[str, tf.Tensor]:
  """Unsup3D's two photometric terms: the render ("l1") and the render of the mirrored canonical scene
  ("l1_flip") against the same target on one mask, each with its own confidence channel when `conf` [B, H, W, 2]
  is given (channel 0 for the render, 1 for the mirror). Returns {"l1": [B], "l1_flip": [B]}."""
  return {
    "l1": photometric_l1(recon, target, mask, None if conf is None else conf[..., 0:1]),
    "l1_flip": photometric_l1(recon_flip, target, mask, None if conf is None else conf[..., 1:2]),
  }


def downsample_mask(mask, size: int) -> tf.Tensor:
  """Average-pools a [B, H, W] (or [B, H, W, 1]) mask to [B, size, size, 1]; H must be a multiple of size."""
  mask = tf.convert_to_tensor(mask, dtype=tf.float32)
  if mask.shape.rank == 3:
    mask = mask[..., None]
  height, width = mask.shape[1], mask.shape[2]
  if mask.shape.rank != 4 or height is None or height != width or height % size:
    raise ValueError(f"mask must be a square [B, H, W] map with H a multiple of {size}, got shape {mask.shape}")
  factor = height // size
  if factor == 1:
    return mask
  return tf.nn.avg_pool2d(mask, factor, factor, "VALID")


def perceptual_nll(feat_recon, feat_target, mask, conf=None, name="perceptual_nll") -> tf.Tensor:
  """Masked perceptual loss on feature maps, or its Gaussian negative log-likelihood with a confidence map.

  Args:
    feat_recon: [B, h, w, C] features of the reconstruction (VGG16 relu3_3: h = w = 16 at 64x64 input).
    feat_target: [B, h, w, C] features of the input image.
    mask: [B, h, w] mask at feature resolution, or a [B, H, W] mask with H a multiple of h, which is average-pooled
      to h x h (Unsup3D pools the 64x64 mask by 4); [B, ..., 1] also accepted.
    conf: optional sigma [B, h, w] or [B, h, w, 1], positive.

  Returns:
    [B] masked mean over pixels and channels of (Δf)^2 without conf, or of (Δf)^2 / (2 sigma^2) + log sigma with it.
  """
  with tf.name_scope(name):
    feat_recon, feat_target = _check(feat_recon, "feat_recon", 4), _check(feat_target, "feat_target", 4)
    if not feat_recon.shape.is_compatible_with(feat_target.shape):
      raise ValueError(f"feat_recon {feat_recon.shape} and feat_target {feat_target.shape} must have the same shape")
    loss = tf.square(feat_recon - feat_target)
    if conf is not None:
      sigma = _map(conf, "conf", feat_recon)
      loss = loss / (2.0 * tf.square(sigma) + _EPS) + tf.math.log(sigma + _EPS)
    mask = downsample_mask(mask, feat_recon.shape[1]) if feat_recon.shape[1] is not None else mask
    return _masked_mean(loss, _map(mask, "mask", feat_recon))


def depth_smoothness(
  depth, depth_range: float = 1.0, guide=None, edge_sharpness: float = 0.0, name="depth_smoothness"
) -> tf.Tensor:
  """Total variation of a canonical depth map in units of the depth range (Unsup3D's syncar term).

  Unsup3D computes it on the canonical depth before the border columns are pinned, divided by
  (max_depth - min_depth), over the whole map (no mask: the canonical view has no visibility mask).

  With `guide` and `edge_sharpness` α > 0 it is edge-aware (Godard et al. 2017's disparity smoothness): each
  difference is weighted by exp(-α mean_c |Δ guide|), the same difference of the guide image (the canonical albedo),
  so depth may step where the albedo has an edge and stays flat where the albedo is uniform. Plain total variation
  is indifferent to how a height change is spread (a ramp across the ground costs what a step at the object's
  outline costs); the weighting makes the step cheaper.

  Args:
    depth: [B, H, W] canonical depth (scene units), before the border columns are set.
    depth_range: max_depth - min_depth (> 0); differences are divided by it.
    guide: optional [B, H, W, C] image in the depth's frame (no gradient flows into it); needed when α > 0.
    edge_sharpness: α >= 0; 0 is the plain total variation.

  Returns:
    [B] mean_{i,j} w_x |d[i, j+1] - d[i, j]| / range + mean_{i,j} w_y |d[i+1, j] - d[i, j]| / range (w = 1 when
    α = 0).
  """
  if not depth_range > 0:
    raise ValueError(f"depth_range must be > 0, got {depth_range!r}")
  if not (math.isfinite(edge_sharpness) and edge_sharpness >= 0):
    raise ValueError(f"edge_sharpness must be a finite number >= 0, got {edge_sharpness!r}")
  if edge_sharpness > 0 and guide is None:
    raise ValueError("edge_sharpness > 0 needs a guide image")
  with tf.name_scope(name):
    depth = _check(depth, "depth", 3) / float(depth_range)
    dx = tf.abs(depth[:, :, 1:] - depth[:, :, :-1])
    dy = tf.abs(depth[:, 1:, :] - depth[:, :-1, :])
    if edge_sharpness > 0:
      guide = tf.stop_gradient(_check(guide, "guide", 4))
      if not guide.shape[:3].is_compatible_with(depth.shape):
        raise ValueError(f"guide {guide.shape} must match depth {depth.shape} in [B, H, W]")
      dx *= tf.exp(-edge_sharpness * tf.reduce_mean(tf.abs(guide[:, :, 1:] - guide[:, :, :-1]), axis=-1))
      dy *= tf.exp(-edge_sharpness * tf.reduce_mean(tf.abs(guide[:, 1:] - guide[:, :-1]), axis=-1))
    return tf.reduce_mean(dx, axis=[1, 2]) + tf.reduce_mean(dy, axis=[1, 2])


def _columns_l1(predicted, target, columns: slice, name) -> tf.Tensor:
  """Per-example mean absolute difference of the `columns` of two [B, D] parameter vectors (views, lights)."""
  with tf.name_scope(name):
    predicted = _check(predicted, "predicted", 2)
    target = _check(target, "target", 2)
    return tf.reduce_mean(tf.abs(predicted[:, columns] - target[:, columns]), axis=1)


def view_cycle(predicted, target, name="view_cycle") -> tf.Tensor:
  """Per-example mean absolute error of the tilts rx, ry (radians) between two [B, 6] views."""
  return _columns_l1(predicted, target, slice(0, 2), name)


def light_cycle(predicted, target, name="light_cycle") -> tf.Tensor:
  """Per-example mean absolute error of the light direction's lx, ly between two [B, 4] lights (ka, kd, lx, ly)."""
  return _columns_l1(predicted, target, slice(2, 4), name)


def view_rotation_l1(predicted, target, name="view_rotation_l1") -> tf.Tensor:
  """Per-example mean absolute difference of the rotations rx, ry, rz (radians) between two [B, 6] views."""
  return _columns_l1(predicted, target, slice(0, 3), name)


def albedo_l1(predicted, target, name="albedo_l1") -> tf.Tensor:
  """Per-example mean absolute difference of two [B, S, S, 3] albedo maps in [-1, 1], in [0, 1] units."""
  with tf.name_scope(name):
    return tf.reduce_mean(tf.abs(predicted - target), axis=[1, 2, 3]) / 2.0


@gin.configurable
@dataclasses.dataclass(frozen=True)
class ReconstructionWeights:
  """Weights of the Unsup3D reconstruction loss; the defaults are the faces setting.

  Faces (UTKFace): λ_flip 0.5, λ_perc 1, λ_smooth 0, confidence on. Cars (ShapeNet): λ_flip 1, λ_perc 0.01,
  λ_smooth 0.1, confidence off (`ReconstructionWeights.cars()`). A model without VGG16 weights sets λ_perc to 0
  (`dataclasses.replace(weights, lambda_perc=0.0)`).
  """

  lambda_flip: float = 0.5
  lambda_perc: float = 1.0
  lambda_smooth: float = 0.0
  use_confidence: bool = True
  # α of the edge-aware smoothness (`depth_smoothness`, guided by the canonical albedo); 0 is Unsup3D's plain term.
  smooth_edge_sharpness: float = 0.0
  # Pixels the camera clipped bound the photometric terms from one side only (`bound_by_clipped_target`); False is
  # Unsup3D's plain L1, which asks the render to equal a clipped value.
  bound_clipped: bool = False

  def __post_init__(self):
    for field in ("lambda_flip", "lambda_perc", "lambda_smooth", "smooth_edge_sharpness"):
      value = getattr(self, field)
      if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
        raise ValueError(f"ReconstructionWeights.{field} must be a finite number >= 0, got {value!r}")
    for field in ("use_confidence", "bound_clipped"):
      if not isinstance(getattr(self, field), bool):
        raise ValueError(f"ReconstructionWeights.{field} must be a bool, got {getattr(self, field)!r}")

  @classmethod
  def faces(cls) -> "ReconstructionWeights":
    return cls(lambda_flip=0.5, lambda_perc=1.0, lambda_smooth=0.0, use_confidence=True)

  @classmethod
  def cars(cls) -> "ReconstructionWeights":
    return cls(lambda_flip=1.0, lambda_perc=0.01, lambda_smooth=0.1, use_confidence=False)


# Term name -> the weight multiplying it, as a function of the weights.
_TERM_WEIGHTS = {
  "l1": lambda w: 1.0,
  "l1_flip": lambda w: w.lambda_flip,
  "perc": lambda w: w.lambda_perc,
  "perc_flip": lambda w: w.lambda_perc * w.lambda_flip,
  "smooth": lambda w: w.lambda_smooth,
}


def reconstruction_loss(
  terms: Mapping[str, tf.Tensor], weights: ReconstructionWeights, name="reconstruction_loss"
) -> tf.Tensor:
  """Total reconstruction loss L1 + λ_flip L1_flip + λ_perc (L_perc + λ_flip L_perc_flip) + λ_smooth L_smooth.

  Args:
    terms: per-example [B] losses under the keys "l1", "l1_flip", "perc", "perc_flip", "smooth". "l1" is required;
      any other term may be left out only when its weight is 0 (e.g. "perc" when perceptual features are off).
    weights: the λs.

  Returns:
    [B] weighted sum.
  """
  unknown = set(terms) - set(_TERM_WEIGHTS)
  if unknown:
    raise ValueError(f"unknown reconstruction terms {sorted(unknown)}; expected keys among {sorted(_TERM_WEIGHTS)}")
  if "l1" not in terms:
    raise ValueError("terms must contain 'l1' (the photometric loss of the original reconstruction)")
  with tf.name_scope(name):
    total = None
    for key, weight_of in _TERM_WEIGHTS.items():
      weight = float(weight_of(weights))
      if weight == 0.0:
        continue  # skipped even when present, so a disabled term cannot leak NaNs into the total
      if key not in terms:
        raise ValueError(f"term '{key}' has weight {weight} but is missing from terms {sorted(terms)}")
      value = _check(terms[key], f"terms['{key}']", 1)
      total = value * weight if total is None else total + value * weight
    return total
