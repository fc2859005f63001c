"""The embedded synthetic datasets: generate a world and convert it with its Beam job, once, on first use.

Layout under a dataset root such as `data/cars/`: `raw/` (the world in the real dataset's on-disk format) and
`tfrecords/` (the Beam job's output, what training reads). Real data goes through the same Beam jobs by hand.
"""

import contextlib
import logging
import os
import time
from typing import Optional

import gin

from pdr_tf.data import feature_spec
from pdr_tf.data import formats
from pdr_tf.data import input_pipeline
from pdr_tf.data import locks

logger = logging.getLogger(__name__)

# world -> the Beam job (one of beam_pipelines.JOBS) that converts its raw data
BEAM_JOBS = {"cars": "shapenet_cars", "faces": "utkface", "bbt": "bbt"}
# In the dataset root (beside raw/ and tfrecords/): held while a process generates and converts the world, so that
# processes that need the same world at once (the workers of one training, two trainings) make it once.
PROVISION_LOCK_FILENAME = ".pdr_tf_provision.lock"
_WAIT_LOG_EVERY_S = 30.0


class ConversionError(RuntimeError):
  """The Beam conversion of a generated world failed or wrote no TFRecords; the message says where to look."""


def raw_dir_for(data_dir: str) -> str:
  """The raw-world folder beside a TFRecords folder: <root>/tfrecords -> <root>/raw."""
  return os.path.join(os.path.dirname(os.path.normpath(data_dir)), "raw")


def default_data_dir(world: str) -> str:
  """The embedded synthetic world's own location, data/<world>/tfrecords (relative to the working directory): the
  only folder that is generated when it does not exist."""
  return os.path.join("data", world, "tfrecords")


def has_tfrecords(data_dir: str) -> bool:
  return os.path.isfile(os.path.join(data_dir, feature_spec.MANIFEST_FILENAME))


def _same_path(a: str, b: str) -> bool:
  return os.path.normpath(os.path.abspath(a)) == os.path.normpath(os.path.abspath(b))


def _conversion_command(world: str, data_dir: str) -> str:
  return f"python -m beam_pipelines.{BEAM_JOBS[world]} --input_dir <raw data> --output_dir {data_dir}"


def check_dataset_kind(world: str, data_dir: str) -> None:
  """Raises ValueError when the dataset in data_dir was converted by another job than the world's."""
  dataset = input_pipeline.read_manifest(data_dir).get("dataset")
  if dataset not in (BEAM_JOBS[world], None):
    raise ValueError(
      f"{data_dir} holds a {dataset!r} dataset, but the configured synthetic world {world!r} is "
      f"converted by beam_pipelines.{BEAM_JOBS[world]}: set Trainer.synthetic_world to match the data "
      "(or None for real data)"
    )


@gin.configurable
def ensure_synthetic(
  world: str,
  data_dir: str,
  seed: int = 0,
  sizes: Optional[dict] = None,
  num_workers: int = 2,
  own_dir: Optional[str] = None,
  progress: bool = True,
) -> str:
  """Makes sure `data_dir` holds TFRecords of the embedded synthetic `world`, creating them if needed.

  pdr_tf never deletes or overwrites data it did not create: a converted dataset (with its manifest.json) in
  data_dir is used as it is; a folder with other files is refused; a missing folder is generated only when it is
  the world's own location (`own_dir`), so that a misspelled path is an error, not a silently fresh world.

  Args:
    world: "cars", "faces" or "bbt".
    data_dir: the TFRecords folder (its sibling `raw/` receives the generated world).
    seed: generator seed.
    sizes: size flags passed to `pdr_tf.synthetic.generate` (its defaults when None).
    num_workers: Beam worker processes.
    own_dir: the world's own location, where generating is allowed (default `default_data_dir(world)`).
    progress: show the generator's progress bars (False for unattended runs whose log is a file).

  Returns:
    data_dir.

  Raises:
    ValueError: data_dir holds files but no pdr_tf dataset, or a dataset of another kind.
    FileNotFoundError: data_dir does not exist and is not the world's own location.
  """
  if world not in BEAM_JOBS:
    raise ValueError(f"Unknown synthetic world {world!r}; choose one of {', '.join(BEAM_JOBS)}")
  if has_tfrecords(data_dir):
    check_dataset_kind(world, data_dir)
    return data_dir
  if os.path.isdir(data_dir) and os.listdir(data_dir):
    entries = sorted(os.listdir(data_dir))
    raise ValueError(
      f"{data_dir} holds {len(entries)} entries (e.g. {entries[:3]}) but no "
      f"{feature_spec.MANIFEST_FILENAME}: it is not a dataset pdr_tf converted, and pdr_tf never "
      f"writes the synthetic {world} world over data it did not create. Point Trainer.data_dir at a "
      f"converted dataset (convert raw data with `{_conversion_command(world, '<empty folder>')}`) "
      "or at an empty folder."
    )
  own_dir = own_dir or default_data_dir(world)
  if not os.path.isdir(data_dir) and not _same_path(data_dir, own_dir):
    raise FileNotFoundError(
      f"data dir {data_dir} does not exist. Convert your data into it with "
      f"`{_conversion_command(world, data_dir)}`, or leave Trainer.data_dir at the synthetic "
      f"{world} world's own location {own_dir}, which is generated on first use."
    )
  with _provisioning(world, data_dir):
    if has_tfrecords(data_dir):  # made by the process this one waited for
      check_dataset_kind(world, data_dir)
      return data_dir
    return _generate_and_convert(world, data_dir, seed, sizes, num_workers, progress)


