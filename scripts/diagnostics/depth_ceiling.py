"""Diagnostic: how well the de-renderer's depth network can do at all, when trained *with* the ground truth.

python scripts/diagnostics/depth_ceiling.py DATA_DIR [STEPS] [LEARNING_RATE] [--gin_file=F ...] [--gin_param=P ...]

Builds the de-renderer that the gin files configure (default: the README quick start's cars model,
gin/cars_unsup3d.gin + gin/quick.gin; its depth parametrisation, resolution and border pin included) and trains its
depth network alone on the 'train' split, batch 16, Adam: the canonical depth is warped into the input view with the
*true* view by the model's own renderer and compared there with the ground-truth depth, on the pixels the
validation scores (object pixels eroded by one, inside the rendered mask). The loss is the normals' 1 - cos plus
SIDE_WEIGHT x the scale-invariant depth error, the two depth metrics themselves. Every STEPS / 4 steps it prints
the validation's normals and SIDE ratios (model / flat depth) on the first 64 'val' records, and at the end on the
'test' split.

An unsupervised depth sees the shape only through the reconstruction; the same network trained on the shape itself,
under the true view, for the same number of steps, is an upper bound on what it can reach at that budget. A target
below this ceiling cannot be met by better losses alone. (The light and view encoders' ceiling:
supervised_ceiling.py.)
"""

import argparse
import os
import time

import numpy as np
import tensorflow as tf

from pdr_tf import gin_config
from pdr_tf import graph
from pdr_tf import train as train_entry  # noqa: F401  registers the configurables the training gin files bind
from pdr_tf.data import input_pipeline
from pdr_tf.evaluation import derender_eval
from pdr_tf.evaluation import derender_metrics
from pdr_tf.model import de_renderer
from pdr_tf.render import geometry

BATCH = 16
TRAIN_SPLIT = "train"
SIDE_WEIGHT = 10.0  # SIDE is ~0.01 where 1 - cos of the normals is ~0.1: comparable pulls
GIN_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, os.pardir, "gin")
DEFAULT_GIN = [os.path.join(GIN_DIR, "cars_unsup3d.gin"), os.path.join(GIN_DIR, "quick.gin")]


def evaluation_pixels(gt_depth: np.ndarray) -> np.ndarray:
  """[B, S, S] bool: the ground truth's object pixels eroded as the validation erodes them."""
  return np.stack([derender_metrics.erode_mask(d > 0, derender_eval.EROSION_PIXELS) for d in gt_depth])


def depth_loss(recon_depth, gt_depth, pixels, intrinsics):
  """Mean over images of (1 - cos) of the normals plus SIDE_WEIGHT x SIDE, on `pixels` ([B, S, S] float)."""
  # The truth's normals from its whole object (the eroded pixels' neighbours are object pixels), as the validation
  # computes them; 1.0 on the background only keeps the logarithm finite.
  safe_gt = tf.where(gt_depth > 0, gt_depth, 1.0)
  cos = tf.reduce_sum(
    geometry.normals_from_depth(recon_depth, intrinsics) * geometry.normals_from_depth(safe_gt, intrinsics), -1
  )
  count = tf.maximum(tf.reduce_sum(pixels, [1, 2]), 1.0)
  normals = tf.reduce_sum((1.0 - cos) * pixels, [1, 2]) / count
  log_ratio = (tf.math.log(tf.maximum(recon_depth, 1e-3)) - tf.math.log(safe_gt)) * pixels
  mean = tf.reduce_sum(log_ratio, [1, 2]) / count
  var = tf.reduce_sum(tf.square(log_ratio - mean[:, None, None]) * pixels, [1, 2]) / count
  return tf.reduce_mean(normals + SIDE_WEIGHT * tf.sqrt(var + 1e-12))


