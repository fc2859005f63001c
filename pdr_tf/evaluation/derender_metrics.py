"""De-rendering accuracy against ground truth (as in Unsup3D), each beside a trivial predictor's: pure numpy.

Depth, normal and mask inputs are numpy arrays in the input view, batched [N, H, W] (a single [H, W] image is
treated as N = 1). The caller builds the evaluation mask the Unsup3D way: the ground-truth object mask and the
predicted reconstruction mask, each eroded by one pixel (`erode_mask`), combined with logical and. Normals come
from the renderer (`normals_from_depth` lives there); this module only compares them.

Every error comes with the same error of a predictor that ignores the image, on the same images and pixels, and
their ratio (model / trivial; below 1 is better than trivial):
- view: geodesic rotation error after aligning the model's learnt canonical frame to the world's by the best fixed
  rotation A (R_gt = R_pred A); trivial: the best constant rotation. Both fits minimise the mean geodesic error.
- light: angle between light directions in one frame (the world's direction taken into the model's frame by A);
  trivial: the best constant direction. ka / kd: mean absolute error; trivial: the median.
- normals (MAD) and depth (SIDE): trivial is flat depth (a fronto-parallel plane: normals (0, 0, 1)).
"""

import logging

import numpy as np

from pdr_tf.data import formats
from pdr_tf.evaluation import scene_stats
from pdr_tf.render import rotations

_LOG = logging.getLogger(__name__)


def _as_batch(x, name, trailing=0):
  x = np.asarray(x)
  rank = 2 + trailing
  if x.ndim == rank:
    x = x[None]
  if x.ndim != rank + 1:
    channels = ", 3" if trailing else ""
    raise ValueError(f"{name} must have shape [N, H, W{channels}] or [H, W{channels}], got {x.shape}")
  return x


def _check_mask(mask, shape):
  mask = _as_batch(mask, "mask")
  if mask.shape != shape:
    raise ValueError(f"mask has shape {mask.shape} but the images have shape {shape}")
  if mask.dtype != bool:
    if not np.all(np.isin(mask, (0, 1))):
      raise ValueError("mask must be boolean or hold only 0 and 1")
    mask = mask.astype(bool)
  return mask


def erode_mask(mask, pixels=1):
  """Erodes a binary mask with a 3x3 square, `pixels` times; outside the image counts as background.

  This matches Unsup3D's `avg_pool2d(mask, 3, stride=1, padding=1) > 0.99` (zero padding erodes the border).

  Args:
      mask: [N, H, W] or [H, W] bool (or 0/1) mask.
      pixels: erosion radius in pixels, >= 0.

  Returns:
      bool mask of the input's shape.
  """
  if isinstance(pixels, bool) or not isinstance(pixels, (int, np.integer)) or pixels < 0:
    raise ValueError(f"pixels must be a non-negative int, got {pixels!r}")
  squeeze = np.asarray(mask).ndim == 2
  mask = _as_batch(mask, "mask")
  out = _check_mask(mask, mask.shape)
  h, w = out.shape[1:]
  for _ in range(pixels):
    padded = np.pad(out, ((0, 0), (1, 1), (1, 1)), constant_values=False)
    eroded = np.ones_like(out)
    for dy in range(3):
      for dx in range(3):
        eroded &= padded[:, dy : dy + h, dx : dx + w]
    out = eroded
  return out[0] if squeeze else out


def _reduce_images(per_image, name):
  valid = np.isfinite(per_image)
  if not np.any(valid):
    raise ValueError(f"{name}: every image has an empty mask")
  if not np.all(valid):
    _LOG.warning(
      "%s: %d of %d images have an empty mask and are left out of the mean", name, int((~valid).sum()), per_image.size
    )
  return float(per_image[valid].mean())


