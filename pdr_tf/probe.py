"""Probe a training run: predicted light, view and depth relief against ground truth, parameter by parameter.

    python -m pdr_tf.probe --workdir runs/faces_light --data_dir data/faces/tfrecords

restores a work dir's checkpoint (the latest, or --step), de-renders the first --num_images records with ground
truth of --split (the trainer's validation batch by default), and prints for each of ka, kd, lx, ly, rx .. tz and
the depth's relief (on the object's pixels) the predicted and true mean ± std and their correlation
(pdr_tf.evaluation.scene_stats). A collapse shows as a small predicted spread, a shrunk prediction as a
correlation with a small spread.

It then scores the predicted canonical depth twice (normals MAD and SIDE, as the validation does): rendered under
the predicted view against the flat map in the input view, and rendered under the ground-truth view against a flat
canonical depth under that same view. The second tells a wrong shape from a right shape seen from a wrong view, and
scores runs trained with ground truth substituted for the view (scripts/diagnostics/train_with_true_scene.py
--oracle=view), whose view encoder is untrained. A third column scores a flat canonical depth under the predicted
view against the flat map in the input view: what the predicted view earns with no shape.

--gin_param bindings (repeatable) apply to reading the data, after the work dir's operative config; e.g.
--gin_param='make_dataset.skip_corrupt=True' reads past a corrupt record. --json FILE also writes the numbers, as a
report marked "written_by": "pdr_tf.probe"; it never replaces a file that is not such a report.
"""

import argparse
import logging
import sys

import numpy as np

from pdr_tf import cli
from pdr_tf.evaluation import output_files, scene_stats

_LOG = logging.getLogger(__name__)

TOOL = "pdr_tf.probe"  # the --json report's output_files.REPORT_KEY


DEPTH_VIEWS = ("predicted view", "true view", "flat, predicted view")


def _score_depth(recon_depth, mask, scene, view, batch):
  """DerenderScorer's normals MAD and SIDE reports for an input-view `recon_depth` on the pixels of `mask` (trivial:
  the flat map in the input view)."""
  from pdr_tf.evaluation import derender_eval  # pylint: disable=import-outside-toplevel

  scorer = derender_eval.DerenderScorer(int(np.shape(recon_depth)[-1]))
  arrays = [recon_depth, mask, scene["light"], view, batch["gt_depth"], batch["gt_light"], batch["gt_view"]]
  scorer.add(*[np.asarray(a) for a in arrays])
  report = scorer.result()
  return {key: report[key] for key in ("normals_mad_deg", "side")}


def render_depth(model, scene, depth, view):
  """(recon_depth, mask) as arrays: canonical `depth` with `scene`'s albedo and light rendered under `view`."""
  rendered = model.render(depth, scene["albedo"], scene["light"], view)
  return np.asarray(rendered["recon_depth"]), np.asarray(rendered["mask"])


def depth_errors(model, scene, batch, predicted):
  """Normals MAD and SIDE of the canonical depth in `scene` (`model.predict_scene`'s for `batch`) under each of
  DEPTH_VIEWS; `predicted` is `render_depth` of it under its own view.

  Under the predicted view the trivial predictor is the validation's, the flat map in the input view. Under the true
  view it is a flat canonical depth (at the mean of the predicted depth inside its pinned border) rendered under the
  same true view, both scored on the pixels both renders cover: that plane already has the true tilt, so only what
  the depth adds to it counts. The true view is in the world's canonical frame: a model whose learnt frame differs
  from it by a fixed rotation scores worse there than its shape deserves.

  "flat, predicted view" scores that flat canonical depth under the predicted view against the validation's trivial
  predictor: what the predicted view earns alone, so that the "predicted view" row against it is what the shape adds.

  Returns:
    {view: {"normals_mad_deg": {model, trivial, ratio}, "side": {...}}}.
  """
  import tensorflow as tf  # pylint: disable=import-outside-toplevel

  from pdr_tf.evaluation import derender_metrics  # pylint: disable=import-outside-toplevel

  depth = tf.convert_to_tensor(scene["depth"], tf.float32)
  inner = tf.convert_to_tensor(scene.get("depth_before_border", depth), tf.float32)
  flat = tf.ones_like(depth) * tf.reduce_mean(inner, axis=[1, 2], keepdims=True)
  out = {"predicted view": _score_depth(*predicted, scene, scene["view"], batch)}
  out["flat, predicted view"] = _score_depth(
    *render_depth(model, scene, flat, scene["view"]), scene, scene["view"], batch
  )
  true_view = tf.cast(batch["gt_view"], tf.float32)
  model_depth, model_mask = render_depth(model, scene, depth, true_view)
  flat_depth, flat_mask = render_depth(model, scene, flat, true_view)
  both = model_mask * flat_mask
  errors = _score_depth(model_depth, both, scene, true_view, batch)
  baseline = _score_depth(flat_depth, both, scene, true_view, batch)
  out["true view"] = {
    key: {
      "model": errors[key]["model"],
      "trivial": baseline[key]["model"],
      "ratio": derender_metrics.ratio(errors[key]["model"], baseline[key]["model"]),
    }
    for key in errors
  }
  return {name: {key: {k: e[key][k] for k in ("model", "trivial", "ratio")} for key in e} for name, e in out.items()}


