"""The layout of a training work dir, in one place, and the model restored from one.

<workdir>/
  operative_config.gin   the gin configuration the run used (rebuilds the model)
  operative_config.gin.step-<N>  the one before it, when a run resumed at step N with other settings
  checkpoints/           tf.train checkpoints (ckpt-<step>)
    .pdr_tf_checkpoints  marker: pdr_tf created this folder, so it may resume from and prune its checkpoints
  logs/train/            TensorBoard summaries
  validation.jsonl       one JSON line per de-rendering validation
  export/<version>/      SavedModels (`pdr_tf.export`)
  .pdr_tf_train.lock     held by the training process (the chief under multi-worker)
  .pdr_tf_workers-<token>  for a moment at start-up under multi-worker: shows each worker the chief's work dir

pdr_tf trains only in a work dir it can tell is its own (`claim_for_training`): a `checkpoints/` folder holding
checkpoints without the marker (nor an operative_config.gin of an earlier pdr_tf, which wrote no marker) belongs to
someone else, and a `tf.train.CheckpointManager` on it would adopt those checkpoints and delete all but the newest.
"""

import contextlib
import gc
import json
import logging
import os
import re
import time
from typing import List, Optional


logger = logging.getLogger(__name__)

OPERATIVE_CONFIG = "operative_config.gin"
CHECKPOINTS = "checkpoints"
LOGS = "logs"
TRAIN_LOGS = os.path.join(LOGS, "train")
VALIDATION_LOG = "validation.jsonl"
EXPORT = "export"
EVAL = "eval"  # a run's clustering and de-rendering reports (reproduce, ablation)
TRAIN_LOCK = ".pdr_tf_train.lock"
CHECKPOINTS_MARKER = os.path.join(CHECKPOINTS, ".pdr_tf_checkpoints")
WORKERS_TOKEN_PREFIX = ".pdr_tf_workers-"

# A binding of the de-renderer in a gin operative config: every pdr_tf training run since the first has written one
# (gin.operative_config_str() after building the model), and no other project has a `DeRenderer` configurable.
_PDR_TF_BINDING = re.compile(r"^DeRenderer\.\w+ = ", re.MULTILINE)


class WorkdirError(ValueError):
  """The work dir cannot be trained in as it is; the message names the path and the reason, and nothing in the work
  dir was deleted or changed."""


class ForeignWorkdirError(WorkdirError):
  """The work dir holds checkpoints (or an operative_config.gin) that pdr_tf did not write."""


class CheckpointReadError(WorkdirError):
  """The checkpoint's files cannot be read (cut off or damaged)."""


@contextlib.contextmanager
def _quiet_restore():
  """Around a checkpoint restore whose failure becomes a pdr_tf error (`restore_error`): a half-done restore logs a
  warning for each of its unrestored values (hundreds) when it is collected, later, burying that error. TensorFlow's
  warnings are off inside, and what the restore left is collected before leaving (keep the error, raise it after)."""
  tf_logger = logging.getLogger("tensorflow")
  level = tf_logger.level
  tf_logger.setLevel(logging.ERROR)
  try:
    yield
  finally:
    gc.collect()
    tf_logger.setLevel(level)


def restore(objects: dict, checkpoint: str, config_path: str, doing: str, strict: bool, mismatch_advice: str = ""):
  """Restores `objects` (the children of a `tf.train.Checkpoint`, e.g. {"model": model}) from `checkpoint`.

  Args:
    objects, checkpoint: what to restore, from where.
    config_path: the operative config that describes the model (named when it does not fit).
    doing: what the restore is for, in the error ("resume from", "restore").
    strict: every value on both sides must match (`assert_consumed`: resuming training); else only what `objects`
      need is read (`expect_partial`: a model for inference).
    mismatch_advice: appended to the `CheckpointMismatchError`.

  Raises:
    CheckpointReadError, CheckpointMismatchError: `restore_error`, raised with nothing of the failed restore left to
      log over it (`_quiet_restore`).
  """
  import tensorflow as tf  # pylint: disable=import-outside-toplevel  (keeps the layout importable without TF)

  error = None
  with _quiet_restore():
    try:
      status = tf.train.Checkpoint(**objects).restore(checkpoint)
      if strict:
        status.assert_consumed()
      else:
        status.expect_partial()
    except (IndexError, ValueError, AssertionError, tf.errors.OpError) as e:
      error = restore_error(checkpoint, e, config_path, doing, mismatch_advice)
  if error is not None:
    raise error


