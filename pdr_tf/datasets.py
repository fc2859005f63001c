"""The embedded synthetic datasets: generate a world and convert it with its Beam job, once, on first use.

Layout under a dataset root such as `data/cars/`: `raw/` (the world in the real dataset's on-disk format) and
`tfrecords/` (the Beam job's output, what training reads). Real data goes through the same Beam jobs by hand.
"""

import importlib
import logging
import os
from typing import Optional

import gin

from pdr_tf import input_pipeline

logger = logging.getLogger(__name__)

# world -> Beam job module under beam_pipelines
BEAM_JOBS = {"cars": "shapenet_cars", "faces": "utkface", "bbt": "bbt"}


def raw_dir_for(data_dir: str) -> str:
  """The raw-world folder beside a TFRecords folder: <root>/tfrecords -> <root>/raw."""
  return os.path.join(os.path.dirname(os.path.normpath(data_dir)), "raw")


def has_tfrecords(data_dir: str) -> bool:
  return os.path.isfile(os.path.join(data_dir, "manifest.json"))


@gin.configurable
def ensure_synthetic(world: str, data_dir: str, seed: int = 0, sizes: Optional[dict] = None,
                     num_workers: int = 2) -> str:
  """Makes sure `data_dir` holds TFRecords of the embedded synthetic `world`, creating them if needed.

  Args:
    world: "cars", "faces" or "bbt".
    data_dir: the TFRecords folder (its sibling `raw/` receives the generated world).
    seed: generator seed.
    sizes: size flags passed to `pdr_tf.synthetic.generate` (its defaults when None).
    num_workers: Beam worker processes.

  Returns:
    data_dir.
  """
  if world not in BEAM_JOBS:
    raise ValueError(f"Unknown synthetic world {world!r}; choose one of {', '.join(BEAM_JOBS)}")
  if has_tfrecords(data_dir):
    return data_dir
  from pdr_tf import synthetic  # pylint: disable=import-outside-toplevel
  raw = raw_dir_for(data_dir)
  if synthetic.is_complete(raw):
    logger.info("Synthetic %s world already generated in %s", world, raw)
  else:
    logger.info("Stage 1/2: generating the synthetic %s world into %s (once)", world, raw)
    synthetic.generate(world, raw, seed=seed, **(sizes or {}))
  logger.info("Stage 2/2: converting %s to TFRecords in %s with beam_pipelines.%s", raw, data_dir, BEAM_JOBS[world])
  job = importlib.import_module(f"beam_pipelines.{BEAM_JOBS[world]}")
  code = job.main(["--input_dir", synthetic.dataset_root(world, raw), "--output_dir", data_dir,
                   "--num_workers", str(num_workers), "--overwrite"])
  if code != 0 or not has_tfrecords(data_dir):
    raise RuntimeError(f"Converting {raw} with beam_pipelines.{BEAM_JOBS[world]} failed (exit {code}); see the log "
                       f"above and {os.path.join(data_dir, 'rejects.jsonl')}")
  input_pipeline.list_shards(data_dir, "train" if world != "bbt" else "test")
  return data_dir
