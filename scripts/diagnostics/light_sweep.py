"""Diagnostic: does a trained model's own loss point at the true light direction?

python scripts/diagnostics/light_sweep.py WORKDIR DATA_DIR [NUM_IMAGES]

Restores the latest checkpoint of the training run in WORKDIR, predicts the scene of NUM_IMAGES (64) validation
images with ground truth, and, keeping the predicted depth, albedo, view, kd fixed, sweeps lx (then ly) over a grid
in [-0.9, 0.9] (the worlds' range), with ka adjusted so that a plane facing the camera keeps its brightness (the
direction normalize([lx, ly, 1]) tilts away from it), computing each image's masked photometric L1 at each value.
Prints, per component, how the loss's per-image minimiser correlates with the true component and how far it spreads,
and the mean loss with the predicted component against the true one substituted. A minimiser spread near zero,
uncorrelated with the truth, and a higher loss at the truth mean that the depth and albedo have adapted to the
predicted light: the light encoder gets no signal to move, however long it trains.
"""

import sys

import numpy as np
import tensorflow as tf

from pdr_tf.data import input_pipeline
from pdr_tf.evaluation import scene_stats
from pdr_tf.model import losses
from pdr_tf.training import workdir as workdir_lib

GRID = np.linspace(-0.9, 0.9, 13)


def main():
  if len(sys.argv) < 3:
    sys.exit(__doc__)
  workdir, data_dir = sys.argv[1], sys.argv[2]
  num_images = int(sys.argv[3]) if len(sys.argv) > 3 else 64
  model = workdir_lib.restore_model(workdir, None)
  batch = input_pipeline.ground_truth_batch(data_dir, "val", num_images)
  if batch is None:
    sys.exit(f"{data_dir} has no 'val' records with ground truth")
  images = batch["image"]
  scene = model.predict_scene(images)
  truth = batch["gt_light"].numpy()
  predicted = np.asarray(scene["light"])

  def lz(light):
    return 1.0 / np.sqrt(1.0 + light[:, 2] ** 2 + light[:, 3] ** 2)

  def loss(light):
    light = light.copy()  # ka compensates the change of l_z, so a plane facing the camera keeps its brightness
    light[:, 0] += light[:, 1] * (lz(predicted) - lz(light))
    out = model.render(scene["depth"], scene["albedo"], tf.constant(light, tf.float32), scene["view"])
    return losses.photometric_l1(out["recon_image"], images, out["mask"]).numpy()

  print(f"{len(truth)} 'val' images of {data_dir}; model {workdir}; mean loss {loss(predicted).mean():.4f}")
  for name in ("lx", "ly"):
    column = scene_stats.LIGHT_NAMES.index(name)
    curves = []
    for value in GRID:
      light = predicted.copy()
      light[:, column] = value
      curves.append(loss(light))
    best = GRID[np.stack(curves, 1).argmin(1)]
    light = predicted.copy()
    light[:, column] = truth[:, column]
    print(
      f"{name}: loss minimiser corr with the truth {np.corrcoef(best, truth[:, column])[0, 1]:+.2f}, "
      f"spread {best.std():.2f} (truth {truth[:, column].std():.2f}, prediction {predicted[:, column].std():.3f}); "
      f"mean loss with the true {name} {loss(light).mean():.4f}"
    )


if __name__ == "__main__":
  main()
