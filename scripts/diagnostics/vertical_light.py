"""Diagnostic: can the objective tell a vertical light from an albedo painted with its shading?

python scripts/diagnostics/vertical_light.py WORKDIR DATA_DIR [NUM_IMAGES]

Restores the latest checkpoint of the training run in WORKDIR and de-renders NUM_IMAGES (64) validation images with
ground truth. Two parts.

1. What each light component is worth. The light direction's error (evaluate's metric: the mean angle, the truth
   taken into the model's frame by the view's alignment), as a ratio to the best constant direction, for the
   prediction, the prediction with its shared vertical offset removed, the exact lx with ly at the truth's mean
   (the best a model that learns only the side light can score), and the predicted lx with the exact ly.

2. Is the true ly cheaper than the predicted one? The mean masked L1 of the reconstruction and of the mirrored
   reconstruction (the flip loss, no confidence maps), for the predicted scene; the true ly with the predicted
   albedo kept (`light_sweep.py`'s question); the true ly with the albedo repainted so that the canonical image
   stays the same (albedo x shading_predicted / shading_true, clipped to the albedo's range); and the same for the
   true lx. The repainted albedo's left-right asymmetry is what the flip loss charges for it. Where the repainted
   row costs what the predicted one does, the reconstruction cannot tell the true light from the predicted one:
   the albedo network can carry that component's shading for free.
"""

import numpy as np
import tensorflow as tf
import trained_run  # the sibling module: a script's own folder is on sys.path

from pdr_tf.evaluation import derender_metrics
from pdr_tf.model import losses
from pdr_tf.render import renderer as renderer_lib

LX, LY = 2, 3  # (ka, kd, lx, ly)
SHADING_FLOOR = 1e-3  # the repainting divides by the new shading


def with_component(light, truth, index, value=None):
  """`light` ([N, 4]) with column `index` replaced by the truth's, or by `value` when given."""
  out = np.array(light, np.float64, copy=True)
  out[:, index] = np.asarray(truth, np.float64)[:, index] if value is None else value
  return out


def direction_parts(pred, gt, alignment):
  """{name: light direction ratio (model / best constant)} for the prediction and its three variants (module doc)."""
  pred, gt = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
  offset_removed = with_component(pred, gt, LY, pred[:, LY] - pred[:, LY].mean() + gt[:, LY].mean())
  variants = {
    "as predicted": pred,
    "shared vertical offset removed": offset_removed,
    "exact lx, ly constant (the truth's mean)": with_component(with_component(pred, gt, LX), gt, LY, gt[:, LY].mean()),
    "predicted lx, exact ly": with_component(pred, gt, LY),
  }
  return {
    name: derender_metrics.light_report(light, gt, alignment)["direction_deg"]["ratio"]
    for name, light in variants.items()
  }


def repaint(albedo, shading_from, shading_to):
  """The albedo ([N, S, S, 3] in [-1, 1]) that keeps the canonical image when the shading ([N, S, S, 1]) changes from
  `shading_from` to `shading_to`, clipped to [-1, 1]; returns (albedo, fraction of values clipped)."""
  unit = (np.asarray(albedo, np.float64) + 1.0) / 2.0
  scaled = unit * np.asarray(shading_from, np.float64) / np.maximum(np.asarray(shading_to, np.float64), SHADING_FLOOR)
  clipped = float(np.mean((scaled < 0.0) | (scaled > 1.0)))
  return np.clip(scaled, 0.0, 1.0) * 2.0 - 1.0, clipped


def asymmetry(albedo) -> float:
  """Mean |albedo - mirrored albedo| (in [0, 1] units): 0 for a left-right symmetric albedo."""
  albedo = np.asarray(albedo, np.float64)
  return float(np.abs(albedo - albedo[:, :, ::-1]).mean() / 2.0)


def reconstruction_losses(renderer, images, depth, albedo, light, view):
  """(l1, l1_flip): the batch means of the masked photometric L1 of the scene's render and of its mirror's."""
  batch = images.shape[0]
  scene = [tf.constant(np.asarray(x, np.float32)) for x in (depth, albedo, light, view)]
  rendered = renderer.render(*renderer_lib.flip_pair(*scene))
  mask = rendered["mask"][:batch] * rendered["mask"][batch:]
  l1 = losses.photometric_l1(rendered["recon_image"][:batch], images, mask)
  l1_flip = losses.photometric_l1(rendered["recon_image"][batch:], images, mask)
  return float(tf.reduce_mean(l1)), float(tf.reduce_mean(l1_flip))


def main():
  _, _, model, batch = trained_run.restore_with_val_batch(__doc__)
  images = tf.convert_to_tensor(batch["image"], tf.float32)
  out = model(images)
  depth, albedo = out["depth"].numpy(), out["albedo"].numpy()
  light, view = out["light"].numpy().astype(np.float64), out["view"].numpy()
  gt_light = batch["gt_light"].numpy().astype(np.float64)
  alignment = derender_metrics.view_report(view, batch["gt_view"].numpy())["alignment"]["matrix"]

  print(f"{len(gt_light)} 'val' images. Light direction, model / best constant direction:")
  for name, value in direction_parts(light, gt_light, alignment).items():
    print(f"  {name:42s} {value:.3f}x")

  renderer = model.renderer
  shading = renderer.shade(tf.constant(depth), tf.constant(albedo), tf.constant(light, tf.float32))["shading"]
  print("Reconstruction losses (mean masked L1 of the render and of its mirror, no confidence maps):")
  rows = [("predicted scene", albedo, light, 0.0)]
  for name, index in (("ly", LY), ("lx", LX)):
    true = with_component(light, gt_light, index)
    rows.append((f"true {name}, albedo kept", albedo, true, 0.0))
    new_shading = renderer.shade(tf.constant(depth), tf.constant(albedo), tf.constant(true, tf.float32))["shading"]
    repainted, clipped = repaint(albedo, shading.numpy(), new_shading.numpy())
    rows.append((f"true {name}, albedo repainted", repainted, true, clipped))
  for name, rows_albedo, rows_light, clipped in rows:
    l1, l1_flip = reconstruction_losses(renderer, images, depth, rows_albedo, rows_light, view)
    print(
      f"  {name:30s} l1 {l1:.4f}  l1_flip {l1_flip:.4f}  albedo asymmetry {asymmetry(rows_albedo):.4f}"
      f"  clipped {clipped:.3%}"
    )


if __name__ == "__main__":
  main()
