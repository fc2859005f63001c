"""Diagnostic: where does each light component's shading go? (light, shading, albedo, depth tilt or confidence)

python scripts/diagnostics/light_budget.py WORKDIR DATA_DIR [NUM_IMAGES]

Restores the latest checkpoint of the training run in WORKDIR and de-renders NUM_IMAGES (64) validation images with
ground truth. A light from one side brightens that side of the image; for lx the measure is the left-minus-right
brightness of the central crop, for ly the top-minus-bottom brightness. For each component it prints the
least-squares slope of that measure against the true component in:
- the input and the model's reconstruction (what there is to explain, and how much of it the model explains);
- the canonical image, the canonical shading and the canonical albedo's luminance (where the model puts it: the
  shading is the light's share, the albedo's is painted in; the rest of the reconstruction's is the warp's, i.e.
  the view's);
- the photometric confidence sigma (a residual discounted by ConfNet rather than explained);
and the slope of the predicted component and of the canonical depth's tilt along the same axis (the plane fitted to
the central crop, depth units per pixel: the generalised bas-relief ambiguity trades a tilt of the shape for a
change of the light). The worlds draw the light and the view independently, so a slope is the light's doing.
"""

import numpy as np
import trained_run  # the sibling module: a script's own folder is on sys.path

MARGIN = 0.1875  # cut off on every side before measuring (as light_view_leak.py)
COMPONENTS = {"lx": 2, "ly": 3}  # index in (ka, kd, lx, ly); lx along the width, ly along the height


def central(maps, margin=MARGIN):
  """The central crop of [N, H, W] maps (or [N, H, W, C], averaged over C)."""
  maps = np.asarray(maps, np.float64)
  if maps.ndim == 4:
    maps = maps.mean(axis=-1)
  cut = int(round(margin * maps.shape[2]))
  return maps[:, cut : maps.shape[1] - cut, cut : maps.shape[2] - cut]


def side_difference(maps, component):
  """[N]: mean of the first half minus the second half of the central crop, along the width for lx (left minus
  right) and along the height for ly (top minus bottom)."""
  crop = central(maps)
  axis = 2 if component == "lx" else 1
  size = crop.shape[axis]
  half = size // 2
  first = np.take(crop, np.arange(half), axis=axis)
  second = np.take(crop, np.arange(size - half, size), axis=axis)
  return first.mean(axis=(1, 2)) - second.mean(axis=(1, 2))


def plane_tilt(maps, component):
  """[N]: slope per pixel of the least-squares plane a + b x + c y fitted to each central crop: b for lx, c for
  ly (x to the right, y down)."""
  crop = central(maps)
  n, height, width = crop.shape
  ys, xs = np.mgrid[0:height, 0:width]
  design = np.stack([np.ones(height * width), xs.ravel() - xs.mean(), ys.ravel() - ys.mean()], axis=1)
  coef = np.linalg.lstsq(design, crop.reshape(n, -1).T, rcond=None)[0]
  return coef[1] if component == "lx" else coef[2]


def slope(values, truth) -> float:
  """The least-squares slope of `values` against `truth` ([N] each)."""
  return float(np.polyfit(np.asarray(truth, np.float64), np.asarray(values, np.float64), 1)[0])


def unit_range(images) -> np.ndarray:
  """Model images in [-1, 1] -> [0, 1]."""
  return (np.asarray(images, np.float64) + 1.0) / 2.0


def main():
  _, _, model, batch = trained_run.restore_with_val_batch(__doc__)
  out = model(batch["image"])
  maps = {
    "input": unit_range(batch["image"].numpy()),
    "reconstruction": unit_range(out["recon_image"]),
    "canonical image": unit_range(out["canon_image"]),
    "canonical shading": np.asarray(out["canon_shading"]),
    "canonical albedo": unit_range(out["albedo"]),
  }
  if "conf_l1" in out:
    maps["confidence sigma"] = np.asarray(out["conf_l1"])[..., 0]
  light, true_light = np.asarray(out["light"]), batch["gt_light"].numpy()
  print(f"{len(true_light)} 'val' images; slopes against the true component (images in [0, 1])")
  for component, index in COMPONENTS.items():
    truth = true_light[:, index]
    measure = "left minus right" if component == "lx" else "top minus bottom"
    print(f"{component} ({measure}; truth spread {truth.std():.3f}):")
    print(
      f"  predicted {component}: slope {slope(light[:, index], truth):+.3f}, "
      f"corr {np.corrcoef(light[:, index], truth)[0, 1]:+.2f}, spread {light[:, index].std():.3f}"
    )
    for name, images in maps.items():
      print(f"  {name}: {slope(side_difference(images, component), truth):+.4f}")
    tilt = plane_tilt(np.asarray(out["depth"]), component)
    print(
      f"  canonical depth tilt: slope {slope(tilt, truth):+.2e} per pixel, corr {np.corrcoef(tilt, truth)[0, 1]:+.2f}"
    )


if __name__ == "__main__":
  main()