def side_per_image(depth_pred, depth_gt, mask):
  """Scale-invariant depth error of each image.

  With d = log(depth_pred) - log(depth_gt) over the masked pixels: SIDE = sqrt(mean(d^2) - mean(d)^2), the
  standard deviation of the log ratio, so a prediction off by a constant factor scores 0.

  Args:
      depth_pred: [N, H, W] predicted depth in the input view (positive where masked).
      depth_gt: [N, H, W] ground-truth depth (positive where masked).
      mask: [N, H, W] bool, the pixels to evaluate.

  Returns:
      [N] float64 errors (log-depth units); NaN for images whose mask is empty.
  """
  depth_pred = _as_batch(depth_pred, "depth_pred").astype(np.float64)
  depth_gt = _as_batch(depth_gt, "depth_gt").astype(np.float64)
  if depth_pred.shape != depth_gt.shape:
    raise ValueError(f"depth_pred {depth_pred.shape} and depth_gt {depth_gt.shape} differ in shape")
  mask = _check_mask(mask, depth_pred.shape)
  for name, depth in (("depth_pred", depth_pred), ("depth_gt", depth_gt)):
    inside = depth[mask]
    if not np.all(np.isfinite(inside) & (inside > 0)):
      raise ValueError(f"{name} must be finite and positive inside the mask")
  d = np.where(mask, np.log(np.where(mask, depth_pred, 1.0)) - np.log(np.where(mask, depth_gt, 1.0)), 0.0)
  count = mask.sum(axis=(1, 2)).astype(np.float64)
  with np.errstate(invalid="ignore", divide="ignore"):
    mean = d.sum(axis=(1, 2)) / count
    # The centred form equals mean(d^2) - mean(d)^2 without its cancellation error.
    var = (np.where(mask, d - mean[:, None, None], 0.0) ** 2).sum(axis=(1, 2)) / count
  return np.sqrt(var)


def side(depth_pred, depth_gt, mask):
  """Mean SIDE over the images with a non-empty mask (see `side_per_image`). Returns a float."""
  return _reduce_images(side_per_image(depth_pred, depth_gt, mask), "side")


def _unit(v, name, where=None):
  norm = np.linalg.norm(v, axis=-1, keepdims=True)
  bad = ~(np.isfinite(norm[..., 0]) & (norm[..., 0] > 0))
  if where is not None:
    bad &= where
  if np.any(bad):
    raise ValueError(f"{name} has zero-length or non-finite vectors ({int(bad.sum())} of them)")
  return v / np.where(norm > 0, norm, 1.0)


def mad_per_image(normals_pred, normals_gt, mask):
  """Mean angle deviation between normal maps, per image.

  Args:
      normals_pred: [N, H, W, 3] predicted normals (normalized here, so any positive length works).
      normals_gt: [N, H, W, 3] ground-truth normals.
      mask: [N, H, W] bool, the pixels to evaluate.

  Returns:
      [N] float64 mean angles in degrees over the mask; NaN for images whose mask is empty.
  """
  normals_pred = _as_batch(normals_pred, "normals_pred", trailing=1).astype(np.float64)
  normals_gt = _as_batch(normals_gt, "normals_gt", trailing=1).astype(np.float64)
  if normals_pred.shape != normals_gt.shape or normals_pred.shape[-1] != 3:
    raise ValueError(f"normals_pred {normals_pred.shape} and normals_gt {normals_gt.shape} must both be [N, H, W, 3]")
  mask = _check_mask(mask, normals_pred.shape[:-1])
  angles = rotations.angle_deg(_unit(normals_pred, "normals_pred", mask), _unit(normals_gt, "normals_gt", mask))
  with np.errstate(invalid="ignore", divide="ignore"):
    return np.where(mask, angles, 0.0).sum(axis=(1, 2)) / mask.sum(axis=(1, 2))


def mad(normals_pred, normals_gt, mask):
  """Mean MAD (degrees) over the images with a non-empty mask (see `mad_per_image`). Returns a float."""
  return _reduce_images(mad_per_image(normals_pred, normals_gt, mask), "mad")


def _check_params(pred, gt, dim, what):
  pred = np.asarray(pred, dtype=np.float64)
  gt = np.asarray(gt, dtype=np.float64)
  for name, x in ((f"{what}_pred", pred), (f"{what}_gt", gt)):
    if x.ndim != 2 or x.shape[1] != dim or x.shape[0] == 0:
      raise ValueError(f"{name} must have shape [N, {dim}] with N >= 1, got {x.shape}")
    if not np.all(np.isfinite(x)):
      raise ValueError(f"{name} has non-finite values")
  if pred.shape != gt.shape:
    raise ValueError(f"{what}_pred {pred.shape} and {what}_gt {gt.shape} differ in shape")
  return pred, gt


light_direction = rotations.light_direction  # normalize([lx, ly, 1]) of [..., 2] (lx, ly)


def light_axis_angles(directions):
  """[N, 2] degrees: each unit direction's angle from the camera axis (+z) towards +x (horizontal, about the y axis)
  and towards +y (vertical, about the x axis), i.e. atan(lx) and atan(ly) for normalize([lx, ly, 1])."""
  d = np.asarray(directions, dtype=np.float64)
  return np.degrees(np.stack([np.arctan2(d[..., 0], d[..., 2]), np.arctan2(d[..., 1], d[..., 2])], -1))


