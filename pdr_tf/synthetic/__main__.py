"""Command line: python -m pdr_tf.synthetic --world {cars,faces,bbt} --output_dir DIR [--seed N] [size flags]."""

import argparse
import logging
import sys

from pdr_tf import cli
from pdr_tf import synthetic

logger = logging.getLogger("pdr_tf.synthetic")

_SIZE_HELP = {
  "cars": {
    "train_models_per_class": "distinct training models per class (default %(default)s; syncar-like 28k "
    "training images: 700 with --images_per_model 8)",
    "val_models_per_class": "distinct validation models per class (default %(default)s; real size: 175)",
    "test_models_per_class": "distinct test models per class (default %(default)s = 200 test images per class "
    "with 8 views, as in the paper; real size: 175)",
    "images_per_model": "random views rendered per model (default %(default)s)",
  },
  "faces": {
    "num_identities": "distinct people (default %(default)s; UTKFace-sized: 23708 with --images_per_identity 1)",
    "images_per_identity": "images per person, each with its own pose and light (default %(default)s)",
  },
  "bbt": {
    "track_scale": "tracks per identity = real S01E01 count (253/211/111/42/26) x this, at least 1 "
    "(default %(default)s; 1.0 = 643 tracks)",
    "min_frames": "fewest frames per track (default %(default)s)",
    "max_frames": "most frames per track (default %(default)s)",
  },
}


def make_parser() -> argparse.ArgumentParser:
  """The argument parser; size flags are grouped by the world they apply to."""
  parser = argparse.ArgumentParser(
    prog="python -m pdr_tf.synthetic",
    description="Renders a synthetic world (syncar-like cars, UTKFace-like faces or BBT-like face tracks) in its "
    "dataset's on-disk format, with ground truth beside every image. See docs/synthetic.md.",
  )
  parser.add_argument("--world", required=True, choices=synthetic.WORLDS, help="which world to render")
  parser.add_argument("--output_dir", required=True, help="destination folder (created; one world per folder)")
  parser.add_argument("--seed", type=int, default=0, help="world seed; same seed and sizes give identical files")
  parser.add_argument("--no_progress", action="store_true", help="hide the progress bar")
  for world, flags in _SIZE_HELP.items():
    group = parser.add_argument_group(f"{world} sizes")
    for name, text in flags.items():
      default = synthetic.default_sizes(world)[name]
      group.add_argument(f"--{name}", type=type(default), default=None, help=text.replace("%(default)s", str(default)))
  cli.add_log_level(parser)
  return parser


def main(argv=None) -> int:
  """Parses flags, renders the world and logs where it is."""
  parser = make_parser()
  args = parser.parse_args(argv)
  cli.setup_logging(args.log_level)
  sizes = {}
  for world, flags in _SIZE_HELP.items():
    for name in flags:
      value = getattr(args, name)
      if value is None:
        continue
      if world != args.world:
        parser.error(f"--{name} applies to the {world} world, not {args.world}")
      sizes[name] = value
  try:
    summary = synthetic.generate(args.world, args.output_dir, seed=args.seed, progress=not args.no_progress, **sizes)
  except synthetic.WorldFolderError as e:  # the folder is refused: a data error, as in train and evaluate
    logger.error("%s", e)
    return 1
  except ValueError as e:  # sizes the world cannot take
    logger.error("%s", e)
    return 2
  except OSError as e:  # an --output_dir under a file, or one that cannot be written
    logger.error("cannot write the %s world into %s: %s", args.world, args.output_dir, e)
    return 1
  logger.info(
    "Done: %d images of the synthetic %s world in %s (summary: %s)",
    summary["num_images"],
    args.world,
    args.output_dir,
    synthetic.SUMMARY_FILENAME,
  )
  return 0


if __name__ == "__main__":
  sys.exit(main())
