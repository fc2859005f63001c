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

For each component it also takes the gradient at the prediction, the other light components held, of the training
objective's photometric terms as the objective computes them (one mask for both renders, the run's confidence maps
where it has them): the reconstruction term, the flip term (the mirrored canonical depth and albedo rendered with
the same light and view) and their sum with the run's flip weight, which is what the light encoder's output
receives from the image in training (LOOCC's terms and the perceptual term, off without a VGG16 weights file, left
out); and it says how often each points towards the truth.

Then it says where the true light's extra loss comes from: the per-pixel change of the L1 error when the true lx, ly
replace the predicted ones, split by the rendered surface's slope (steep: the normal of the rendered depth more than
STEEP_DEGREES, 30, from the camera axis) and by the world's object mask, beside each region's share of the covered
pixels; and how many of the world's own object pixels are that steep.

Environment: STEP=N reads the run's checkpoint of step N instead of the latest (as every diagnostic of a trained
run does, `trained_run.py`); REGION=object restricts the swept loss to the world's object pixels (does the car
alone point at the true light?); CHARBONNIER_EPS=e > 0 replaces |r| by sqrt(r^2 + e^2) - e (is the L1 kink at a
zero residual what pins the light?).
"""

import os
import sys

import numpy as np
import tensorflow as tf
import trained_run  # the sibling module: a script's own folder is on sys.path

from pdr_tf.evaluation import scene_stats
from pdr_tf.model import losses
from pdr_tf.render import geometry
from pdr_tf.render import renderer

GRID = np.linspace(-0.9, 0.9, 13)
STEEP_DEGREES = float(os.environ.get("STEEP_DEGREES", 30.0))
REGION = os.environ.get("REGION", "covered")
CHARBONNIER_EPS = float(os.environ.get("CHARBONNIER_EPS", 0.0))


def main():
  workdir, data_dir, model, batch = trained_run.restore_with_val_batch(__doc__)
  images = batch["image"]
  if REGION not in ("covered", "object"):
    sys.exit(f"REGION must be 'covered' or 'object', got {REGION!r}")
  region = tf.cast(batch["gt_depth"] > 0, tf.float32) if REGION == "object" else 1.0
  scene = model.predict_scene(images)
  truth = batch["gt_light"].numpy()
  predicted = np.asarray(scene["light"])
  depth, albedo, view = scene["depth"], scene["albedo"], scene["view"]
  weights = losses.ReconstructionWeights()  # the run's, from its operative config (restored with the model)
  conf = scene.get("conf_l1") if weights.use_confidence else None

  def training_terms(light):
    """[B] the objective's l1 and l1_flip of `light`, rendered and scored as the model and the objective do: the
    scene and its mirror in one batch (`renderer.flip_pair`), one mask for both, the run's confidence maps."""
    rendered = model.render(*renderer.flip_pair(depth, albedo, light, view))
    batch = len(predicted)
    mask = tf.stop_gradient(rendered["mask"][:batch] * rendered["mask"][batch:]) * region
    terms = losses.photometric_pair(
      rendered["recon_image"][:batch], rendered["recon_image"][batch:], images, mask, conf
    )
    return {"reconstruction": terms["l1"], "flip term": terms["l1_flip"]}

  def lz(light):
    return 1.0 / np.sqrt(1.0 + light[:, 2] ** 2 + light[:, 3] ** 2)

  def render(light):
    light = light.copy()  # ka compensates the change of l_z, so a plane facing the camera keeps its brightness
    light[:, 0] += light[:, 1] * (lz(predicted) - lz(light))
    return model.render(depth, albedo, tf.constant(light, tf.float32), view)

  def loss_of_render(out):
    """[B] each image's loss of a render, on the swept region."""
    mask = out["mask"] * region
    if CHARBONNIER_EPS > 0:
      error = tf.sqrt(tf.square(out["recon_image"] - images) + CHARBONNIER_EPS**2) - CHARBONNIER_EPS
      return tf.reduce_sum(tf.reduce_mean(error, -1) * mask, [1, 2]) / tf.reduce_sum(mask, [1, 2])
    return losses.photometric_l1(out["recon_image"], images, mask)

  def loss(light=None, out=None):
    return loss_of_render(render(light) if out is None else out).numpy()

  as_predicted = render(predicted)
  kind = f"Charbonnier (eps {CHARBONNIER_EPS})" if CHARBONNIER_EPS > 0 else "L1"
  print(
    f"{len(truth)} 'val' images of {data_dir}; model {workdir}; {kind} loss on the {REGION} pixels; "
    f"mean loss {loss(out=as_predicted).mean():.4f}"
  )
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
    towards = truth[:, column] - predicted[:, column]
    downhill = {term: -gradient for term, gradient in loss_gradients(training_terms, predicted, column).items()}
    downhill[f"sum (flip weight {weights.lambda_flip:g}, as trained)"] = (
      downhill["reconstruction"] + weights.lambda_flip * downhill["flip term"]
    )
    for term, step in downhill.items():
      print(
        f"  {name}, the {term}'s gradient at the prediction: towards the truth in "
        f"{np.mean(np.sign(step) == np.sign(towards)):.0%} of the images; downhill step corr with truth - prediction "
        f"{np.corrcoef(step, towards)[0, 1]:+.2f}, size {np.abs(step).mean():.2e}"
      )

  light = predicted.copy()
  light[:, 2:4] = truth[:, 2:4]
  where_the_loss_rises(model, batch, as_predicted, render(light))


