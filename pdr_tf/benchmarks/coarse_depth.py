"""The best normals error a depth map of a given resolution can reach: an oracle, not a model.

The ground-truth depth (input view) of the validation images is averaged down to S x S and upsampled bilinearly to
the image size, with the background either at a far depth (the object's edge steps down to it) or at the depth of
the nearest object pixel (no step). Its normals error against the ground truth, on the evaluation pixels, bounds
what a de-renderer predicting an S x S depth can score; compare with a flat map (docs/training.md).

  python -m pdr_tf.benchmarks.coarse_depth --data_dir data/cars/tfrecords
"""

import argparse
import sys

import numpy as np
import tensorflow as tf
from scipy import ndimage

from pdr_tf import cli
from pdr_tf.evaluation import derender_metrics

from pdr_tf.data import formats
from pdr_tf.evaluation import output_files
from pdr_tf.render import geometry
from pdr_tf.render import scene
from pdr_tf.data import input_pipeline

REPORT_WRITER = "pdr_tf.benchmarks.coarse_depth"  # the --json report's writer (`output_files.REPORT_KEY`)

FAR_DEPTH = scene.SceneRanges.max_depth  # the canonical depth range's far end (the default, not a gin binding)


def fill_background(depth: np.ndarray, mode: str) -> np.ndarray:
  """[H, W] depth, 0 on background -> background at FAR_DEPTH ("far") or at the nearest object pixel's ("nearest")."""
  covered = depth > 0
  if mode == "far":
    return np.where(covered, depth, FAR_DEPTH)
  if mode == "nearest":
    if not covered.any():
      return np.full_like(depth, FAR_DEPTH)
    index = ndimage.distance_transform_edt(~covered, return_distances=False, return_indices=True)
    return depth[tuple(index)]
  raise ValueError(f"mode must be 'far' or 'nearest', got {mode!r}")


def coarse(depth: np.ndarray, size: int) -> np.ndarray:
  """[B, H, W] depth averaged down to size x size and upsampled bilinearly back to H x W."""
  height, width = depth.shape[1:]
  small = tf.image.resize(depth[..., None], [size, size], method="area")
  return tf.image.resize(small, [height, width], method="bilinear").numpy()[..., 0]


def normals_error(depth: np.ndarray, gt_depth: np.ndarray) -> float:
  """Mean normals angle (degrees) of `depth` against `gt_depth` ([B, S, S]) on the eroded object pixels."""
  intrinsics = geometry.intrinsics_from_fov(gt_depth.shape[1])
  mask = np.stack([derender_metrics.erode_mask(g > 0, 1) for g in gt_depth])

  def normals(d):
    return geometry.normals_from_depth(tf.constant(d, tf.float32), intrinsics).numpy()

  return float(np.nanmean(derender_metrics.mad_per_image(normals(depth), normals(gt_depth), mask)))


def oracle_table(gt_depth: np.ndarray, sizes=(16, 32)) -> dict:
  """{"flat": error, "<size>_<fill>": error} for each size and background fill."""
  out = {"flat": normals_error(np.ones_like(gt_depth), gt_depth)}
  for fill in ("far", "nearest"):
    filled = np.stack([fill_background(g, fill) for g in gt_depth])
    for size in sizes:
      out[f"{size}_{fill}"] = normals_error(coarse(filled, size), gt_depth)
  return out


def make_parser() -> argparse.ArgumentParser:
  """This entry point's command line: `main` parses it; tests/test_doc_commands.py checks the docs against it."""
  parser = argparse.ArgumentParser(
    prog="python -m pdr_tf.benchmarks.coarse_depth",
    description=__doc__,
    formatter_class=argparse.RawDescriptionHelpFormatter,
  )
  parser.add_argument("--data_dir", required=True, help="converted TFRecords with ground truth")
  parser.add_argument("--split", default="val")
  parser.add_argument("--num_images", type=int, default=64)
  parser.add_argument("--json", default=None, help="also write the table to this JSON file")
  cli.add_log_level(parser)
  return parser


def main(argv=None) -> int:
  parser = make_parser()
  args = parser.parse_args(argv)
  output_files.check_json_argument(parser, args.json, REPORT_WRITER)
  cli.setup_logging(args.log_level)
  try:
    dataset = input_pipeline.make_dataset(args.data_dir, args.split, args.num_images, training=False)
    batch = next(input_pipeline.checked(dataset, args.data_dir, args.split))
  except (FileNotFoundError, ValueError, input_pipeline.CorruptDataError) as e:
    print(f"coarse_depth: {e}", file=sys.stderr)
    return 1
  gt_depth = batch["gt_depth"].numpy()
  if gt_depth.shape[1] != formats.IMAGE_SIZE or not np.any(gt_depth > 0):
    print(f"{args.data_dir}: split {args.split!r} has no ground-truth depth", file=sys.stderr)
    return 1
  table = oracle_table(gt_depth)
  for key, value in table.items():
    print(f"{key:>12s}  {value:6.2f} deg")
  report = {"data_dir": args.data_dir, "split": args.split, "images": int(gt_depth.shape[0]), **table}
  if args.json and not output_files.write_json_argument(args.json, report, REPORT_WRITER):
    return 1
  return 0


if __name__ == "__main__":
  sys.exit(main())
