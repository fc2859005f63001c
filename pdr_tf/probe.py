"""Probe a training run: predicted light, view and depth relief against ground truth, parameter by parameter.

    python -m pdr_tf.probe --workdir runs/faces_light --data_dir data/faces/tfrecords

restores a work dir's checkpoint (the latest, or --step), de-renders the first --num_images records with ground
truth of --split (the trainer's validation batch by default), and prints for each of ka, kd, lx, ly, rx .. tz and
the depth's relief (on the object's pixels) the predicted and true mean ± std and their correlation
(pdr_tf.evaluation.scene_stats). A collapse shows as a small predicted spread, a shrunk prediction as a
correlation with a small spread.
"""

import argparse
import json
import logging
import sys

from pdr_tf.evaluation import scene_stats

_LOG = logging.getLogger(__name__)


def probe(workdir, data_dir, split="val", num_images=64, step=None):
  """Rows of `scene_stats.parameter_rows` for light, view and depth relief (see the module docstring)."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel  (keeps --help fast)

  from pdr_tf.data import input_pipeline  # pylint: disable=import-outside-toplevel
  from pdr_tf.training import workdir as workdir_lib  # pylint: disable=import-outside-toplevel

  model = workdir_lib.restore_model(workdir, step)
  batch = input_pipeline.ground_truth_batch(data_dir, split, num_images)
  if batch is None or int(tf.shape(batch["image"])[0]) < 2:
    raise ValueError(f"split {split!r} of {data_dir} has fewer than 2 records with ground truth")
  out = {k: v.numpy() for k, v in model.de_render(batch["image"]).items()}
  gt_depth = batch["gt_depth"].numpy()  # 0 on the background
  return (
    scene_stats.parameter_rows(out["light"], batch["gt_light"].numpy(), scene_stats.LIGHT_NAMES)
    + scene_stats.parameter_rows(out["view"], batch["gt_view"].numpy(), scene_stats.VIEW_NAMES)
    + scene_stats.masked_std_rows(out["recon_depth"], gt_depth, (gt_depth > 0) & (out["mask"] > 0.5))
  )


def main(argv=None):
  parser = argparse.ArgumentParser(
    prog="python -m pdr_tf.probe",
    description=__doc__.splitlines()[0],
    formatter_class=argparse.RawDescriptionHelpFormatter,
  )
  parser.add_argument("--workdir", required=True, help="training work dir (operative_config.gin, checkpoints/)")
  parser.add_argument("--data_dir", required=True, help="converted TFRecords with ground truth")
  parser.add_argument("--split", default="val", help="split to probe (default: val, the validation batch's)")
  parser.add_argument("--num_images", type=int, default=64, help="records with ground truth to de-render")
  parser.add_argument("--step", type=int, default=None, help="checkpoint step (default: the latest)")
  parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
  args = parser.parse_args(argv)
  logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
  if args.num_images < 2:
    parser.error("--num_images must be at least 2")
  try:
    rows = probe(args.workdir, args.data_dir, args.split, args.num_images, args.step)
  except (FileNotFoundError, ValueError) as e:
    _LOG.error("%s", e)
    return 1
  print(scene_stats.format_rows(rows))
  if args.json:
    with open(args.json, "w", encoding="utf-8") as f:
      json.dump(rows, f, indent=1)
  return 0


if __name__ == "__main__":
  sys.exit(main())