def ratio(model, trivial):
  """model / trivial, or NaN when the trivial error is 0 (nothing to beat)."""
  return float(model / trivial) if trivial > 0 else float("nan")


def _comparison(model, trivial, **extra):
  out = {"model": float(model), "trivial": float(trivial), "ratio": ratio(model, trivial)}
  out.update(extra)
  return out


def view_report(pred, gt):
  """View errors with the learnt canonical frame aligned, beside the best constant rotation.

  Args:
      pred: [N, 6] predicted views (rx, ry, rz radians, tx, ty, tz).
      gt: [N, 6] ground-truth views, same convention.

  Returns:
      dict: geodesic_deg {model, trivial, ratio} (mean geodesic error, degrees); alignment {matrix [3, 3],
      euler_deg [3], angle_deg}: A with R_gt ~ R_pred A, i.e. the rotation from the world's canonical frame to the
      model's; constant_euler_deg: the trivial predictor; raw_euler_mae_deg: the unaligned per-axis mean absolute
      Euler-angle error (rx, ry, rz), for reference only.
  """
  pred, gt = _check_params(pred, gt, formats.GT_VIEW_DIM, "view")
  r_pred, r_gt = rotations.euler_to_matrix(pred[:, :3]), rotations.euler_to_matrix(gt[:, :3])
  alignment = rotations.rotation_median(np.swapaxes(r_pred, 1, 2) @ r_gt)
  model = rotations.geodesic_deg(r_pred @ alignment, r_gt).mean()
  constant = rotations.rotation_median(r_gt)
  trivial = rotations.geodesic_deg(np.broadcast_to(constant, r_gt.shape), r_gt).mean()
  return {
    "geodesic_deg": _comparison(model, trivial),
    "alignment": {
      "matrix": alignment.tolist(),
      "euler_deg": np.degrees(rotations.matrix_to_euler(alignment)).tolist(),
      "angle_deg": float(rotations.geodesic_deg(np.eye(3), alignment)),
    },
    "constant_euler_deg": np.degrees(rotations.matrix_to_euler(constant)).tolist(),
    "raw_euler_mae_deg": np.degrees(np.abs(pred[:, :3] - gt[:, :3]).mean(0)).tolist(),
  }


def light_report(pred, gt, alignment=None):
  """Light errors in one frame, beside constant predictors.

  Args:
      pred: [N, 4] predicted (ka, kd, lx, ly) in the model's canonical frame.
      gt: [N, 4] ground truth in the world's canonical frame.
      alignment: [3, 3] rotation from the world's canonical frame to the model's (`view_report`'s
          alignment matrix); identity when None.

  Returns:
      dict: direction_deg {model, trivial, ratio} (mean angle between directions, the ground truth taken into the
      model's frame; trivial: the best constant direction); horizontal_deg and vertical_deg {model, trivial, ratio}
      (`light_axis_angles`: the direction's angle left-right and up-down of the camera axis, in the same frame;
      trivial: the median angle), which tell a learnt side light from a learnt vertical one; ka_mae and kd_mae
      {model, trivial (the median), ratio}.
  """
  pred, gt = _check_params(pred, gt, formats.GT_LIGHT_DIM, "light")
  alignment = np.eye(3) if alignment is None else np.asarray(alignment, np.float64)
  d_pred = light_direction(pred[:, 2:4])
  d_gt = light_direction(gt[:, 2:4]) @ alignment.T
  constant = rotations.direction_median(d_gt)
  out = {
    "direction_deg": _comparison(
      rotations.angle_deg(d_pred, d_gt).mean(), rotations.angle_deg(constant[None], d_gt).mean()
    )
  }
  a_pred, a_gt = light_axis_angles(d_pred), light_axis_angles(d_gt)
  for index, key in enumerate(("horizontal", "vertical")):
    out[f"{key}_deg"] = _mae_against_median(a_pred[:, index], a_gt[:, index])
  for index, key in enumerate(scene_stats.LIGHT_NAMES[:2]):  # ka, kd
    out[f"{key}_mae"] = _mae_against_median(pred[:, index], gt[:, index])
  return out


def _mae_against_median(pred, gt):
  """{model, trivial, ratio}: the mean absolute error of `pred` [N] against `gt` [N], beside that of the median."""
  return _comparison(np.abs(pred - gt).mean(), np.abs(np.median(gt) - gt).mean())


def flat_normals(shape):
  """[N, H, W, 3] normals of flat (fronto-parallel) depth, the trivial depth predictor: (0, 0, 1) everywhere."""
  out = np.zeros(tuple(shape) + (3,), np.float64)
  out[..., 2] = 1.0
  return out
