"""The layout of a training work dir, in one place, and the model restored from one.

<workdir>/
  operative_config.gin   the gin configuration the run used (rebuilds the model)
  checkpoints/           tf.train checkpoints (ckpt-<step>)
  logs/train/            TensorBoard summaries
  validation.jsonl       one JSON line per de-rendering validation
  export/<version>/      SavedModels (`pdr_tf.export`)
  .pdr_tf_train.lock     held by the training process (the chief under multi-worker)
"""

import logging
import os
from typing import Optional

logger = logging.getLogger(__name__)

OPERATIVE_CONFIG = "operative_config.gin"
CHECKPOINTS = "checkpoints"
LOGS = "logs"
TRAIN_LOGS = os.path.join(LOGS, "train")
VALIDATION_LOG = "validation.jsonl"
EXPORT = "export"
TRAIN_LOCK = ".pdr_tf_train.lock"


def operative_config(workdir: str) -> str:
  return os.path.join(workdir, OPERATIVE_CONFIG)


def checkpoints(workdir: str) -> str:
  return os.path.join(workdir, CHECKPOINTS)


def logs(workdir: str) -> str:
  return os.path.join(workdir, LOGS)


def train_logs(workdir: str) -> str:
  return os.path.join(workdir, TRAIN_LOGS)


def validation_log(workdir: str) -> str:
  return os.path.join(workdir, VALIDATION_LOG)


def export(workdir: str) -> str:
  return os.path.join(workdir, EXPORT)


def train_lock(workdir: str) -> str:
  return os.path.join(workdir, TRAIN_LOCK)


def latest_checkpoint(workdir: str) -> Optional[str]:
  """The newest checkpoint prefix in `<workdir>/checkpoints`, or None."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel  (keeps the layout importable without TF)

  return tf.train.latest_checkpoint(checkpoints(workdir))


def restore_model(workdir: str, step: Optional[int] = None):
  """Rebuilds the model from a work dir's operative gin config and restores a checkpoint.

  Args:
    workdir: a directory written by `python -m pdr_tf.train`.
    step: checkpoint step to restore; the latest by default.

  Returns:
    The restored `model.DeRenderer` with all variables built.

  Raises:
    FileNotFoundError: no operative config or no such checkpoint, with what to run.
  """
  import gin  # pylint: disable=import-outside-toplevel
  import tensorflow as tf  # pylint: disable=import-outside-toplevel

  from pdr_tf.model import de_renderer as model_lib  # pylint: disable=import-outside-toplevel  (heavy: Keras networks)

  config_path = operative_config(workdir)
  if not os.path.isfile(config_path):
    raise FileNotFoundError(
      f"{config_path} not found: is {workdir!r} a pdr_tf training work dir? "
      "Train one with `python -m pdr_tf.train --gin_file=gin/cars_light_view.gin`."
    )
  checkpoint = latest_checkpoint(workdir) if step is None else os.path.join(checkpoints(workdir), f"ckpt-{step}")
  if checkpoint is None or not tf.io.gfile.glob(checkpoint + ".index"):
    raise FileNotFoundError(f"no checkpoint {'at step ' + str(step) if step else ''} in {checkpoints(workdir)}")
  with gin.unlock_config():
    gin.parse_config_file(config_path, skip_unknown=True)
  model = model_lib.DeRenderer()
  model.build_for_inference()
  tf.train.Checkpoint(model=model).restore(checkpoint).expect_partial()
  logger.info("Restored %s", checkpoint)
  return model
