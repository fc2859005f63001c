"""Custom distributed training loop for the de-renderer: begin (build, restore), steps (many per tf.function), end.

Keras 3 `fit` fails under MultiWorkerMirroredStrategy (STACK.md), so training is a custom loop: `strategy.run` of a
step that computes per-example losses, scales them once with `tf.nn.compute_average_loss` over the global batch and
applies gradients (Keras 3's `apply_gradients` sums across replicas). `steps_per_loop` steps run inside one
`tf.function` call. Checkpoints go through `tf.train.CheckpointManager`; a restarted run resumes at the saved step
with the saved optimizer state. Checkpoints pdr_tf did not write are never adopted, resumed from or pruned, and a
checkpoint of other model settings stops the run with an error naming it (`workdir.claim_for_training`, `_resume`).
A non-finite loss stops the run with `NonFiniteLossError` before anything is saved, so the last checkpoint stays the
last good one.
"""

import contextlib
import json
import logging
import os
import shutil
import sys
import time
from typing import Callable, Dict, Optional, Sequence

import gin
import keras
import numpy as np
import tensorflow as tf
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from pdr_tf import config_checks
from pdr_tf import gin_config
from pdr_tf import graph
from pdr_tf.data import datasets
from pdr_tf.evaluation import derender_eval
from pdr_tf.data import input_pipeline
from pdr_tf.data import locks
from pdr_tf.model import de_renderer as model_lib
from pdr_tf.model import losses
from pdr_tf.model import loocc
from pdr_tf.model import objective as objective_lib
from pdr_tf.model import optimizers
from pdr_tf.render import rasterizer
from pdr_tf.render import renderer as renderer_lib
from pdr_tf.render import scene
from pdr_tf.training import strategies
from pdr_tf.training import summaries
from pdr_tf.training import workdir as workdir_lib

logger = logging.getLogger(__name__)

_CARS_DATA_DIR = datasets.default_data_dir("cars")  # the default world's folder, generated on first use

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
# Where tf.distribute's PreemptionCheckpointHandler keeps its count of calls in a checkpoint (multi-worker runs).
PREEMPTION_COUNT_KEY = "checkpointed_runs"
_SCALARS = (
  "total",
  "recon",
  "l1",
  "l1_flip",
  "perc",
  "perc_flip",
  "smooth",
  "loocc",
  "loocc_accuracy",
  "view_cycle",
  "light_cycle",
  "light_invariance",
  "albedo_invariance",
)


@contextlib.contextmanager
def precision_policy(name: str):
  """Sets Keras' global dtype policy to `name` inside the block and restores the previous one after."""
  previous = keras.mixed_precision.global_policy()
  keras.mixed_precision.set_global_policy(name)
  try:
    yield
  finally:
    keras.mixed_precision.set_global_policy(previous)


def _holds(path: str, key: str) -> bool:
  """Whether the checkpoint `path` saved a variable at `key` of its root object (False if it cannot be read: the
  restore that follows then says why)."""
  try:
    return tf.train.load_checkpoint(path).has_tensor(f"{key}/.ATTRIBUTES/VARIABLE_VALUE")
  except (tf.errors.OpError, ValueError):
    return False


