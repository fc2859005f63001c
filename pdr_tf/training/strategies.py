"""Distribution strategies by name, and the per-worker facts the trainer needs (chief or not, where to write)."""

import json
import logging
import os
import tempfile
from typing import Optional, Sequence

import tensorflow as tf

from pdr_tf.training import workdir as workdir_lib

logger = logging.getLogger(__name__)

STRATEGIES = ("auto", "default", "mirrored", "multi_worker", "tpu")


def make_strategy(
  name: str = "auto", devices: Optional[Sequence[str]] = None, tpu: Optional[str] = None
) -> tf.distribute.Strategy:
  """Builds a tf.distribute strategy.

  Args:
    name: "auto" (MirroredStrategy over the visible GPUs, else the default strategy), "default" (no distribution),
      "mirrored" (MirroredStrategy over `devices`, all GPUs when None), "multi_worker"
      (MultiWorkerMirroredStrategy from the TF_CONFIG environment variable), "tpu" (TPUStrategy on `tpu`).
    devices: device names for "mirrored", e.g. ["/gpu:0", "/gpu:1"] or logical CPUs ["/cpu:0", "/cpu:1"].
    tpu: TPU name or address for "tpu" ("" or None for a local / Cloud TPU VM).

  Returns:
    The strategy.
  """
  if name not in STRATEGIES:
    raise ValueError(f"Unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}")
  if name == "auto":
    gpus = tf.config.list_logical_devices("GPU")
    if gpus:
      return tf.distribute.MirroredStrategy([d.name for d in gpus])
    return tf.distribute.get_strategy()
  if name == "default":
    return tf.distribute.get_strategy()
  if name == "mirrored":
    return tf.distribute.MirroredStrategy(list(devices) if devices else None)
  if name == "multi_worker":
    if "TF_CONFIG" not in os.environ:
      raise ValueError(
        "strategy 'multi_worker' needs the TF_CONFIG environment variable (cluster and task); see "
        "the README's 'Scaling out' section"
      )
    return tf.distribute.MultiWorkerMirroredStrategy()
  resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or "")
  tf.config.experimental_connect_to_cluster(resolver)
  tf.tpu.experimental.initialize_tpu_system(resolver)
  return tf.distribute.TPUStrategy(resolver)


def task_info(strategy: tf.distribute.Strategy):
  """(task_type, task_id) of this process; ("chief", 0) outside multi-worker training."""
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or not getattr(resolver, "task_type", None):
    return "chief", 0
  return resolver.task_type, resolver.task_id or 0


def is_chief(strategy: tf.distribute.Strategy) -> bool:
  """Whether this process writes the real checkpoints, summaries and exports."""
  task_type, task_id = task_info(strategy)
  if task_type == "chief":
    return True
  if task_type == "worker" and task_id == 0:
    cluster = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
    return "chief" not in cluster
  return False


def is_chief_from_environment() -> bool:
  """Whether this process is the chief according to TF_CONFIG alone (True without TF_CONFIG), before any strategy
  exists: the chief, or worker 0 of a cluster without a chief."""
  config = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}")
  task = config.get("task") or {}
  if not task:
    return True
  if task.get("type") == "chief":
    return True
  return task.get("type") == "worker" and int(task.get("index", 0)) == 0 and "chief" not in config.get("cluster", {})


def worker_dir(path: str, strategy: tf.distribute.Strategy) -> str:
  """`path` on the chief; on other workers a fresh private temporary folder (they must write too, then discard).

  The folder is new for every process: a reused one would hand a restarted worker its own stale checkpoint (the
  preemption handler restores from it), out of step with the chief's.
  """
  if is_chief(strategy):
    return path
  task_type, task_id = task_info(strategy)
  return os.path.join(tempfile.mkdtemp(prefix=f"pdr_tf_{task_type}_{task_id}_"), os.path.basename(path))


class WorkersDisagreeError(RuntimeError):
  """The workers of a multi-worker run do not share the chief's work dir, or start at other steps than the chief."""


def _all_workers_sum(strategy: tf.distribute.Strategy, values) -> list:
  """The sum over the workers of each process's `values` (floats), through one all-reduce: every local replica
  contributes its process's values divided by the number of local replicas."""
  local = tf.constant([float(v) / len(strategy.extended.worker_devices) for v in values], tf.float64)
  total = strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(lambda: tf.identity(local)), axis=None)
  return [float(v) for v in total.numpy()]


def check_workers(strategy: tf.distribute.Strategy, workdir: str, step: int) -> None:
  """Checks, under multi-worker training, that every worker sees the chief's work dir and starts at its step.

  The work dir must be one folder shared by all workers (the chief writes the checkpoints there, and every worker
  resumes from them). A worker that sees another folder would start from another step, or from scratch, and the
  workers would then wait for ever in a collective that the others never join. So the chief writes a token file into
  the work dir and sends its token and step to every worker (one all-reduce); each worker looks for that file and
  compares the steps; a second all-reduce counts the workers that found a difference, so that all of them stop
  together with the same error. The chief then removes the file. Outside multi-worker training it does nothing.

  Raises:
    WorkersDisagreeError: some worker does not see the file, or resumed at another step (each says which in its log).
  """
  if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
    return
  chief = is_chief(strategy)
  token = int.from_bytes(os.urandom(5), "big") + 1 if chief else 0  # below 2^40: exact in float64
  if chief:
    with tf.io.gfile.GFile(workdir_lib.workers_token(workdir, token), "w") as f:  # local or an object store
      f.write("pdr_tf: shows every worker of this run the chief's work dir; removed at once\n")
  try:
    shared_token, chief_step = (round(v) for v in _all_workers_sum(strategy, [token, step if chief else 0]))
    try:  # an error here must not stop this worker alone: the others would wait for it in the next all-reduce
      seen = tf.io.gfile.exists(workdir_lib.workers_token(workdir, shared_token))
    except (tf.errors.OpError, OSError) as e:
      logger.warning("Cannot look for the chief's token file in %s: %s", workdir, e)
      seen = False
    problems = []
    if not seen:
      problems.append(f"it does not see the chief's work dir in {workdir}")
    if step != chief_step:
      problems.append(f"it starts at step {step}, the chief at step {chief_step}")
    if problems:
      task_type, task_id = task_info(strategy)
      logger.error("Worker %s %d: %s", task_type, task_id, "; ".join(problems))
    disagreeing = round(_all_workers_sum(strategy, [1.0 if problems else 0.0])[0])
  finally:
    if chief:
      tf.io.gfile.remove(workdir_lib.workers_token(workdir, token))
  if disagreeing:
    raise WorkersDisagreeError(
      f"{disagreeing} worker(s) of this multi-worker run do not share the chief's work dir (this worker's: "
      f"{workdir}; each worker's log says which and why). Every worker must be given the same work dir, on "
      "storage that all of them read and write (a shared file system), so that they resume from the chief's "
      "checkpoints together."
    )