@contextlib.contextmanager
def _provisioning(world: str, data_dir: str):
  """Holds the dataset root's provisioning lock: waits (logging every half minute) while another live process holds
  it; a lock left by a process that died is taken over."""
  root = os.path.dirname(os.path.abspath(os.path.normpath(data_dir)))
  os.makedirs(root, exist_ok=True)
  lock = locks.FolderLock(os.path.join(root, PROVISION_LOCK_FILENAME), f"pdr_tf making the synthetic {world} world")
  last_log = None
  while True:
    try:
      lock.acquire()
      break
    except locks.LockHeldError as e:
      now = time.monotonic()
      if last_log is None or now - last_log >= _WAIT_LOG_EVERY_S:
        logger.info("Waiting for the synthetic %s world: %s", world, e)
        last_log = now
      time.sleep(1.0)
  try:
    yield
  finally:
    lock.release()


def _generate_and_convert(world, data_dir, seed, sizes, num_workers, progress) -> str:
  from pdr_tf import synthetic  # pylint: disable=import-outside-toplevel

  raw = raw_dir_for(data_dir)
  wanted = {"world": world, "seed": int(seed), "sizes": dict(synthetic.default_sizes(world), **(sizes or {}))}
  summary = synthetic.read_summary(raw) if synthetic.is_complete(raw) else None
  there = {key: summary.get(key) for key in wanted} if summary else None
  if there == wanted:
    logger.info("Synthetic %s world already generated in %s", world, raw)
  else:
    if there is not None:  # a complete world of pdr_tf's own, made with other settings: made again as asked
      logger.warning(
        "%s holds the synthetic %s world made with seed %s and sizes %s; generating it again with seed %s and "
        "sizes %s, as configured",
        raw,
        there["world"],
        there["seed"],
        there["sizes"],
        wanted["seed"],
        wanted["sizes"],
      )
    logger.info("Stage 1/2: generating the synthetic %s world into %s (once)", world, raw)
    synthetic.generate(world, raw, seed=seed, progress=progress, **(sizes or {}))
  logger.info("Stage 2/2: converting %s to TFRecords in %s with beam_pipelines.%s", raw, data_dir, BEAM_JOBS[world])
  import beam_pipelines  # pylint: disable=import-outside-toplevel  (Beam only when data must be converted)

  code = beam_pipelines.convert(BEAM_JOBS[world], synthetic.dataset_root(world, raw), data_dir, num_workers=num_workers)
  if code != 0 or not has_tfrecords(data_dir):
    raise ConversionError(
      f"Converting {raw} with beam_pipelines.{BEAM_JOBS[world]} failed (exit {code}); see the log "
      f"above and {os.path.join(data_dir, feature_spec.REJECTS_FILENAME)}"
    )
  input_pipeline.list_shards(data_dir, formats.BBT_SPLIT if world == "bbt" else "train")
  return data_dir
