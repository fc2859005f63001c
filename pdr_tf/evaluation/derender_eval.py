"""Scores de-rendered scenes against ground truth, beside trivial predictors: batches in, one report out.

Used by `pdr_tf.evaluate` (a whole split through the exported `de_render` signature) and by training's validation
(a fixed batch through the model), so both report the same numbers. Definitions:
`pdr_tf.evaluation.derender_metrics` and docs/evaluation.md.
"""

import math
from typing import Dict, Optional

import numpy as np
import tensorflow as tf

from pdr_tf.evaluation import derender_metrics
from pdr_tf.render import geometry

EROSION_PIXELS = 1
# The headline ratio of each property (model error / trivial error) and where it sits in the report.
RATIO_KEYS = {
  "view": ("view", "geodesic_deg"),
  "light": ("light", "direction_deg"),
  "normals": ("normals_mad_deg",),
  "depth": ("side",),
}
# A model de-renders when every headline ratio (model / trivial predictor) is at or below this: clearly better than
# ignoring the image (a near-constant view already scores about 0.97 after the frame alignment).
DERENDERS_AT = 0.9


def ratios_above(ratios: Dict[str, float], bound: float = DERENDERS_AT) -> Dict[str, float]:
  """The headline ratios (RATIO_KEYS) not shown to be at or below `bound` in `ratios` (name -> model / trivial):
  those above it, and as None those missing or not finite. Empty when the model de-renders."""
  above = {}
  for name in RATIO_KEYS:
    value = ratios.get(name)
    measured = value is not None and math.isfinite(value)
    if not (measured and value <= bound):  # missing, None or NaN: not measured, so not shown to be below
      above[name] = float(value) if measured else None
  return above


class DerenderScorer:
  """Accumulates per-image depth and normal errors and the predicted lights and views of batches with ground truth.

  Args:
    image_size: side of the (square) images; intrinsics are the model's (10-degree field of view).
    erosion_pixels: erosion of the ground-truth and predicted masks before per-pixel errors (Unsup3D: 1).
  """

  def __init__(self, image_size: int, erosion_pixels: int = EROSION_PIXELS):
    self.intrinsics = geometry.intrinsics_from_fov(image_size)
    self.erosion_pixels = int(erosion_pixels)
    self._side, self._side_flat, self._mad, self._mad_flat = [], [], [], []
    self._light, self._view = [], []

  def add(self, recon_depth, mask, light, view, gt_depth, gt_light, gt_view) -> None:
    """Adds a batch.

    Args:
      recon_depth: [B, S, S] the model's depth in the input view (`de_render`'s recon_depth).
      mask: [B, S, S] the model's reconstruction mask (> 0.5: covered).
      light: [B, 4] predicted (ka, kd, lx, ly); view: [B, 6] predicted view.
      gt_depth: [B, S, S] ground-truth depth in the input view, 0 on background.
      gt_light: [B, 4]; gt_view: [B, 6] ground truth.
    """
    recon_depth, gt_depth = np.asarray(recon_depth, np.float32), np.asarray(gt_depth, np.float32)
    erode = derender_metrics.erode_mask
    pixels = erode(gt_depth > 0, self.erosion_pixels) & erode(np.asarray(mask) > 0.5, self.erosion_pixels)
    normals_pred = geometry.normals_from_depth(tf.constant(recon_depth), self.intrinsics).numpy()
    normals_gt = geometry.normals_from_depth(tf.constant(gt_depth), self.intrinsics).numpy()
    flat_depth = np.ones_like(gt_depth)
    self._side.append(derender_metrics.side_per_image(recon_depth, gt_depth, pixels))
    self._side_flat.append(derender_metrics.side_per_image(flat_depth, gt_depth, pixels))
    self._mad.append(derender_metrics.mad_per_image(normals_pred, normals_gt, pixels))
    self._mad_flat.append(
      derender_metrics.mad_per_image(derender_metrics.flat_normals(gt_depth.shape), normals_gt, pixels)
    )
    self._light.append((np.asarray(light), np.asarray(gt_light)))
    self._view.append((np.asarray(view), np.asarray(gt_view)))

  @property
  def num_images(self) -> int:
    return int(sum(len(v) for v, _ in self._view))

  def result(self) -> Optional[Dict]:
    """The report, or None when nothing was added.

    Returns:
      dict: n_images, empty_masks, erosion_pixels; view (`derender_metrics.view_report`); light
      (`derender_metrics.light_report` in the model's frame); normals_mad_deg and side {model, trivial, ratio,
      model_std}; ratios {view, light, normals, depth}: the headline model / trivial ratios.

    Raises:
      ValueError: every image has an empty evaluation mask.
    """
    if not self._view:
      return None
    side, side_flat = np.concatenate(self._side), np.concatenate(self._side_flat)
    mad, mad_flat = np.concatenate(self._mad), np.concatenate(self._mad_flat)
    valid = np.isfinite(side) & np.isfinite(mad)
    if not np.any(valid):
      raise ValueError("de-rendering metrics: every image with ground truth has an empty evaluation mask")
    view = derender_metrics.view_report(
      np.concatenate([p for p, _ in self._view]), np.concatenate([g for _, g in self._view])
    )
    light = derender_metrics.light_report(
      np.concatenate([p for p, _ in self._light]),
      np.concatenate([g for _, g in self._light]),
      alignment=view["alignment"]["matrix"],
    )
    out = {
      "n_images": int(side.size),
      "empty_masks": int((~valid).sum()),
      "erosion_pixels": self.erosion_pixels,
      "view": view,
      "light": light,
    }
    for key, model, trivial in (("normals_mad_deg", mad, mad_flat), ("side", side, side_flat)):
      out[key] = {
        "model": float(model[valid].mean()),
        "trivial": float(trivial[valid].mean()),
        "ratio": derender_metrics.ratio(model[valid].mean(), trivial[valid].mean()),
        "model_std": float(model[valid].std()),
      }
    out["ratios"] = {name: _lookup(out, path)["ratio"] for name, path in RATIO_KEYS.items()}
    return out


def _lookup(report, path):
  for key in path:
    report = report[key]
  return report


def summary_line(report: Dict) -> str:
  """One line for logs and progress bars, e.g. 'view 21.0/32.5 deg (0.65x) light ... normals ... depth ...'."""
  parts = []
  for name, path in RATIO_KEYS.items():
    entry = _lookup(report, path)
    unit = " deg" if path[-1].endswith("deg") else ""
    parts.append(f"{name} {entry['model']:.3g}/{entry['trivial']:.3g}{unit} ({entry['ratio']:.2f}x)")
  return ", ".join(parts) + " (model/trivial)"


def scalars(report: Dict) -> Dict[str, float]:
  """Flat {name: value} of the headline errors, their trivial baselines and ratios, and of the light direction's
  horizontal and vertical parts (light_horizontal_*, light_vertical_*), for TensorBoard."""
  out = {}
  parts = dict(RATIO_KEYS, light_horizontal=("light", "horizontal_deg"), light_vertical=("light", "vertical_deg"))
  for name, path in parts.items():
    entry = _lookup(report, path)
    out[f"{name}_error"] = entry["model"]
    out[f"{name}_trivial"] = entry["trivial"]
    out[f"{name}_ratio"] = entry["ratio"]
  out["view_alignment_deg"] = report["view"]["alignment"]["angle_deg"]
  return out
