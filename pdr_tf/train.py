"""Trains a de-renderer with LOOCC: python -m pdr_tf.train --gin_file=gin/cars_light_view.gin [--gin_file=...]

Gin files are applied in order, then --gin_param bindings. The work directory (Trainer.workdir in the gin files,
or --workdir) receives the operative gin config, checkpoints, TensorBoard logs and, at the end, a SavedModel under
export/<version>. A restarted run resumes from the latest checkpoint. With the embedded synthetic default
(Trainer.synthetic_world), missing data is generated and converted with the Beam job first.

Examples:
  python -m pdr_tf.train --gin_file=gin/cars_light_view.gin --gin_file=gin/quick.gin
  python -m pdr_tf.train --gin_file=gin/faces_light.gin --gin_param="Trainer.train_steps=20000"
  python -m pdr_tf.train --gin_file=gin/cars_light.gin --gin_param="Trainer.strategy='multi_worker'"
"""

import argparse
import logging
import sys

from pdr_tf import cli
from pdr_tf import config_checks
from pdr_tf import gin_config
from pdr_tf.data import input_pipeline
from pdr_tf.data import locks
from pdr_tf.training import strategies
from pdr_tf.training import trainer as trainer_lib
from pdr_tf.render.kernel_build import KernelBuildError

# Every module whose configurables the training gin files bind: importing registers them with gin.
from pdr_tf.data import datasets
from pdr_tf.model import losses  # noqa: F401
from pdr_tf.model import loocc  # noqa: F401
from pdr_tf.model import de_renderer  # noqa: F401
from pdr_tf.model import networks  # noqa: F401
from pdr_tf.model import objective  # noqa: F401
from pdr_tf.model import perceptual  # noqa: F401
from pdr_tf.render import renderer  # noqa: F401
from pdr_tf.render import scene  # noqa: F401

logger = logging.getLogger("pdr_tf.train")


def make_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
    prog="python -m pdr_tf.train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
  )
  parser.add_argument(
    "--gin_file",
    action="append",
    default=[],
    required=True,
    help="gin file (repeatable; later files override earlier ones), e.g. gin/cars_light_view.gin",
  )
  parser.add_argument(
    "--gin_param",
    action="append",
    default=[],
    help='gin binding applied after the files (repeatable), e.g. "Trainer.train_steps=500"',
  )
  parser.add_argument("--workdir", default=None, help="overrides Trainer.workdir")
  cli.add_log_level(parser)
  return parser


def prepare_data(trainer: trainer_lib.Trainer) -> None:
  """Provisions the trainer's data: with `Trainer.synthetic_world` set, generates and converts that embedded world
  into `Trainer.data_dir` on first use (`datasets.ensure_synthetic`; never into a folder holding other data)."""
  if trainer.synthetic_world:
    datasets.ensure_synthetic(trainer.synthetic_world, trainer.data_dir)


def main(argv=None) -> int:
  args = make_parser().parse_args(argv)
  cli.setup_logging(args.log_level)
  params = list(args.gin_param)
  if args.workdir is not None:  # an empty one (an unset shell variable) is refused by Trainer, not ignored
    params.append(f"Trainer.workdir = {args.workdir!r}")
  try:
    gin_config.parse(args.gin_file, params)
    trainer = trainer_lib.Trainer()
    trainer_lib.check_configuration()
  except (gin_config.GinConfigError, config_checks.ConfigError) as e:
    logger.error("%s", cli.error_text(e))
    return 2
  except ValueError as e:  # a configurable's own check, e.g. LooccConfig.mode
    logger.error("Invalid configuration: %s", e)
    return 2
  except TypeError as e:
    if "required" not in str(e):
      raise
    logger.error("Configuration incomplete: %s", e)  # e.g. Trainer.workdir left unset
    return 2
  try:
    prepare_data(trainer)
  except (ValueError, OSError, RuntimeError) as e:  # refused folder, wrong kind, unwritable, failed conversion
    logger.error("Data for %s: %s", trainer.data_dir, cli.error_text(e))
    logger.debug("where it was raised (--log_level=debug):", exc_info=True)
    return 1
  try:
    outputs = trainer.run()
  except (
    trainer_lib.NonFiniteLossError,
    KernelBuildError,
    OSError,  # a missing data folder, an unwritable or file-blocked work dir
    locks.LockHeldError,
    strategies.WorkersDisagreeError,  # multi-worker: a worker that does not see the chief's work dir
    ValueError,  # WorkdirError, a manifest of another schema, a split without records, an objective's own check
    input_pipeline.CorruptDataError,
  ) as e:
    logger.error("%s", cli.error_text(e))
    logger.debug("where it was raised (--log_level=debug):", exc_info=True)
    return 1
  logger.info("Done. Outputs:")
  for key, path in outputs.items():
    logger.info("  %-16s %s", key, path)
  return 0


if __name__ == "__main__":
  sys.exit(main())
