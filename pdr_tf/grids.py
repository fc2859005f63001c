"""Write a training run's TensorBoard image grids as PNG files, to look at them without a TensorBoard server.

    python -m pdr_tf.grids --workdir runs/cars_light_view

reads the grids the trainer writes every `Trainer.image_summary_every` steps (input, reconstruction, canonical depth,
normals, albedo and shading, renders under new lights and views, LOOCC's x_aug; docs/training.md says what each
should look like) from `<workdir>/logs/train`, and writes those of the latest step that has them (or --step) to
`<out>/step_<N>/<grid>.png`, one strip of images per grid, plus all strips stacked in the trainer's order as
`<out>/step_<N>/all.png`. --out defaults to `<workdir>/grids`. It prints the files it wrote. A step folder that
pdr_tf did not write is never written into.
"""

import argparse
import io
import logging
import os
import sys
from typing import Dict, List, Optional

from pdr_tf import cli

_LOG = logging.getLogger(__name__)

OUT_DIRNAME = "grids"
STACKED = "all.png"
# Written into every step folder this module creates: only folders holding it are written into again.
MARKER = ".pdr_tf_grids"


def step_dir(out_dir: str, step: int) -> str:
  return os.path.join(out_dir, f"step_{step}")


def pick_step(grids: Dict[int, Dict[str, bytes]], step: Optional[int], source: str) -> int:
  """`step` if `grids` has it, else the latest step; ValueError naming `source` and the steps it has otherwise."""
  if not grids:
    raise ValueError(
      f"{source} holds no image grids: the run wrote none yet (they come every Trainer.image_summary_every steps; "
      "0 turns them off)"
    )
  if step is None:
    return max(grids)
  if step not in grids:
    raise ValueError(f"{source} has no image grids at step {step}; it has them at steps {sorted(grids)}")
  return step


def stack_strips(strips: List[bytes], gap: int = 4) -> bytes:
  """PNG strips stacked top to bottom, left-aligned, `gap` black rows between them; returns PNG bytes."""
  from PIL import Image  # pylint: disable=import-outside-toplevel

  images = [Image.open(io.BytesIO(data)).convert("RGB") for data in strips]
  width = max(image.width for image in images)
  height = sum(image.height for image in images) + gap * (len(images) - 1)
  canvas = Image.new("RGB", (width, height))
  top = 0
  for image in images:
    canvas.paste(image, (0, top))
    top += image.height + gap
  out = io.BytesIO()
  canvas.save(out, format="PNG")
  return out.getvalue()


def write_step(grids: Dict[str, bytes], folder: str) -> List[str]:
  """Writes each grid as `<folder>/<name>.png` and all of them stacked as `<folder>/all.png`; returns the paths.

  Raises:
    FileExistsError: `folder` exists, is not empty and was not written by this module.
  """
  if os.path.isdir(folder) and os.listdir(folder) and not os.path.exists(os.path.join(folder, MARKER)):
    raise FileExistsError(f"{folder} exists and was not written by pdr_tf.grids: choose another --out")
  os.makedirs(folder, exist_ok=True)
  with open(os.path.join(folder, MARKER), "w", encoding="utf-8") as f:
    f.write("written by python -m pdr_tf.grids\n")
  # A summary tag's "/" would make a sub-folder: grid "a/b" is written as "a_b.png".
  files = [(f"{name.replace('/', '_')}.png", data) for name, data in grids.items()]
  files.append((STACKED, stack_strips(list(grids.values()))))
  paths = []
  for filename, data in files:
    paths.append(os.path.join(folder, filename))
    with open(paths[-1], "wb") as f:
      f.write(data)
  return paths


def export_grids(workdir: str, step: Optional[int] = None, out_dir: Optional[str] = None) -> List[str]:
  """Writes a run's image grids of one step (the latest by default) as PNG files; returns the paths written.

  Raises:
    FileNotFoundError: `workdir` has no TensorBoard logs.
    ValueError: no grids, or none at `step`.
    FileExistsError: the step folder under `out_dir` was not written by pdr_tf.grids.
  """
  from pdr_tf.training import summaries  # pylint: disable=import-outside-toplevel  (imports TensorFlow)
  from pdr_tf.training import workdir as workdir_lib  # pylint: disable=import-outside-toplevel

  log_dir = workdir_lib.train_logs(workdir)
  if not os.path.isdir(log_dir):
    raise FileNotFoundError(
      f"{log_dir} does not exist: {workdir} is not a training work dir with logs (python -m pdr_tf.train writes them)"
    )
  grids = summaries.read_image_grids(log_dir)
  chosen = pick_step(grids, step, log_dir)
  return write_step(grids[chosen], step_dir(out_dir or os.path.join(workdir, OUT_DIRNAME), chosen))


def make_parser() -> argparse.ArgumentParser:
  """This entry point's command line: `main` parses it; tests/test_doc_commands.py checks the docs against it."""
  parser = cli.parser("pdr_tf.grids", __doc__)
  parser.add_argument("--workdir", required=True, help="training work dir (logs/train holds the TensorBoard events)")
  parser.add_argument("--step", type=int, default=None, help="training step of the grids (default: the latest)")
  parser.add_argument("--out", default=None, help=f"destination folder (default: <workdir>/{OUT_DIRNAME})")
  cli.add_log_level(parser)
  return parser


def main(argv=None):
  parser = make_parser()
  args = parser.parse_args(argv)
  cli.setup_logging(args.log_level)
  if args.out and os.path.exists(args.out) and not os.path.isdir(args.out):
    parser.error(f"--out {args.out} is a file, not a folder")
  try:
    paths = export_grids(args.workdir, args.step, args.out)
  except (OSError, ValueError) as e:  # OSError: an output folder under a file, or not writable
    _LOG.error("%s", e)
    return 1
  for path in paths:
    print(path)
  return 0


if __name__ == "__main__":
  sys.exit(main())