def loss_gradients(terms, light, column):
  """{term: [B] d term_b / d light_b[column]} at `light`, the other light components held (each image's terms
  depend on its own light only). `terms(light)` returns per-image losses by name."""
  value = tf.Variable(light[:, column], dtype=tf.float32)
  with tf.GradientTape(persistent=True) as tape:
    full = tf.tensor_scatter_nd_update(
      tf.constant(light, tf.float32),
      tf.stack([tf.range(len(light)), tf.fill([len(light)], column)], 1),
      value,
    )
    totals = {name: tf.reduce_sum(per_image) for name, per_image in terms(full).items()}
  gradients = {name: tape.gradient(total, value).numpy() for name, total in totals.items()}
  del tape
  return gradients


def steep_pixels(depth, intrinsics):
  """[B, H, W] bool: pixels whose depth normal is more than STEEP_DEGREES from the camera axis."""
  normals = geometry.normals_from_depth(tf.constant(depth, tf.float32), intrinsics).numpy()
  return normals[..., 2] < np.cos(np.radians(STEEP_DEGREES))


def where_the_loss_rises(model, batch, before, after):
  """Prints how the per-pixel L1 change from `before` to `after` (renders) splits over slope and object regions."""
  images = batch["image"].numpy()
  covered = before["mask"].numpy().reshape(images.shape[:3]) > 0.5

  def pixel_error(out):
    return np.abs(out["recon_image"].numpy() - images).mean(-1)

  change = pixel_error(after) - pixel_error(before)
  steep = steep_pixels(before["recon_depth"].numpy(), model.renderer.intrinsics)
  gt_depth = batch["gt_depth"].numpy()
  obj = gt_depth > 0
  total = change[covered].sum()
  print(
    "true light - predicted light, per-pixel L1 change on the covered pixels: "
    f"sum {total:.1f} (mean {change[covered].mean():+.4f})"
  )
  for name, region in (
    ("steep, object", steep & obj),
    ("steep, background", steep & ~obj),
    ("not steep, object", ~steep & obj),
    ("not steep, background", ~steep & ~obj),
  ):
    region = region & covered
    print(
      f"  {name:22s}: {region.sum() / covered.sum():6.1%} of the pixels, "
      f"{change[region].sum() / total:6.1%} of the change "
      f"(mean {change[region].mean() if region.any() else 0.0:+.4f})"
    )
  interior = obj & np.roll(obj, 1, 1) & np.roll(obj, -1, 1) & np.roll(obj, 1, 2) & np.roll(obj, -1, 2)
  world_steep = steep_pixels(gt_depth, model.renderer.intrinsics) & interior
  print(
    f"  steep pixels on the object: {(steep & obj & covered).sum() / (obj & covered).sum():.1%} in the model's render, "
    f"{world_steep.sum() / interior.sum():.1%} of the world's interior object pixels"
  )


if __name__ == "__main__":
  main()
