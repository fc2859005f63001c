"""Diagnostic: how well the light and view encoders can do at all, when trained *with* the ground truth.

python scripts/diagnostics/supervised_ceiling.py DATA_DIR [STEPS] [ENCODER_NF] [LEARNING_RATE]

Trains the de-renderer's light and view encoders (`networks.ConvEncoder`, mirror-equivariant as in the CPU presets,
the quick preset's width by default) by regression on the ground-truth light (ka, kd, lx, ly) and view (rx, ry, rz)
of the 'train' split, batch 16, Adam, then scores them with the trainer's own metrics (`derender_metrics`) on the
first 64 'val' records and on the 'test' split, beside the trivial predictors. Every STEPS / 4 steps it prints the
validation ratios, so the curve is visible.

An unsupervised encoder sees the light and view only through the reconstruction loss; one trained on the truth
itself, with the same architecture, data and number of steps, is an upper bound on what it can reach at that
budget. A target below this ceiling cannot be met by better losses alone.
"""

import math
import sys
import time

import numpy as np
import tensorflow as tf

from pdr_tf import graph
from pdr_tf.data import input_pipeline
from pdr_tf.evaluation import derender_metrics
from pdr_tf.model import de_renderer
from pdr_tf.model import networks
from pdr_tf.render import scene

USAGE = "usage: supervised_ceiling.py DATA_DIR [STEPS] [ENCODER_NF] [LEARNING_RATE]"
BATCH = 16
TRAIN_SPLIT = "train"  # the records with ground truth that the encoders are trained on
# The raw -> value maps: the model's, with ka and kd over the worlds' whole range [0, 1].
RANGES = scene.SceneRanges(ka_range=(0.0, 1.0), kd_range=(0.0, 1.0))
ROTATION_SCALE = math.radians(RANGES.rotation_range_degrees)


def targets(record):
  """Raw-space regression targets: light (ka, kd in [-1, 1] over the world's value range [0, 1]; lx, ly as is) and
  view rotations / 60 degrees."""
  light = record["gt_light"]
  light_raw = tf.concat([light[:, 0:2] * 2.0 - 1.0, light[:, 2:4]], 1)
  return light_raw, record["gt_view"][:, :3] / ROTATION_SCALE


def raw_outputs(light_net, view_net, images):
  """Raw [B, 4] light and [B, 6] view of the mirror-equivariant encoders."""
  light = de_renderer.mirror_equivariant(light_net, images, scene.LIGHT_MIRROR_SIGNS)["output"]
  return light, de_renderer.mirror_equivariant(view_net, images, scene.VIEW_MIRROR_SIGNS)["output"]


def predict(light_net, view_net, images):
  light_raw, view_raw = raw_outputs(light_net, view_net, images)
  view = tf.concat([view_raw[:, :3], tf.zeros_like(view_raw[:, :3])], 1)  # rotations only; translations 0
  return scene.light_from_raw(light_raw, RANGES).numpy(), scene.view_from_raw(view, RANGES).numpy()


def score(light_net, view_net, batches):
  light, view, gt_light, gt_view = [], [], [], []
  for record in batches:
    keep = record["gt_has"].numpy() == 1
    if not keep.any():
      continue
    pl, pv = predict(light_net, view_net, record["image"])
    light.append(pl[keep])
    view.append(pv[keep])
    gt_light.append(record["gt_light"].numpy()[keep])
    gt_view.append(record["gt_view"].numpy()[keep])
  if not gt_view:
    return None
  gt_view = np.concatenate(gt_view)
  view_rep = derender_metrics.view_report(np.concatenate(view), gt_view)
  light_rep = derender_metrics.light_report(
    np.concatenate(light), np.concatenate(gt_light), view_rep["alignment"]["matrix"]
  )
  return view_rep["geodesic_deg"], light_rep["direction_deg"]


def line(name, scores):
  if scores is None:
    return f"{name}: no records with ground truth"
  view, light = scores
  return (
    f"{name}: view {view['model']:.1f}/{view['trivial']:.1f} deg ({view['ratio']:.2f}x), "
    f"light {light['model']:.1f}/{light['trivial']:.1f} deg ({light['ratio']:.2f}x)"
  )


def main():
  if len(sys.argv) < 2:
    sys.exit(USAGE)
  data_dir = sys.argv[1]
  steps = int(sys.argv[2]) if len(sys.argv) > 2 else 4000
  nf = int(sys.argv[3]) if len(sys.argv) > 3 else 16
  learning_rate = float(sys.argv[4]) if len(sys.argv) > 4 else 1e-4
  tf.keras.utils.set_random_seed(0)
  light_net = networks.ConvEncoder(out_dim=4, nf=nf, name="light_net")
  view_net = networks.ConvEncoder(out_dim=6, nf=nf, name="view_net")
  optimizer = tf.keras.optimizers.Adam(learning_rate, epsilon=1e-8)
  train = input_pipeline.make_dataset(data_dir, TRAIN_SPLIT, 1, training=False, repeat=True).unbatch()
  train = train.filter(lambda r: r["gt_has"] == 1).shuffle(256, seed=0).batch(BATCH)
  val = [input_pipeline.ground_truth_batch(data_dir, "val", 64)]

  @graph.function
  def step(images, light_target, view_target):
    with tf.GradientTape() as tape:
      light, view = raw_outputs(light_net, view_net, images)
      loss = tf.reduce_mean(tf.square(light - light_target)) + tf.reduce_mean(tf.square(view[:, :3] - view_target))
    variables = light_net.trainable_variables + view_net.trainable_variables
    optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
    return loss

  start = time.time()
  for index, record in enumerate(train.take(steps)):
    light_target, view_target = targets(record)
    step(record["image"], light_target, view_target)
    if (index + 1) % max(1, steps // 4) == 0:
      print(f"step {index + 1} ({time.time() - start:.0f} s) " + line("val", score(light_net, view_net, val)))
  test = input_pipeline.make_dataset(data_dir, "test", 100, training=False)
  print(line(f"test after {steps} steps (nf {nf}, lr {learning_rate:g})", score(light_net, view_net, test)))


if __name__ == "__main__":
  main()
