"""Distribution strategies by name, and the per-worker facts the trainer needs (chief or not, where to write)."""

import json
import logging
import os
import tempfile
from typing import Optional, Sequence

import tensorflow as tf

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
