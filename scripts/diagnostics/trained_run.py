"""The command line the diagnostics of a trained run share: WORKDIR DATA_DIR [NUM_IMAGES], and STEP=N in the
environment for a checkpoint other than the latest."""

import os
import sys

from pdr_tf.data import input_pipeline
from pdr_tf.training import workdir as workdir_lib


def restore_with_val_batch(usage: str, default_images: int = 64):
  """Parses sys.argv as WORKDIR DATA_DIR [NUM_IMAGES]; returns (workdir, data_dir, model, batch).

  The model is WORKDIR's checkpoint of step STEP (environment; the latest by default); the batch holds NUM_IMAGES
  'val' records with ground truth. Exits with `usage` when the arguments are missing or NUM_IMAGES or STEP is not a
  number, and with a message naming DATA_DIR when it has no such records.
  """
  step = os.environ.get("STEP", "")
  if len(sys.argv) < 3 or (len(sys.argv) > 3 and not sys.argv[3].isdigit()) or (step and not step.isdigit()):
    sys.exit(usage)
  workdir, data_dir = sys.argv[1], sys.argv[2]
  num_images = int(sys.argv[3]) if len(sys.argv) > 3 else default_images
  model = workdir_lib.restore_model(workdir, int(step) if step else None)
  batch = input_pipeline.ground_truth_batch(data_dir, "val", num_images)
  if batch is None:
    sys.exit(f"{data_dir} has no 'val' records with ground truth")
  return workdir, data_dir, model, batch