def _crossed(every: int, step_before: int, step: int) -> bool:
  """Whether a multiple of `every` (> 0) lies in (step_before, step]."""
  return every > 0 and (step // every) > (step_before // every)


def _all_finite(tensors) -> tf.Tensor:
  """A scalar bool: every element of every tensor is finite."""
  return tf.reduce_all(tf.stack([tf.reduce_all(tf.math.is_finite(t)) for t in tensors]))


def agree_on_overflow(grads):
  """In a replica context: every replica's gradients become NaN when any replica's are not finite.

  Keras' LossScaleOptimizer decides whether to skip a step (and lower the loss scale) from the first replica's
  gradients before the cross-replica sum, and under MultiWorkerMirroredStrategy each worker from its own first
  replica. An overflow on another replica would then reach the weights as inf/NaN through the sum, and workers could
  take different branches around the sum's collective. With every replica non-finite together, all skip together.
  """
  finite = _all_finite([g for g in grads if g is not None])
  context = tf.distribute.get_replica_context()
  overflow = context.all_reduce(tf.distribute.ReduceOp.SUM, 1.0 - tf.cast(finite, tf.float32)) > 0.0
  return [None if g is None else tf.where(overflow, tf.constant(np.nan, g.dtype), g) for g in grads]


# Settings a resumed run may change without a warning: its length, where it goes, and how it reports progress.
RESUMABLE_SETTINGS = ("Trainer.train_steps", "Trainer.workdir", "Trainer.export_at_end")


def _write_atomically(path: str, text: str) -> None:
  """Writes `text` to `path` through a temporary file beside it, so a kill leaves the old file or the new one."""
  temporary = f"{path}.tmp-{os.getpid()}"
  with open(temporary, "w", encoding="utf-8") as f:
    f.write(text)
  os.replace(temporary, path)


PROGRESS_LOG_EVERY_S = 60.0  # how often a run without a progress bar logs where it is


def progress_line(step: int, total: int, loss: float, steps_done: int, seconds: float) -> str:
  """'step 300/1200 (25 %): loss 0.1234, 3.10 steps/s, about 4 min 50 s left' for a run's log."""
  rate = steps_done / seconds if seconds > 0 else 0.0
  line = f"step {step}/{total} ({100.0 * step / total:.0f} %): loss {loss:.4f}, {rate:.2f} steps/s"
  if rate > 0 and step < total:
    left = int(round((total - step) / rate))
    line += f", about {left // 60} min {left % 60} s left"
  return line


def check_configuration() -> None:
  """Builds the configured objects that cost nothing to build, so that a bad binding (an unknown LOOCC mode, a
  rasterizer backend, a scene range) stops a command before data generation and start-up, naming the binding."""
  loocc.LooccConfig()
  losses.ReconstructionWeights()
  scene.SceneRanges()
  renderer_lib.Renderer()
  model_lib.DeRenderer()


class NonFiniteLossError(RuntimeError):
  """Training produced a NaN or infinite loss, or weights an update made non-finite; the message names the steps and
  the last good checkpoint."""


@gin.configurable
class Trainer:
  """Trains a DeRenderer with LOOCC under a tf.distribute strategy.

  Args:
    workdir: where checkpoints, logs, the operative gin config and the export go.
    data_dir: TFRecords written by a Beam job (train split).
    synthetic_world: when set ("cars", "faces", "bbt") and data_dir has no data, the embedded synthetic world is
      generated and converted there first; when None, missing data is an error naming the command that creates it.
    train_steps: total optimizer steps.
    global_batch_size: images per step over all replicas.
    learning_rate, weight_decay, adam_epsilon: AdamW settings (epsilon 1e-8: PyTorch's Adam, as Unsup3D).
    weight_decay_style: "decoupled" (Keras AdamW's weight decay) or "l2" (the same coefficient added to the
      gradient, as PyTorch's Adam and Unsup3D do; `optimizers.ScaledAdamW` `l2`).
    lr_multipliers: per-network learning-rate multipliers, e.g. {"depth_net": 0.1} (`optimizers.ScaledAdamW`).
    lr_multiplier_steps: the multipliers hold for this many steps, then every network trains at learning_rate
      (None: for the whole run).
    steps_per_loop: steps per tf.function call (and per progress/NaN check).
    checkpoint_every: a checkpoint at the end of each loop that reaches a multiple of this many steps (counted from
      step 0, so a resumed run keeps the schedule), and at the last step.
    keep_checkpoints: how many checkpoints to keep.
    summary_every: steps between scalar summaries; image_summary_every: between image grids (0: never).
    strategy, devices, tpu: see `strategies.make_strategy`.
    seed: base seed for initialisation, data order and LOOCC draws.
    jit_compile: compile the loss and its gradients with XLA, networks and renderer together. Needs an
      XLA-capable rasterizer backend ("tf", which "auto" is) and one
      device (no distribution strategy: LOOCC's all-gather and the gradient all-reduce cannot run inside XLA);
      otherwise a warning says why and the step runs uncompiled, with only the renderer compiled when
      `Renderer.jit_compile` is on (docs/performance.md).
    precision: "float32", or a Keras mixed-precision policy for the networks: "mixed_float16" (GPUs; the loss is
      scaled dynamically by a LossScaleOptimizer) or "mixed_bfloat16" (GPUs and TPUs, and CPUs with bf16
      instructions). The renderer, the losses and the variables stay float32.
    validation_every: steps between de-rendering checks against ground truth (0: never): a fixed batch of
      `validation_size` records with ground truth from `validation_split` is de-rendered, and its view, light,
      normal and depth errors are logged beside the trivial predictors' (best constant view, constant light, flat
      depth), to TensorBoard (validation/*), the progress bar, the log and <workdir>/validation.jsonl. Data without
      ground truth (real datasets) logs once that the check is off.
    validation_split, validation_size: where the fixed validation batch comes from and how many images it holds.
    export_at_end: write a SavedModel into <workdir>/export when training ends (`ExportHook`).
    inject_nan_at_step: testing hook: makes the loss NaN from this step on, to exercise the failure path.
    progress: show a tqdm progress bar.
    model_builder: () -> the model to train (default: the gin-configured `model.DeRenderer`), called under the
      strategy's scope and the precision policy.
    objective_builder: () -> the loss (default: the gin-configured `objective.Objective`).
    optimizer_builder: (trainer) -> a Keras optimizer (default `default_optimizer`: `optimizers.ScaledAdamW` from
      learning_rate, weight_decay, adam_epsilon and lr_multipliers); a LossScaleOptimizer wraps it under
      mixed_float16.
    dataset_builder: (strategy, data_dir, split, global_batch_size, seed, start_step) -> the distributed training
      dataset, continuing at `start_step` as an uninterrupted run's would (default `training_dataset`).
    hooks: extra `Hook`s, called after every loop of steps and at the end, after the built-in summaries,
      validation, checkpoints and export.

  The Trainer trains on data that exists: an entry point provisions it first (`train.prepare_data`, which
  generates the embedded synthetic world named by `synthetic_world` on first use).
  """

  def __init__(
    self,
    workdir,
    data_dir=_CARS_DATA_DIR,
    synthetic_world: Optional[str] = "cars",
    train_steps=1000,
    global_batch_size=64,
    learning_rate=1e-4,
    weight_decay=5e-4,
    adam_epsilon=1e-8,
    weight_decay_style="decoupled",
    lr_multipliers=None,
    lr_multiplier_steps=None,
    steps_per_loop=10,
    checkpoint_every=500,
    keep_checkpoints=3,
    summary_every=10,
    image_summary_every=500,
    strategy="auto",
    devices: Optional[Sequence[str]] = None,
    tpu: Optional[str] = None,
    seed=0,
    jit_compile=False,
    precision="float32",
    validation_every=0,
    validation_split="val",
    validation_size=64,
    export_at_end=True,
    inject_nan_at_step: Optional[int] = None,
    progress=True,
    model_builder: Optional[Callable] = None,
    objective_builder: Optional[Callable] = None,
    optimizer_builder: Optional[Callable] = None,
    dataset_builder: Optional[Callable] = None,
    hooks: Sequence["Hook"] = (),
  ):
    check = config_checks
    self.workdir = check.text("Trainer.workdir", workdir)
    if any(char in self.workdir for char in "*?[]"):  # TensorFlow finds a checkpoint's files by pattern
      raise check.ConfigError(
        f"Trainer.workdir {self.workdir!r} holds one of * ? [ ]: TensorFlow reads checkpoints by file pattern and "
        "would not find this work dir's own on resume; choose a name without them"
      )
    self.data_dir = check.text("Trainer.data_dir", data_dir)
    self.synthetic_world = synthetic_world and check.choice(
      "Trainer.synthetic_world", synthetic_world, datasets.BEAM_JOBS
    )
    self.train_steps = check.integer("Trainer.train_steps", train_steps, 1)
    self.global_batch_size = check.integer("Trainer.global_batch_size", global_batch_size, 1)
    self.learning_rate = check.number("Trainer.learning_rate", learning_rate, positive=True)
    self.weight_decay = check.number("Trainer.weight_decay", weight_decay, 0.0)
    self.adam_epsilon = check.number("Trainer.adam_epsilon", adam_epsilon, positive=True)
    self.weight_decay_style = check.choice("Trainer.weight_decay_style", weight_decay_style, ("decoupled", "l2"))
    self.lr_multipliers = dict(lr_multipliers or {})
    for name, value in self.lr_multipliers.items():
      check.number(f"Trainer.lr_multipliers[{name!r}]", value, positive=True)
    self.lr_multiplier_steps = (
      None if lr_multiplier_steps is None else check.integer("Trainer.lr_multiplier_steps", lr_multiplier_steps, 1)
    )
    self.steps_per_loop = check.integer("Trainer.steps_per_loop", steps_per_loop, 1)
    self.checkpoint_every = check.integer("Trainer.checkpoint_every", checkpoint_every, 1)
    self.keep_checkpoints = check.integer("Trainer.keep_checkpoints", keep_checkpoints, 1)
    self.summary_every = check.integer("Trainer.summary_every", summary_every, 0)
    self.image_summary_every = check.integer("Trainer.image_summary_every", image_summary_every, 0)
    if isinstance(strategy, tf.distribute.Strategy):  # injected (tests, or a caller that built its own)
      self.strategy_name, self._given_strategy = type(strategy).__name__, strategy
    else:
      self.strategy_name = check.choice("Trainer.strategy", strategy, strategies.STRATEGIES)
      self._given_strategy = None
    self.devices, self.tpu = devices, tpu
    self.seed = check.integer("Trainer.seed", seed)
    self.jit_compile = check.boolean("Trainer.jit_compile", jit_compile)
    self.export_at_end = check.boolean("Trainer.export_at_end", export_at_end)
    self.progress = check.boolean("Trainer.progress", progress)
    self.inject_nan_at_step = inject_nan_at_step
    self.precision = check.choice("Trainer.precision", precision, PRECISIONS)
    self.validation_every = check.integer("Trainer.validation_every", validation_every, 0)
    self.validation_split = check.text("Trainer.validation_split", validation_split)
    self.validation_size = check.integer("Trainer.validation_size", validation_size, 1)
    self.last_validation = None
    self._lock = None
    self.model_builder = model_builder or model_lib.DeRenderer
    self.objective_builder = objective_builder or objective_lib.Objective
    self.optimizer_builder = optimizer_builder or default_optimizer
    self.dataset_builder = dataset_builder or training_dataset
    self.hooks = [SummaryHook(), ValidationHook(), CheckpointHook()]
    if self.export_at_end:
      self.hooks.append(ExportHook())
    self.hooks += list(hooks)

  # ------------------------------------------------------------------------------------------------ begin
  def begin(self) -> None:
    """Checks the data, builds strategy, model, optimizer and checkpoints, and restores the latest checkpoint."""
    if os.path.exists(self.workdir) and not os.path.isdir(self.workdir):
      raise workdir_lib.WorkdirError(f"work dir {self.workdir} is a file, not a folder; choose another --workdir")
    input_pipeline.list_shards(self.data_dir, "train")  # clear error naming the path; before the work dir exists
    os.makedirs(self.workdir, exist_ok=True)
    self._take_workdir_lock()
    # Before anything writes there: checkpoints pdr_tf did not write are never adopted, resumed from or pruned.
    workdir_lib.claim_for_training(self.workdir)
    self.strategy = self._given_strategy or strategies.make_strategy(self.strategy_name, self.devices, self.tpu)
    self.chief = strategies.is_chief(self.strategy)
    logger.info(
      "Strategy %s with %d replica(s)%s",
      type(self.strategy).__name__,
      self.strategy.num_replicas_in_sync,
      "" if self.chief else " (non-chief worker)",
    )
    keras.utils.set_random_seed(self.seed)
    with self.strategy.scope():
      with precision_policy(self.precision):  # layers keep the policy they were built under
        self.model = self.model_builder()
        self.model.build_for_inference()
      self.objective = self.objective_builder()
      self.optimizer = self.optimizer_builder(self)
      if self.precision == "mixed_float16":
        self.optimizer = keras.optimizers.LossScaleOptimizer(self.optimizer)
      self.optimizer.build(self.model.trainable_variables)
      self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
    self.checkpoint = tf.train.Checkpoint(model=self.model, optimizer=self.optimizer, step=self.step)
    multi_worker = isinstance(self.strategy, tf.distribute.MultiWorkerMirroredStrategy)
    if multi_worker:
      # The preemption handler saves its count of calls in the checkpoint under this name, and restores it only
      # where its manager's folder has a checkpoint: the chief's count would come back, every other worker's would
      # start at 0, and the workers would then disagree on the step at which to save when one is preempted. A
      # variable of ours in its place (the handler adds its own only when the name is free) keeps the handler's
      # count out of the checkpoint, so every worker starts it at 0 after a restart and counts in step.
      setattr(self.checkpoint, PREEMPTION_COUNT_KEY, tf.Variable(0, dtype=tf.int64, trainable=False))
    latest = workdir_lib.latest_checkpoint(self.workdir)
    if latest:
      self._resume(latest)
    strategies.check_workers(self.strategy, self.workdir, int(self.step.numpy()))
    if self.chief:
      workdir_lib.mark_checkpoints(self.workdir)  # the checkpoints there are pdr_tf's, from now on written by it
    # Created only after the checks: the manager prunes (max_to_keep) whatever its folder's state file lists.
    checkpoint_dir = strategies.worker_dir(workdir_lib.checkpoints(self.workdir), self.strategy)
    self.manager = tf.train.CheckpointManager(
      self.checkpoint, checkpoint_dir, max_to_keep=self.keep_checkpoints, step_counter=self.step
    )
    self.preemption = None
    if multi_worker:
      self.preemption = tf.distribute.experimental.PreemptionCheckpointHandler(
        self.strategy.cluster_resolver, self.manager
      )
    self._write_operative_config()
    self.writer = (
      tf.summary.create_file_writer(workdir_lib.train_logs(self.workdir))
      if self.chief
      else tf.summary.create_noop_writer()
    )
    start_step = int(self.step.numpy())
    if self.chief:
      self._drop_validations_after(start_step)
    if start_step:
      logger.info("Replaying the training data to step %d (records are read and dropped, not decoded)", start_step)
    self.dataset = self.dataset_builder(
      self.strategy, self.data_dir, "train", self.global_batch_size, self.seed, start_step
    )
    self.iterator = iter(self.dataset)
    # Without tf.distribute (one device) the optimizer update is compiled with XLA: Keras applies AdamW variable by
    # variable, ~10 small ops each, and fused it costs a third (docs/performance.md). Under a distribution strategy
    # the step holds cross-replica collectives (the gradient all-reduce, LOOCC's all-gather), which cannot run
    # inside an XLA-compiled function, so neither the update nor the whole step is compiled there.
    one_device = self.strategy is tf.distribute.get_strategy()
    self.compiled_update = one_device
    self.compiled_step = self.jit_compile and self._check_step_compilable(one_device)
    self._inline_renderer = self.model.renderer.inline() if self.compiled_step else None
    self._compute_gradients = (
      graph.function(self._inline_renderer_gradients, jit_compile=True) if self.compiled_step else self._gradients
    )
    self._apply_update = graph.function(self._update, jit_compile=True) if self.compiled_update else self._update
    self._train_loop = self._make_train_loop()
    self._validation_batch = self._load_validation_batch() if self.validation_every > 0 and self.chief else None

  def _resume(self, path: str) -> None:
    """Restores model, optimizer and step from the checkpoint `path`, which must hold exactly this run's variables
    with their shapes: otherwise `workdir.CheckpointMismatchError` names the checkpoint and the first mismatch (the
    run then stops before anything is saved, so nothing is deleted or overwritten)."""
    # Strict in both directions, but indifferent to the preemption handler's count (multi-worker runs save one,
    # others do not), so that a run may resume under another strategy.
    restored = dict(model=self.model, optimizer=self.optimizer, step=self.step)
    if _holds(path, PREEMPTION_COUNT_KEY):
      restored[PREEMPTION_COUNT_KEY] = tf.Variable(0, dtype=tf.int64, trainable=False)
    workdir_lib.restore(
      restored,
      path,
      workdir_lib.operative_config(self.workdir),
      "resume from",
      strict=True,
      mismatch_advice="Train with those settings, or in another --workdir.",
    )
    logger.info("Resumed from %s at step %d", path, int(self.step.numpy()))

  def _take_workdir_lock(self) -> None:
    """One workdir, one trainer: the chief (or the only process) holds `workdir.train_lock(workdir)` while it trains."""
    if not strategies.is_chief_from_environment():
      return
    self._lock = locks.FolderLock(workdir_lib.train_lock(self.workdir), f"pdr_tf training in {self.workdir}")
    self._lock.acquire()

  def release_workdir(self) -> None:
    """Releases the workdir lock (also done by `end` and when `run` fails)."""
    if self._lock is not None:
      self._lock.release()
      self._lock = None

  def _load_validation_batch(self):
    """The fixed validation batch (records with ground truth), or None (logged) when the split has none."""
    try:
      batch = input_pipeline.ground_truth_batch(self.data_dir, self.validation_split, self.validation_size)
    except FileNotFoundError:
      logger.info("De-rendering validation off: %s has no %r split", self.data_dir, self.validation_split)
      return None
    if batch is None:
      logger.info(
        "De-rendering validation off: split %r of %s has no ground truth", self.validation_split, self.data_dir
      )
      return None
    logger.info(
      "De-rendering validation every %d steps on %d %r images with ground truth",
      self.validation_every,
      int(batch["image"].shape[0]),
      self.validation_split,
    )
    self._validation_fn = graph.function(lambda images: self.model.de_render(images, training=False))
    return {key: batch[key] for key in ("image", "gt_depth", "gt_light", "gt_view")}

  def validate(self) -> Optional[dict]:
    """De-renders the fixed validation batch and scores it against ground truth (None when there is none)."""
    if self._validation_batch is None:
      return None
    batch = self._validation_batch
    scene = {k: v.numpy() for k, v in self._validation_fn(batch["image"]).items()}
    scorer = derender_eval.DerenderScorer(self.model.image_size)
    scorer.add(
      scene["recon_depth"],
      scene["mask"],
      scene["light"],
      scene["view"],
      batch["gt_depth"].numpy(),
      batch["gt_light"].numpy(),
      batch["gt_view"].numpy(),
    )
    return scorer.result()

  def _check_step_compilable(self, one_device) -> bool:
    """Whether `jit_compile` can compile the loss and gradients here; if not, says why (the renderer alone is then
    compiled when `Renderer.jit_compile` is on)."""
    backend = self.model.renderer.backend
    if not rasterizer.supports_xla(backend):
      reason = (
        f"Renderer.backend {backend!r} is (or resolves to) the 'tfg' custom op, which XLA cannot compile; "
        "set Renderer.backend = 'tf'"
      )
    elif not one_device:
      reason = (
        f"{type(self.strategy).__name__} puts cross-replica collectives in the step, which cannot run "
        "inside an XLA-compiled function"
      )
    else:
      return True
    logger.warning("Trainer.jit_compile is on, but the step runs uncompiled: %s.", reason)
    return False

  def _write_operative_config(self) -> None:
    """gin's operative config plus this run's own settings, whether they came from gin or from Python, replaced
    atomically (export, evaluate and probe rebuild the model from it).

    A run that resumes with other settings than the run before it (other than its length) says which in a warning,
    and keeps the earlier file as `operative_config.gin.step-<N>` beside it (`workdir.earlier_operative_config`;
    one already there is left as it is): the checkpoints up to step N were trained with those."""
    if not self.chief:
      return
    path = workdir_lib.operative_config(self.workdir)
    text = (
      gin.operative_config_str() + "\n# The Trainer settings of this run (gin bindings or arguments given in Python):\n"
    )
    text += "".join(f"Trainer.{name} = {value!r}\n" for name, value in self.settings().items())
    step = int(self.step.numpy())
    if step and os.path.isfile(path):
      with open(path, encoding="utf-8") as f:
        before = f.read()
      changed = gin_config.changed_bindings(before, text, ignore=RESUMABLE_SETTINGS)
      if changed:
        kept = workdir_lib.earlier_operative_config(self.workdir, step)
        if not os.path.exists(kept):  # one there already holds what trained the steps before this one: kept
          _write_atomically(kept, before)
        logger.warning(
          "Resuming at step %d with other settings than the run before it: %s. Training goes on from its checkpoint "
          "under this run's settings; the earlier ones are kept in %s.",
          step,
          ", ".join(changed),
          kept,
        )
    _write_atomically(path, text)

  def settings(self) -> Dict[str, object]:
    """The loop's plain settings (numbers, strings, flags): what `operative_config.gin` records of the Trainer."""
    names = (
      "workdir data_dir synthetic_world train_steps global_batch_size learning_rate weight_decay weight_decay_style "
      "adam_epsilon lr_multipliers lr_multiplier_steps steps_per_loop checkpoint_every keep_checkpoints summary_every "
      "image_summary_every seed jit_compile precision validation_every validation_split validation_size export_at_end"
    ).split()
    out = {name: getattr(self, name) for name in names}
    if self._given_strategy is None:
      out["strategy"] = self.strategy_name
    return out

  # ------------------------------------------------------------------------------------------------ steps
  def _step_seed(self, step):
    return tf.stack([tf.constant(self.seed, tf.int64), tf.cast(step, tf.int64)])

  def _replica_step(self, batch, seed, step):
    grads, sums = self._compute_gradients(batch["image"], seed, step)
    if self.precision == "mixed_float16" and self.strategy.num_replicas_in_sync > 1:
      grads = agree_on_overflow(grads)
    self._apply_update(grads)
    return sums

  def _update(self, grads):
    self.optimizer.apply_gradients(zip(grads, self.model.trainable_variables))

  def _inline_renderer_gradients(self, images, seed, step):
    # Inside the compiled step the renderer is traced inline: the gradient of a nested XLA function does not compile.
    return self._gradients(images, seed, step, renderer=self._inline_renderer)

  def _gradients(self, images, seed, step, renderer=None):
    """Per-replica gradients of the once-scaled loss, and the per-replica sums of every scalar term."""
    with tf.GradientTape() as tape:
      result = self.objective(self.model, images, seed, training=True, renderer=renderer)
      per_example = result["total"]
      if self.inject_nan_at_step is not None:
        # Added, not selected with tf.where: the unselected NaN branch would poison the gradients of good steps.
        per_example += tf.where(step >= self.inject_nan_at_step, np.nan, 0.0)
      loss = tf.nn.compute_average_loss(per_example, global_batch_size=self.global_batch_size)
      loss = self.optimizer.scale_loss(loss)  # the loss scale under mixed_float16 (apply_gradients unscales)
    grads = tape.gradient(loss, self.model.trainable_variables)
    # Per-example terms summed here and divided by the global batch after the cross-replica sum.
    sums = {key: tf.reduce_sum(result[key]) for key in _SCALARS if key in result}
    sums["total"] = tf.reduce_sum(per_example)
    return grads, sums

  def _make_train_loop(self):
    def one_step(iterator):
      """Runs one step on every replica; returns the cross-replica sums of the scalar terms."""
      seed = self._step_seed(self.step)
      per_replica = self.strategy.run(self._replica_step, args=(next(iterator), seed, self.step))
      self.step.assign_add(1)
      return {k: self.strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for k, v in per_replica.items()}

    # The first step runs before the while loop, which needs the structure of `sums` from the start. (It is traced
    # twice, once there and once in the body. A step function of its own, traced once and called twice, or a loop
    # of every step started from zeros, each changes the results: the compiled graph then fuses and orders the ops
    # differently, and after 300 steps of the quick preset the loss differs in its third digit.)
    def loop(iterator, num_steps):
      def body(i, sums):
        values = one_step(iterator)
        return i + 1, {k: sums[k] + values[k] for k in sums}

      _, sums = tf.while_loop(lambda i, _: i < num_steps, body, (tf.constant(1), one_step(iterator)))
      return {k: v / tf.cast(num_steps * self.global_batch_size, tf.float32) for k, v in sums.items()}

    return graph.function(loop)

  def train(self) -> Dict[str, float]:
    """Runs the loop to `train_steps`; returns the last loop's mean scalars."""
    start_step = int(self.step.numpy())
    if start_step >= self.train_steps:
      logger.info("Already at step %d of %d: nothing to train", start_step, self.train_steps)
      return {}
    # The bar on a terminal; log lines (every PROGRESS_LOG_EVERY_S) without one (nohup, a batch system's log file,
    # which would collect the bar's redraws) or with Trainer.progress off.
    on_terminal = self.progress and sys.stderr.isatty()
    bar = tqdm(
      total=self.train_steps,
      initial=start_step,
      desc="train",
      unit="step",
      disable=not on_terminal,
      dynamic_ncols=True,
    )
    started = last_log = time.monotonic()
    scalars = {}
    with contextlib.ExitStack() as stack:
      if on_terminal:  # log lines (validation, warnings) above the bar instead of through it
        stack.enter_context(logging_redirect_tqdm())
      while int(self.step.numpy()) < self.train_steps:
        step_before = int(self.step.numpy())
        num_steps = min(self.steps_per_loop, self.train_steps - step_before)
        tick = time.monotonic()
        try:
          scalars = {k: float(v) for k, v in self._train_loop(self.iterator, tf.constant(num_steps)).items()}
        except tf.errors.DataLossError as e:
          bar.close()
          raise input_pipeline.corrupt_data_error(self.data_dir, "train", e) from None
        seconds = time.monotonic() - tick
        step = int(self.step.numpy())
        steps = f"steps {step_before + 1}-{step}"
        if not np.isfinite(scalars["total"]):
          self._stop(
            bar, f"Non-finite loss ({scalars['total']}) in {steps}", "the learning rate or check the input data"
          )
        if not bool(self._weights_finite()):  # a step's update overflowed after its loss was computed
          self._stop(
            bar, f"Non-finite weights after {steps} (the loss was finite: an update overflowed)", "the learning rate"
          )
        scalars["images_per_second"] = num_steps * self.global_batch_size / max(seconds, 1e-9)
        scalars["learning_rate"] = float(self.learning_rate)
        for hook in self.hooks:
          hook.after_loop(self, step_before, step, scalars)
        bar.set_postfix(
          loss=f"{scalars['total']:.4f}",
          img_s=f"{scalars['images_per_second']:.1f}",
          **self._validation_postfix(),
          refresh=False,
        )
        bar.update(step - step_before)
        now = time.monotonic()
        if not on_terminal and (now - last_log >= PROGRESS_LOG_EVERY_S or step >= self.train_steps):
          last_log = now
          logger.info(progress_line(step, self.train_steps, scalars["total"], step - start_step, now - started))
    bar.close()
    return scalars

  def _stop(self, bar, what: str, lower: str):
    """Ends training with NonFiniteLossError before any hook saves or exports: `what` happened; lower `lower`."""
    bar.close()
    raise NonFiniteLossError(
      f"{what}; stopping without saving. Last good checkpoint: {self.manager.latest_checkpoint or 'none'}. "
      f"Lower {lower}."
    )

  @graph.function
  def _weights_finite(self):
    """Whether every trainable weight is finite: checked after each loop, before any hook saves or exports them."""
    return _all_finite(self.model.trainable_variables)

  def run_steps(self, num_steps: int) -> Dict[str, float]:
    """Runs `num_steps` optimizer steps in one call of the compiled loop (after `begin`); returns their mean
    scalars. No hooks run: `train` is the loop with summaries, validation, checkpoints and export."""
    return {k: float(v) for k, v in self._train_loop(self.iterator, tf.constant(int(num_steps))).items()}

  def _validation_postfix(self) -> Dict[str, str]:
    if self.last_validation is None:
      return {}
    ratios = self.last_validation["ratios"]
    return {"val_view_light_normals": f"{ratios['view']:.2f}/{ratios['light']:.2f}/{ratios['normals']:.2f}x"}

  def maybe_validate(self, step_before, step) -> None:
    if self._validation_batch is None or not (
      _crossed(self.validation_every, step_before, step) or step >= self.train_steps
    ):
      return
    report = self.validate()
    self.last_validation = dict(report, step=step)
    logger.info("step %d validation: %s", step, derender_eval.summary_line(report))
    ratios = report["ratios"]
    with self.writer.as_default(step=step):
      for key, value in derender_eval.scalars(report).items():
        tf.summary.scalar(f"validation/{key}", value)
    self.writer.flush()
    with open(workdir_lib.validation_log(self.workdir), "a", encoding="utf-8") as f:
      f.write(json.dumps({"step": step, "ratios": ratios, **derender_eval.scalars(report)}) + "\n")

  def _drop_validations_after(self, step: int) -> None:
    """A run resumed at `step` validates the steps after it again: the validation log's records of those steps,
    from the model that was not saved, are dropped (the log is this trainer's own file), so each step has one; so
    is a last line cut off by a kill."""
    path = workdir_lib.validation_log(self.workdir)
    if not os.path.isfile(path):
      return
    with open(path, encoding="utf-8") as f:
      lines = f.readlines()

    def before_resume(line):
      try:
        return json.loads(line)["step"] <= step
      except (ValueError, KeyError, TypeError):
        return False

    keep = [line for line in lines if before_resume(line)]
    if len(keep) == len(lines):
      return
    logger.info("Dropped %d validation record(s) after step %d from %s", len(lines) - len(keep), step, path)
    _write_atomically(path, "".join(keep))

  def write_summaries(self, step_before, step, scalars) -> None:
    crossed = lambda every: _crossed(every, step_before, step)
    with self.writer.as_default(step=step):
      if crossed(self.summary_every) or step >= self.train_steps:
        for key, value in scalars.items():
          tf.summary.scalar(f"loss/{key}" if key in _SCALARS else key, value)
      if crossed(self.image_summary_every) and self.chief:
        summaries.image_grids(self.model, self.objective, self._summary_images(), self._step_seed(step))
    self.writer.flush()

  def _summary_images(self):
    if not hasattr(self, "_fixed_images"):
      batch = next(iter(input_pipeline.make_dataset(self.data_dir, "train", 8, training=False)))
      self._fixed_images = batch["image"]
    return self._fixed_images

  # ------------------------------------------------------------------------------------------------ end
  def end(self) -> Dict[str, str]:
    """Saves a final checkpoint if needed, exports a SavedModel on the chief, and returns where outputs are."""
    if self.manager.latest_checkpoint is None or not self.manager.latest_checkpoint.endswith(
      f"-{int(self.step.numpy())}"
    ):
      self.manager.save(checkpoint_number=int(self.step.numpy()))
    outputs = {
      "workdir": self.workdir,
      "checkpoint": workdir_lib.checkpoints(self.workdir),
      "tensorboard": workdir_lib.logs(self.workdir),
      "operative_config": workdir_lib.operative_config(self.workdir),
    }
    self._write_operative_config()
    self._remove_worker_checkpoints()
    for hook in self.hooks:
      hook.at_end(self, outputs)
    self.release_workdir()
    return outputs

  def _remove_worker_checkpoints(self) -> None:
    """A non-chief's checkpoints only exist to take part in the collective save, in a fresh temporary folder per
    start (`strategies.worker_dir`) that no later start reads: removed at the end, and when a run stops early."""
    manager = getattr(self, "manager", None)
    if manager is not None and not self.chief:
      shutil.rmtree(os.path.dirname(manager.directory), ignore_errors=True)

  def run(self) -> Dict[str, str]:
    """begin, train, end (the workdir lock is released, and a non-chief's temporary checkpoints removed, whatever
    happens)."""
    try:
      self.begin()
      scalars = self.train()
      if scalars:
        logger.info("Final loop: %s", ", ".join(f"{k}={v:.4g}" for k, v in sorted(scalars.items())))
      return self.end()
    finally:
      self._remove_worker_checkpoints()
      self.release_workdir()


# ---------------------------------------------------------------------------------------------------- collaborators
def default_optimizer(trainer: Trainer):
  """AdamW with per-network learning-rate multipliers, from the trainer's learning-rate settings."""
  return optimizers.ScaledAdamW(
    learning_rate=trainer.learning_rate,
    weight_decay=trainer.weight_decay if trainer.weight_decay_style == "decoupled" else 0.0,
    l2=trainer.weight_decay if trainer.weight_decay_style == "l2" else 0.0,
    epsilon=trainer.adam_epsilon,
    lr_multipliers=trainer.lr_multipliers,
    multiplier_steps=trainer.lr_multiplier_steps,
  )


def training_dataset(strategy, data_dir: str, split: str, global_batch_size: int, seed: int, start_step: int = 0):
  """The shuffled, flipped, repeated training split, distributed over the strategy's replicas, from `start_step` on
  (the batches an uninterrupted run of the same seed would see from there)."""
  return input_pipeline.make_distributed_dataset(
    strategy, data_dir, split, global_batch_size, training=True, seed=seed, skip_steps=start_step
  )


class Hook:
  """Called by `Trainer.train` after every loop of `steps_per_loop` steps and by `Trainer.end`."""

  def after_loop(self, trainer: Trainer, step_before: int, step: int, scalars: Dict[str, float]) -> None:
    """After the steps (step_before, step]; `scalars` are their mean losses, images/s and learning rate."""

  def at_end(self, trainer: Trainer, outputs: Dict[str, str]) -> None:
    """After the final checkpoint; may add entries to `outputs` (what `Trainer.run` returns)."""


class SummaryHook(Hook):
  """Scalars every `summary_every` steps and image grids every `image_summary_every` steps, to TensorBoard."""

  def after_loop(self, trainer, step_before, step, scalars):
    trainer.write_summaries(step_before, step, scalars)


class ValidationHook(Hook):
  """The de-rendering check against ground truth every `validation_every` steps (and at the last step)."""

  def after_loop(self, trainer, step_before, step, scalars):
    trainer.maybe_validate(step_before, step)


class CheckpointHook(Hook):
  """A checkpoint every `checkpoint_every` steps and at the last step; the preemption handler's save first."""

  def after_loop(self, trainer, step_before, step, scalars):
    if trainer.preemption is not None:
      trainer.preemption.save_checkpoint_if_preempted()
    if _crossed(trainer.checkpoint_every, step_before, step) or step >= trainer.train_steps:
      trainer.manager.save(checkpoint_number=step)


class ExportHook(Hook):
  """A SavedModel in `<workdir>/export` at the end (on the chief), returned as outputs["saved_model"]; a run that
  ends at a checkpoint the newest version was already exported from (a finished command run again) reuses it."""

  def at_end(self, trainer, outputs):
    if not trainer.chief:
      return
    from pdr_tf import export  # pylint: disable=import-outside-toplevel  (serving code, only at the end)

    exported = export.exported_from(workdir_lib.export(trainer.workdir), workdir_lib.latest_checkpoint(trainer.workdir))
    if exported:
      logger.info("%s was already exported from this run's last checkpoint: not exported again", exported)
      outputs["saved_model"] = exported
      return
    outputs["saved_model"] = export.export_model(
      trainer.model, workdir_lib.export(trainer.workdir), image_size=trainer.model.image_size, workdir=trainer.workdir
    )