def format_depth_errors(errors) -> str:
  """A text table of `depth_errors`: model / trivial (ratio) per view."""
  lines = [f"{'depth':>13} " + " ".join(f"{name:>26}" for name in errors)]
  for key, label, fmt in (("normals_mad_deg", "normals (deg)", ".1f"), ("side", "SIDE", ".4f")):
    cells = [
      f"{format(e[key]['model'], fmt)}/{format(e[key]['trivial'], fmt)} ({e[key]['ratio']:.2f}x)"
      for e in errors.values()
    ]
    lines.append(f"{label:>13} " + " ".join(f"{c:>26}" for c in cells))
  return "\n".join(lines)


def probe(workdir, data_dir, split="val", num_images=64, step=None, gin_params=()):
  """`scene_stats.parameter_rows` for light, view and depth relief, and `depth_errors` (see the module docstring).

  `gin_params` (bindings such as "make_dataset.skip_corrupt=True") are applied after the work dir's operative
  config, so they override it for the data read here; the model is built before them.

  Returns:
    {"parameters": rows, "depth_errors": depth_errors(...)}.
  """
  import tensorflow as tf  # pylint: disable=import-outside-toplevel  (keeps --help fast)

  from pdr_tf.data import input_pipeline  # pylint: disable=import-outside-toplevel
  from pdr_tf.training import workdir as workdir_lib  # pylint: disable=import-outside-toplevel

  model = workdir_lib.restore_model(workdir, step)
  _apply_bindings(gin_params)
  _LOG.info("Reading up to %d records with ground truth from split %r of %s", num_images, split, data_dir)
  batch = input_pipeline.ground_truth_batch(data_dir, split, num_images)
  if batch is None or int(tf.shape(batch["image"])[0]) < 2:
    raise ValueError(f"split {split!r} of {data_dir} has fewer than 2 records with ground truth")
  _LOG.info(
    "De-rendering %d images and scoring their depth (%s)", int(tf.shape(batch["image"])[0]), ", ".join(DEPTH_VIEWS)
  )
  scene = model.predict_scene(batch["image"])
  predicted = render_depth(model, scene, scene["depth"], scene["view"])  # de_render's recon_depth and mask
  recon_depth, mask = predicted
  gt_depth = batch["gt_depth"].numpy()  # 0 on the background
  rows = (
    scene_stats.parameter_rows(np.asarray(scene["light"]), batch["gt_light"].numpy(), scene_stats.LIGHT_NAMES)
    + scene_stats.parameter_rows(np.asarray(scene["view"]), batch["gt_view"].numpy(), scene_stats.VIEW_NAMES)
    + scene_stats.masked_std_rows(recon_depth, gt_depth, (gt_depth > 0) & (mask > 0.5))
  )
  return {"parameters": rows, "depth_errors": depth_errors(model, scene, batch, predicted)}


def _apply_bindings(gin_params):
  import gin  # pylint: disable=import-outside-toplevel

  with gin.unlock_config():
    for binding in gin_params:
      gin.parse_config(binding)


def make_parser() -> argparse.ArgumentParser:
  """This entry point's command line: `main` parses it; tests/test_doc_commands.py checks the docs against it."""
  parser = cli.parser("pdr_tf.probe", __doc__)
  parser.add_argument("--workdir", required=True, help="training work dir (operative_config.gin, checkpoints/)")
  parser.add_argument("--data_dir", required=True, help="converted TFRecords with ground truth")
  parser.add_argument("--split", default="val", help="split to probe (default: val, the validation batch's)")
  parser.add_argument("--num_images", type=int, default=64, help="records with ground truth to de-render")
  parser.add_argument("--step", type=int, default=None, help="checkpoint step (default: the latest)")
  parser.add_argument(
    "--json",
    default=None,
    help="also write the rows and depth errors to this JSON file (new, or a report this command wrote before)",
  )
  parser.add_argument(
    "--gin_param",
    action="append",
    default=[],
    help="gin binding for reading the data, applied after the run's operative config (repeatable), e.g. "
    "make_dataset.skip_corrupt=True",
  )
  cli.add_log_level(parser)
  return parser


def main(argv=None):
  parser = make_parser()
  args = parser.parse_args(argv)
  cli.setup_logging(args.log_level)
  if args.num_images < 2:
    parser.error("--num_images must be at least 2")
  # --json and --gin_param are checked before the minutes of probing.
  output_files.check_json_argument(parser, args.json, TOOL)  # missing folders are made, as by every entry point
  from pdr_tf import gin_config  # pylint: disable=import-outside-toplevel
  import tensorflow as tf  # pylint: disable=import-outside-toplevel  (keeps --help fast)

  from pdr_tf.data import input_pipeline  # pylint: disable=import-outside-toplevel  (registers make_dataset)
  from pdr_tf.render.kernel_build import KernelBuildError  # pylint: disable=import-outside-toplevel

  try:
    gin_config.parse([], args.gin_param)
  except gin_config.GinConfigError as e:  # gin's message goes on to quote the binding: its first line says it all
    parser.error(f"{str(e).splitlines()[0]} (probe's bindings apply to reading the data)")
  try:
    result = probe(args.workdir, args.data_dir, args.split, args.num_images, args.step, args.gin_param)
  except (OSError, ValueError, input_pipeline.CorruptDataError, KernelBuildError, tf.errors.OpError) as e:
    _LOG.error("%s", cli.error_text(e))  # OpError: e.g. a shard that cannot be read
    return 1
  print(scene_stats.format_rows(result["parameters"]))
  print(format_depth_errors(result["depth_errors"]))
  if args.json and not output_files.write_json_argument(args.json, result, TOOL, indent=1):
    return 1  # e.g. a file put at the path while probing; the numbers are printed above
  return 0


if __name__ == "__main__":
  sys.exit(main())
