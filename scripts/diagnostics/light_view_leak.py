"""Diagnostic: does the predicted view depend on the true light? (the view explaining a side light)

python scripts/diagnostics/light_view_leak.py WORKDIR DATA_DIR [NUM_IMAGES]

Restores the latest checkpoint of the training run in WORKDIR and de-renders NUM_IMAGES (64) validation images with
ground truth. In the worlds the view and the light are drawn independently, so a view that depends on the light is
an error. For each view component it fits predicted = a * true + b * true_lx + c by least squares and prints a, b
(b: how far a side light turns or shifts the predicted view, radians or translation units per unit of lx) and the
predicted and true spreads. It also prints how strongly the left-minus-right brightness of the central crop follows
the true lx (least-squares slope) in the input, the model's reconstruction, its canonical image and its canonical
shading: a canonical image with less of the input's side shading than the reconstruction has means the warp (the
view) puts in what the shading leaves out.
"""

import light_budget  # sibling modules: a script's own folder is on sys.path
import numpy as np
import trained_run

VIEW_NAMES = ("rx", "ry", "rz", "tx", "ty")
LX = 2  # (ka, kd, lx, ly)


def leak_coefficients(predicted, truth, lx):
  """(a, b) of the least-squares fit predicted = a * truth + b * lx + c, per column of [N, K] arrays; [K] each."""
  predicted, truth, lx = (np.asarray(a, np.float64) for a in (predicted, truth, lx))
  a, b = [], []
  for k in range(predicted.shape[1]):
    design = np.stack([truth[:, k], lx, np.ones_like(lx)], axis=1)
    coef = np.linalg.lstsq(design, predicted[:, k], rcond=None)[0]
    a.append(coef[0])
    b.append(coef[1])
  return np.array(a), np.array(b)


def left_right(images):
  """Mean brightness of the left half minus the right half of the central crop of [N, H, W] or [N, H, W, C]
  images: [N] (`light_budget.side_difference` for lx)."""
  return light_budget.side_difference(images, "lx")


def main():
  _, _, model, batch = trained_run.restore_with_val_batch(__doc__)
  out = model(batch["image"])
  lx = batch["gt_light"].numpy()[:, LX]
  view, true_view = np.asarray(out["view"])[:, :5], batch["gt_view"].numpy()[:, :5]
  a, b = leak_coefficients(view, true_view, lx)
  print(f"{len(lx)} 'val' images; predicted lx spread {np.asarray(out['light'])[:, LX].std():.3f}, true {lx.std():.3f}")
  print("view component: predicted = a * true + b * true lx + c")
  for k, name in enumerate(VIEW_NAMES):
    print(
      f"  {name}: a {a[k]:+.3f}  b {b[k]:+.4f}  corr(predicted, true lx) {np.corrcoef(view[:, k], lx)[0, 1]:+.2f}"
      f"  spread predicted {view[:, k].std():.4f}, true {true_view[:, k].std():.4f}"
    )
  print("left-minus-right brightness of the central crop against the true lx (slope, images in [0, 1]):")
  for name, images in (
    ("input", batch["image"].numpy()),
    ("reconstruction", out["recon_image"]),
    ("canonical image", out["canon_image"]),
  ):
    print(f"  {name}: {light_budget.slope(left_right(light_budget.unit_range(images)), lx):+.4f}")
  print(f"  canonical shading: {light_budget.slope(left_right(out['canon_shading']), lx):+.4f}")


if __name__ == "__main__":
  main()