def restore_error(
  checkpoint: str, error: BaseException, config_path: str, doing: str, mismatch_advice: str = ""
) -> WorkdirError:
  """The error to raise when restoring `checkpoint` (for `doing`, e.g. "resume from") failed with `error`:
  `CheckpointReadError` when its files cannot be read, else `CheckpointMismatchError` naming the first variable that
  does not fit the model `config_path` describes (and `mismatch_advice` after it)."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel  (keeps the layout importable without TF)

  # Cut off: IndexError ("Read less bytes than requested"); a bad checksum: DataLossError; an index file that is
  # not one at all (too short, bad magic number): an OpError about the "sstable" it should be.
  if isinstance(error, (IndexError, tf.errors.DataLossError)) or (
    isinstance(error, tf.errors.OpError) and "sstable" in str(error)
  ):
    return CheckpointReadError(
      f"cannot read checkpoint {checkpoint}: its files are cut off or damaged, or are not a TensorFlow checkpoint "
      f"({type(error).__name__}: {error}). Nothing was deleted; restore its files from a copy."
    )
  detail = getattr(error, "message", None) or str(error)
  detail = re.sub(r", value=[^>]*>", ">", detail)  # variables' shapes, not their values
  detail = re.sub(r"\{\{function_node [^}]*\}\}|\[Op:\w+\]", "", detail)  # TF's op names
  reason = " ".join(detail.split()).rstrip(".")
  if len(reason) > 400:
    reason = reason[:400] + " ..."
  if doing == "resume from":  # the file still describes the checkpoint; it is this run's settings that differ
    what = f"this run's model or optimizer settings differ from those it was trained with (recorded in {config_path})"
  else:
    what = f"it was trained with other model or optimizer settings than {config_path} describes"
  return CheckpointMismatchError(
    f"cannot {doing} {checkpoint}: {what} (or it is not a checkpoint of this model): {reason}. Nothing was deleted "
    "or changed." + (f" {mismatch_advice}" if mismatch_advice else "")
  )


class CheckpointMismatchError(WorkdirError):
  """The checkpoint to resume from does not fit the model and optimizer of this run (other model settings)."""


def operative_config(workdir: str) -> str:
  return os.path.join(workdir, OPERATIVE_CONFIG)


def earlier_operative_config(workdir: str, step: int) -> str:
  """Where a run that resumed at `step` with other settings keeps the configuration the steps before it used."""
  return f"{operative_config(workdir)}.step-{int(step)}"


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


def eval_dir(workdir: str) -> str:
  return os.path.join(workdir, EVAL)


def train_lock(workdir: str) -> str:
  return os.path.join(workdir, TRAIN_LOCK)


def workers_token(workdir: str, token: int) -> str:
  """The file by which the chief shows every worker of a multi-worker run its work dir (`strategies.check_workers`)."""
  return os.path.join(workdir, f"{WORKERS_TOKEN_PREFIX}{int(token)}")


def checkpoints_marker(workdir: str) -> str:
  return os.path.join(workdir, CHECKPOINTS_MARKER)


def checkpoint_files(directory: str) -> List[str]:
  """The names of the tf.train checkpoint files in `directory` (the `checkpoint` state file, `*.index`,
  `*.data-*`), sorted; [] when it does not exist."""
  if not os.path.isdir(directory):
    return []
  return sorted(
    name
    for name in os.listdir(directory)
    if name == "checkpoint" or name.endswith(".index") or ".data-" in name
    if os.path.isfile(os.path.join(directory, name))
  )


def written_by_pdr_tf(config_path: str) -> bool:
  """Whether `config_path` is an operative config that pdr_tf training wrote (it binds `DeRenderer`)."""
  try:
    with open(config_path, encoding="utf-8") as f:
      return bool(_PDR_TF_BINDING.search(f.read()))
  except (OSError, UnicodeDecodeError):
    return False


def claim_for_training(workdir: str) -> None:
  """Makes sure the work dir's checkpoints and operative config are pdr_tf's before training writes or prunes them.

  Evidence that pdr_tf wrote the checkpoints: the marker file (`mark_checkpoints`), or, for work dirs of earlier
  pdr_tf versions (no marker), an operative_config.gin that binds `DeRenderer`. Resuming then still checks that the
  checkpoint fits the model (`Trainer.begin`), and only after that is the folder marked.

  Raises:
    ForeignWorkdirError: checkpoints without that evidence, an operative_config.gin pdr_tf did not write (training
      would overwrite it), or a `checkpoints` that is not a folder; nothing is deleted or changed.
  """
  directory = checkpoints(workdir)
  marker = checkpoints_marker(workdir)
  config_path = operative_config(workdir)
  if os.path.exists(directory) and not os.path.isdir(directory):
    raise ForeignWorkdirError(f"{directory} is not a folder: pdr_tf keeps its checkpoints there; use another --workdir")
  if os.path.isfile(marker):
    return
  pdr_tf_config = written_by_pdr_tf(config_path)
  if os.path.exists(config_path) and not pdr_tf_config:
    raise ForeignWorkdirError(
      f"{config_path} was not written by pdr_tf (it binds no DeRenderer): training would overwrite it. "
      "Nothing was changed; train in another --workdir, or move the file away."
    )
  found = checkpoint_files(directory)
  if found and not pdr_tf_config:
    shown = ", ".join(found[:5]) + (f", ... ({len(found)} files)" if len(found) > 5 else "")
    raise ForeignWorkdirError(
      f"{directory} holds checkpoints that pdr_tf did not write ({shown}; no {os.path.basename(marker)} marker "
      f"and no pdr_tf {OPERATIVE_CONFIG} in {workdir}). pdr_tf will not adopt, resume from or prune checkpoints "
      "it did not write; nothing was deleted. Train in another --workdir."
    )
  if found:
    logger.info("%s: checkpoints of an earlier pdr_tf run (%s, no marker)", directory, config_path)


def mark_checkpoints(workdir: str) -> None:
  """Creates `<workdir>/checkpoints` if needed and marks it as pdr_tf's (once the run may save and prune there)."""
  marker = checkpoints_marker(workdir)
  if os.path.isfile(marker):
    return
  os.makedirs(checkpoints(workdir), exist_ok=True)
  with open(marker, "w", encoding="utf-8") as f:
    json.dump(
      {
        "written_by": "pdr_tf training (python -m pdr_tf.train)",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "meaning": "pdr_tf resumes from and prunes (Trainer.keep_checkpoints) only checkpoints in a folder with this",
      },
      f,
      indent=1,
    )
    f.write("\n")