def score(model, batches):
  """The validation's normals and SIDE reports ({model, trivial, ratio}) of the depth under the true view."""
  scorer = derender_eval.DerenderScorer(model.image_size)
  for record in batches:
    keep = record["gt_has"].numpy() == 1
    if not keep.any():
      continue
    gt_light, gt_view = record["gt_light"].numpy(), record["gt_view"].numpy()
    recon_depth = model.renderer.warp_depth(model.predict_depth(record["image"]), tf.constant(gt_view, tf.float32))
    mask = model.renderer.valid_mask(recon_depth)
    scorer.add(
      recon_depth.numpy()[keep], mask.numpy()[keep], gt_light[keep], gt_view[keep],
      record["gt_depth"].numpy()[keep], gt_light[keep], gt_view[keep],
    )  # fmt: skip
  return scorer.result()


def line(name, report):
  if report is None:
    return f"{name}: no records with ground truth"
  normals, side = report["normals_mad_deg"], report["side"]
  return (
    f"{name}: normals {normals['model']:.1f}/{normals['trivial']:.1f} deg ({normals['ratio']:.2f}x), "
    f"SIDE {side['model']:.4f}/{side['trivial']:.4f} ({side['ratio']:.2f}x)"
  )


def make_parser():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("data_dir", help="converted TFRecords with ground truth (a 'train', 'val' and 'test' split)")
  parser.add_argument("steps", nargs="?", type=int, default=4000)
  parser.add_argument("learning_rate", nargs="?", type=float, default=1e-4)
  parser.add_argument("--gin_file", action="append", default=None, help="default: cars_unsup3d.gin + quick.gin")
  parser.add_argument("--gin_param", action="append", default=[])
  parser.add_argument("--test_batches", type=int, default=10, help="batches of 100 'test' records scored at the end")
  return parser


def main(argv=None):
  args = make_parser().parse_args(argv)
  if args.steps < 1:
    raise SystemExit(f"STEPS must be >= 1, got {args.steps}")
  try:
    gin_config.parse(args.gin_file or DEFAULT_GIN, args.gin_param)
    train = input_pipeline.make_dataset(args.data_dir, TRAIN_SPLIT, 1, training=False, repeat=True).unbatch()
    val = input_pipeline.ground_truth_batch(args.data_dir, "val", 64)
  except (gin_config.GinConfigError, FileNotFoundError) as e:
    raise SystemExit(str(e)) from e
  train = train.filter(lambda r: r["gt_has"] == 1).shuffle(256, seed=0).batch(BATCH)
  if val is None:
    raise SystemExit(f"{args.data_dir}: its 'val' split has no records with ground truth")
  tf.keras.utils.set_random_seed(0)
  model = de_renderer.DeRenderer()
  model.build_for_inference()
  intrinsics = geometry.intrinsics_from_fov(model.image_size)
  optimizer = tf.keras.optimizers.Adam(args.learning_rate, epsilon=1e-8)
  variables = model.depth_net.trainable_variables

  @graph.function
  def step(images, gt_depth, gt_view, pixels):
    with tf.GradientTape() as tape:
      recon_depth = model.renderer.warp_depth(model.predict_depth(images, training=True), gt_view)
      valid = tf.stop_gradient(model.renderer.valid_mask(recon_depth))
      loss = depth_loss(recon_depth, gt_depth, pixels * valid, intrinsics)
    optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
    return loss

  print(line("val at step 0 (a flat canonical depth when the preset starts flat)", score(model, [val])))
  start = time.time()
  for index, record in enumerate(train.take(args.steps)):
    gt_depth = record["gt_depth"].numpy()
    pixels = tf.constant(evaluation_pixels(gt_depth), tf.float32)
    loss = step(record["image"], tf.constant(gt_depth), tf.cast(record["gt_view"], tf.float32), pixels)
    if (index + 1) % max(1, args.steps // 4) == 0:
      report = line("val", score(model, [val]))
      print(f"step {index + 1} ({time.time() - start:.0f} s, loss {float(loss):.4f}) {report}", flush=True)
  test = input_pipeline.make_dataset(args.data_dir, "test", 100, training=False).take(args.test_batches)
  config = f"depth {model.depth_size}x{model.depth_size}, lr {args.learning_rate:g}"
  print(line(f"test after {args.steps} steps ({config})", score(model, test)))


if __name__ == "__main__":
  main()