def checkpoint_step(checkpoint: str) -> Optional[int]:
  """The step of a checkpoint prefix such as <workdir>/checkpoints/ckpt-1200 (1200), or None for another name."""
  match = re.search(r"-(\d+)$", checkpoint)
  return int(match.group(1)) if match else None


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
    WorkdirError: the operative config cannot be parsed (a damaged or foreign file), naming it.
  """
  import gin  # pylint: disable=import-outside-toplevel
  import tensorflow as tf  # pylint: disable=import-outside-toplevel

  from pdr_tf.model import de_renderer as model_lib  # pylint: disable=import-outside-toplevel  (heavy: Keras networks)
  from pdr_tf import gin_config  # pylint: disable=import-outside-toplevel

  config_path = operative_config(workdir)
  if not os.path.isfile(config_path):
    raise FileNotFoundError(
      f"{config_path} not found: is {workdir!r} a pdr_tf training work dir? "
      "Train one with `python -m pdr_tf.train --gin_file=gin/cars_light_view.gin`."
    )
  checkpoint = latest_checkpoint(workdir) if step is None else os.path.join(checkpoints(workdir), f"ckpt-{step}")
  if checkpoint is None or not tf.io.gfile.exists(checkpoint + ".index"):
    where = "" if step is None else f"at step {step} "
    raise FileNotFoundError(f"no checkpoint {where}in {checkpoints(workdir)}")
  try:
    with gin.unlock_config():
      gin.parse_config_file(config_path, skip_unknown=True)
  except gin_config.PARSE_ERRORS as e:
    raise WorkdirError(
      f"{config_path} cannot be read as this work dir's gin config ({type(e).__name__}: {e}); "
      "`python -m pdr_tf.train` wrote it, and it has been damaged or replaced, or names a setting this version of "
      "pdr_tf no longer has: restore it, or train again"
    ) from e
  model = model_lib.DeRenderer()
  model.build_for_inference()
  restore({"model": model}, checkpoint, config_path, "restore", strict=False)
  logger.info("Restored %s", checkpoint)
  return model
