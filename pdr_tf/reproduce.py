"""Reproduces the paper's Table 1: python -m pdr_tf.reproduce --suite {cars,faces} [--seeds 3] [--preset quick|cpu]

Trains every method of a suite once per seed on the same training data, evaluates all of them the same way
(Ward clustering, k = number of classes, pdr_tf.evaluate) and writes a Table-1-style table (mean ± std over seeds)
beside the paper's numbers to <output_dir>/<suite>/table1.md and table1.json (every per-seed metric inside). Every
de-renderer's row carries its de-rendering ratios (model / trivial predictor on the evaluation split's ground truth)
and its mean PCC, so that no clustering number is read without knowing whether the model de-renders.

Suites:
  cars   train on the cars world's train split (data/cars/tfrecords), cluster its labelled test split (5 car classes).
  faces  train on the faces world (data/faces/tfrecords), cluster the BBT face tracks (data/bbt/tfrecords, test
         split, features averaged per track).
Methods: loocc_light_view, loocc_light (LOOCC), unsup3d (the same model with LOOCC off), vq_vae (Keras VQ-VAE,
trained with the same steps and batch size) and pixels_pca (raw pixels + PCA). De-renderers are clustered on depth +
albedo features. Missing synthetic data is generated on first use.

Presets (--preset): none (the suite's gin files as they are: paper-size models, for GPUs), quick (gin/quick.gin
and 200 steps: a demo of the pipeline, minutes per run; --quick is the same) and cpu (gin/cpu.gin: the longer CPU
preset, 15-20 minutes per de-renderer on 2 cores).

Resuming: every finished (method, seed) run is recorded in <output_dir>/<suite>/progress.json with its settings; a
re-run of the same command (after a kill, say) skips the runs recorded there with the same settings and resumes an
interrupted de-renderer from its checkpoint in <output_dir>/<suite>/<method>/seed<k>. Details and findings:
docs/reproduction.md.

Examples:
  python -m pdr_tf.reproduce --suite cars --preset quick --seeds 1
  nohup python -m pdr_tf.reproduce --suite cars --preset cpu --no_progress > reproduce_cars.log 2>&1 &
  python -m pdr_tf.reproduce --suite faces --seeds 3 --output_dir runs/reproduce
  python -m pdr_tf.reproduce --suite cars --preset quick --gin_param "LooccConfig.weight = 0.1" --output_dir runs/w01
"""

import argparse
import dataclasses
import datetime
import itertools
import logging
import os
import platform
import shutil
import sys
import time
import uuid
from typing import Dict, Optional, Sequence, Tuple

import gin
import numpy as np
from tqdm import tqdm

from pdr_tf import cli
from pdr_tf.data import datasets
from pdr_tf.data import formats
from pdr_tf import gin_config
from pdr_tf.data import input_pipeline
from pdr_tf.data import locks
from pdr_tf.evaluation import report
from pdr_tf.evaluation import reproduce_progress
from pdr_tf.evaluation import table1
from pdr_tf import evaluate as evaluate_lib
from pdr_tf.render import kernel_build
from pdr_tf.training import trainer as trainer_lib
from pdr_tf.training import workdir as workdir_lib
from pdr_tf.baselines import pixels_pca, vqvae

logger = logging.getLogger("pdr_tf.reproduce")

DERENDERERS = (report.LOOCC_LIGHT_VIEW, report.LOOCC_LIGHT, report.UNSUP3D)
BASELINES = ("vq_vae", "pixels_pca")
METHODS = DERENDERERS + BASELINES
# Quick preset: gin/quick.gin's narrow networks and batch 16, with fewer steps so that the cars suite with one seed
# (3 de-renderers + VQ-VAE + PCA, evaluation included) fits well within half an hour on 2 shared CPU cores
# (measured: 14 minutes, docs/reproduction.md).
QUICK_TRAIN_STEPS = 200


@dataclasses.dataclass(frozen=True)
class Preset:
  """A training budget layered on every method of a suite: a gin file under gin/ and, optionally, fewer steps."""

  gin_file: Optional[str]
  train_steps: Optional[int] = None  # None: what the gin stack says


PRESETS = {
  "none": Preset(None),
  "quick": Preset("quick.gin", QUICK_TRAIN_STEPS),
  "cpu": Preset("cpu.gin"),
}
PROGRESS_FILENAME = "progress.json"
LOCK_FILENAME = ".pdr_tf_reproduce.lock"  # hidden: one command per suite folder (locks.FolderLock)
PCA_COMPONENTS = 64
PCA_MAX_IMAGES = 5000


@dataclasses.dataclass(frozen=True)
class Suite:
  """One Table 1 block: where each method trains and where it is evaluated."""

  name: str
  dataset: str  # key of report.PAPER_TABLE1
  train_world: str  # synthetic world of the training data
  train_data_dir: str
  eval_world: str
  eval_data_dir: str
  average_tracks: bool  # cluster per-track mean features (BBT)
  gin_files: Dict[str, str]  # de-renderer method -> gin file under gin/


SUITES = {
  "cars": Suite(
    "cars",
    "shapenet_cars",
    "cars",
    datasets.default_data_dir("cars"),
    "cars",
    datasets.default_data_dir("cars"),
    False,
    {
      report.LOOCC_LIGHT_VIEW: "cars_light_view.gin",
      report.LOOCC_LIGHT: "cars_light.gin",
      report.UNSUP3D: "cars_unsup3d.gin",
    },
  ),
  "faces": Suite(
    "faces",
    "bbt",
    "faces",
    datasets.default_data_dir("faces"),
    "bbt",
    datasets.default_data_dir("bbt"),
    True,
    {
      report.LOOCC_LIGHT_VIEW: "faces_light_view.gin",
      report.LOOCC_LIGHT: "faces_light.gin",
      report.UNSUP3D: "faces_unsup3d.gin",
    },
  ),
}


def get_suite(name: str) -> Suite:
  """The suite called `name` ("cars" or "faces"); ValueError naming the choices otherwise."""
  if name not in SUITES:
    raise ValueError(f"unknown suite {name!r}; choose one of {', '.join(SUITES)}")
  return SUITES[name]


# ---------------------------------------------------------------------------------------------------- data
def load_images(
  data_dir: str, split: str, max_images: Optional[int] = None, labelled_only: bool = False, batch_size: int = 256
):
  """Reads a split in file order.

  Args:
    data_dir: converted TFRecord folder.
    split: split name.
    max_images: stop after this many images (None: all).
    labelled_only: keep only records with label_id >= 0.
    batch_size: records per tf.data batch.

  Returns:
    (images float32 [N, 64, 64, 3] in [-1, 1], labels [N] str (label name, else the id), tracks [N] str).
  """
  images, labels, tracks = [], [], []
  count = 0
  dataset = input_pipeline.make_dataset(data_dir, split, batch_size, training=False)
  for batch in input_pipeline.checked(dataset, data_dir, split):
    keep = batch["label_id"].numpy() >= 0 if labelled_only else np.ones(batch["image"].shape[0], bool)
    images.append(batch["image"].numpy()[keep])
    names = batch["label_name"].numpy()[keep]
    ids = batch["label_id"].numpy()[keep]
    labels += [n.decode("utf-8") or str(i) for n, i in zip(names, ids)]
    tracks += [t.decode("utf-8") for t in batch["track_id"].numpy()[keep]]
    count += int(keep.sum())
    if max_images is not None and count >= max_images:
      break
  images = np.concatenate(images) if images else np.zeros((0, 64, 64, 3), np.float32)
  end = len(labels) if max_images is None else int(max_images)
  return images[:end], np.asarray(labels[:end], dtype=str), np.asarray(tracks[:end], dtype=str)


def _check_eval_labels(suite: Suite, eval_data_dir: str, labels, tracks) -> None:
  """ValueError unless the labelled test records can be clustered as the suite does: some labelled records, and a
  track id on each where the suite averages features per track."""
  if len(labels) == 0:
    raise ValueError(f"no labelled records (label_id >= 0) in the test split of {eval_data_dir}")
  missing = int(np.sum(np.asarray(tracks) == ""))
  if suite.average_tracks and missing:
    raise ValueError(
      f"suite {suite.name} averages features per track but {missing} labelled test records of {eval_data_dir} have "
      "no track id"
    )


def check_eval_split(suite: Suite, eval_data_dir: str) -> None:
  """`_check_eval_labels` on a pass over the test split that keeps no images: a few seconds before the first run,
  instead of an error after it (every de-renderer is clustered on these records once trained)."""
  labels, tracks = [], []
  dataset = input_pipeline.make_dataset(eval_data_dir, formats.EVALUATION_SPLIT, 256, training=False)
  for batch in input_pipeline.checked(dataset, eval_data_dir, formats.EVALUATION_SPLIT):
    keep = batch["label_id"].numpy() >= 0
    labels += list(batch["label_id"].numpy()[keep])
    tracks += [t.decode("utf-8") for t in batch["track_id"].numpy()[keep]]
  _check_eval_labels(suite, eval_data_dir, labels, tracks)


def _eval_split(suite: Suite, eval_data_dir: str):
  images, labels, tracks = load_images(eval_data_dir, formats.EVALUATION_SPLIT, labelled_only=True)
  _check_eval_labels(suite, eval_data_dir, labels, tracks)
  return images, labels, (tracks if suite.average_tracks else None)


# ---------------------------------------------------------------------------------------------------- methods
def get_preset(name: str) -> Preset:
  """The preset called `name`; ValueError naming the choices otherwise."""
  if name not in PRESETS:
    raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
  return PRESETS[name]


def _gin_files(suite: Suite, method: str, preset: Preset, extra_gin_files: Sequence[str]):
  files = [os.path.join(gin_config.GIN_DIR, suite.gin_files[method])]
  if preset.gin_file:
    files.append(os.path.join(gin_config.GIN_DIR, preset.gin_file))
  return files + list(extra_gin_files)


def progress_path(output_dir: str, suite_name: str) -> str:
  """The progress file of a suite's runs under `output_dir`: <output_dir>/<suite>/PROGRESS_FILENAME."""
  return os.path.join(output_dir, suite_name, PROGRESS_FILENAME)


def lock_path(output_dir: str, suite_name: str) -> str:
  """The lock file one reproduce command holds on a suite's folder: <output_dir>/<suite>/LOCK_FILENAME."""
  return os.path.join(output_dir, suite_name, LOCK_FILENAME)


def run_workdir(output_dir: str, suite_name: str, method: str, seed: int) -> str:
  """Where run_suite trains and evaluates one method's run of one seed: <output_dir>/<suite>/<method>/seed<k>."""
  return os.path.join(output_dir, suite_name, method, f"seed{int(seed)}")


def _gin_digest(suite: Suite, preset_name: str, extra_gin_files: Sequence[str]) -> Dict[str, str]:
  """Per de-renderer of the suite (whichever methods this command runs), the digest of every gin file its stack
  reads: more methods (or seeds) extend a suite folder; a changed gin file does not, and the refusal names whose
  stack changed."""
  preset = get_preset(preset_name)
  return {m: gin_config.stack_digest(_gin_files(suite, m, preset, extra_gin_files)) for m in DERENDERERS}


def _legacy_gin_digests(suite: Suite, preset_name: str, extra_gin_files: Sequence[str]) -> set:
  """The single digests that folders made before 2026-12-05 recorded for these settings: one digest over the stacks
  of the de-renderers the command ran, in its --methods order (every ordered choice of them)."""
  preset = get_preset(preset_name)
  digests = set()
  for n in range(1, len(DERENDERERS) + 1):
    for order in itertools.permutations(DERENDERERS, n):
      digests.add(gin_config.stack_digest([f for m in order for f in _gin_files(suite, m, preset, extra_gin_files)]))
  return digests


def run_settings(
  suite: Suite,
  preset: str,
  gin_files: Sequence[str] = (),
  gin_params: Sequence[str] = (),
  train_steps: Optional[int] = None,
  train_data_dir: Optional[str] = None,
  eval_data_dir: Optional[str] = None,
  vqvae_steps: Optional[int] = None,
  pca_components: int = PCA_COMPONENTS,
  pca_max_images: int = PCA_MAX_IMAGES,
) -> Dict:
  """The settings a run's result depends on (`reproduce_progress.SETTINGS_KEYS`), as run_suite records them in a
  folder's progress file; the data folders default to the suite's worlds."""
  return {
    "suite": suite.name,
    "preset": preset,
    "gin_files": list(gin_files),
    "gin_params": list(gin_params),
    "train_steps": train_steps,
    "train_data_dir": train_data_dir or suite.train_data_dir,
    "eval_data_dir": eval_data_dir or suite.eval_data_dir,
    "vqvae_steps": vqvae_steps,
    "pca_components": pca_components,
    "pca_max_images": pca_max_images,
    "gin_digest": _gin_digest(suite, preset, gin_files),
  }


def same_folder(a, b) -> bool:
  """Whether two folder paths (None for none) name the same folder, as seen from the current folder."""
  return isinstance(a, str) and isinstance(b, str) and os.path.abspath(a) == os.path.abspath(b)


def open_progress(
  output_dir: str, suite: Suite, settings: Dict, jobs: Sequence[Tuple[str, int]] = ()
) -> reproduce_progress.Progress:
  """The progress file of <output_dir>/<suite>/ for runs with `settings` (`run_settings`); ValueError when it records
  other settings."""
  preset, gin_files = settings["preset"], settings["gin_files"]
  return reproduce_progress.Progress(
    progress_path(output_dir, suite.name),
    reproduce_progress.settings_of(settings),
    jobs,
    groups={m: "de-renderer" if m in DERENDERERS else m for m in METHODS},
    accept={
      "gin_digest": lambda old: isinstance(old, str) and old in _legacy_gin_digests(suite, preset, gin_files),
      # The same folder written another way (relative, absolute, with "./"), as seen from here.
      "train_data_dir": lambda old: same_folder(old, settings["train_data_dir"]),
      "eval_data_dir": lambda old: same_folder(old, settings["eval_data_dir"]),
    },
  )


def _parse_method_config(suite, method, ctx) -> None:
  """Applies the method's gin stack in order, later settings winning: its experiment file, the preset (its gin file,
  then its step count), the user's gin files, then the user's bindings. So a user's file such as gin/debug.gin sets
  Trainer.train_steps even under a preset with a step count of its own."""
  preset = get_preset(ctx["preset"])
  gin_config.parse(
    _gin_files(suite, method, preset, ()), [f"Trainer.train_steps = {preset.train_steps}"] if preset.train_steps else []
  )
  gin_config.parse(list(ctx["gin_files"]), list(ctx["gin_params"]), clear=False)


def _train_steps(ctx) -> int:
  """The training length: --train_steps, else what the parsed gin stack says."""
  return int(ctx["train_steps"]) if ctx["train_steps"] is not None else int(gin.query_parameter("Trainer.train_steps"))


def _build_trainer(workdir, seed, ctx) -> trainer_lib.Trainer:
  """A Trainer for one (method, seed) run: the gin stack configures the model, the objective and the loop; the
  run's own settings are passed here. The data were provisioned before (`reproduce` provisions both worlds first)."""
  return trainer_lib.Trainer(
    workdir=workdir,
    seed=int(seed),
    data_dir=ctx["train_data_dir"],
    synthetic_world=None,
    train_steps=_train_steps(ctx),
    export_at_end=True,
    progress=ctx["progress"],
  )


def _run_derenderer(suite, method, seed, workdir, ctx):
  _parse_method_config(suite, method, ctx)
  trainer = _build_trainer(workdir, seed, ctx)
  outputs = trainer.run()
  results = evaluate_lib.evaluate(
    outputs["saved_model"],
    ctx["eval_data_dir"],
    split=formats.EVALUATION_SPLIT,
    feature_set="depth_albedo",
    method="ward",
    average_tracks=suite.average_tracks,
    label_field="label_id",
    derender_metrics=True,
    output_dir=workdir_lib.eval_dir(workdir),
    name=method,
    seed=seed,
  )
  results["train_steps"] = int(trainer.train_steps)
  results["saved_model"] = outputs["saved_model"]
  return results


def check_methods(suite, methods, seeds, output_dir, ctx) -> None:
  """Builds every method's settings once, as its run will: a misspelt binding or a value that a configurable refuses
  fails here, before the progress file records this command's settings and before hours of the first run."""
  for method in sorted({m if m in DERENDERERS else report.UNSUP3D for m in methods}):  # baselines: Unsup3D's budget
    _parse_method_config(suite, method, ctx)
    trainer_lib.check_configuration()
    _build_trainer(run_workdir(output_dir, suite.name, method, seeds[0]), seeds[0], ctx)  # builds, creates nothing
  gin.clear_config()


def _baseline_budget(suite, seed, workdir, ctx):
  """The Unsup3D run's (train_steps, global_batch_size) under the same gin stack and flags: the baselines' budget."""
  _parse_method_config(suite, report.UNSUP3D, ctx)
  return _train_steps(ctx), int(gin.query_parameter("Trainer.global_batch_size"))


def _score_baseline(method, embed, seed, workdir, ctx):
  """Clusters a baseline's features of the labelled test split as the de-renderers' are (Ward, k = classes)."""
  images, labels, groups = ctx["eval_split"]()
  return evaluate_lib.evaluate_features(
    {method: embed(images)},
    labels,
    group_ids=groups,
    method="ward",
    seed=seed,
    output_dir=workdir_lib.eval_dir(workdir),
    name=method,
  )


def _run_vqvae(suite, seed, workdir, ctx):
  steps, batch_size = _baseline_budget(suite, seed, workdir, ctx)
  steps = int(ctx["vqvae_steps"] or steps)
  dataset = input_pipeline.make_dataset(ctx["train_data_dir"], "train", batch_size, training=True, seed=seed)
  model, history = vqvae.train_vqvae(dataset, steps, seed=seed, log_every=max(1, steps // 10), progress=ctx["progress"])
  vqvae.save_vqvae(model, os.path.join(workdir, "vqvae.weights.h5"))
  results = _score_baseline("vq_vae", lambda images: vqvae.embed(model, images), seed, workdir, ctx)
  results.update(
    train_steps=steps,
    batch_size=batch_size,
    final_loss={k: history[k][-1] for k in ("loss", "recon_loss", "vq_loss", "perplexity")},
  )
  return results


def _run_pca(suite, seed, workdir, ctx):
  del suite
  train, _, _ = load_images(ctx["train_data_dir"], "train", max_images=ctx["pca_max_images"])
  downsample = 2
  dim = (train.shape[1] // downsample) * (train.shape[2] // downsample) * 3
  components = min(int(ctx["pca_components"]), train.shape[0], dim)
  if components < ctx["pca_components"]:
    logger.warning(
      "pixels_pca: %d components instead of %d (only %d training images)",
      components,
      ctx["pca_components"],
      train.shape[0],
    )
  state = pixels_pca.fit_pca(train, n_components=components, seed=seed, downsample=downsample)
  pixels_pca.save_pca(state, os.path.join(workdir, "pca.npz"))
  results = _score_baseline("pixels_pca", lambda images: pixels_pca.embed_pca(state, images), seed, workdir, ctx)
  results.update(
    n_components=components,
    n_train_images=int(train.shape[0]),
    explained_variance=float(np.sum(state.explained_variance_ratio)),
  )
  return results


def take_over_run(source: str, destination: str) -> bool:
  """Copies a finished run's work dir to where run_suite would train it (nothing at `source` changes); False when
  `destination` exists already (a run of this folder's own, never overwritten). The copy is made beside it and
  renamed into place, so a kill during the copy leaves no half-copied run for the variant to resume from."""
  if os.path.exists(destination):
    return False
  parent, name = os.path.split(destination)
  prefix = f".{name}.pdr_tf-copy-"  # a name only this function makes
  os.makedirs(parent, exist_ok=True)
  for left in os.listdir(parent):
    if left.startswith(prefix):  # an interrupted copy of this function's own
      shutil.rmtree(os.path.join(parent, left))
  partial = os.path.join(parent, prefix + uuid.uuid4().hex[:8])
  shutil.copytree(source, partial)
  os.replace(partial, destination)
  return True


# ---------------------------------------------------------------------------------------------------- driver
def run_suite(
  suite_name: str,
  seeds: Sequence[int] = (0, 1, 2),
  output_dir: str = "runs/reproduce",
  preset: str = "none",
  methods: Sequence[str] = METHODS,
  gin_files: Sequence[str] = (),
  gin_params: Sequence[str] = (),
  train_steps: Optional[int] = None,
  train_data_dir: Optional[str] = None,
  eval_data_dir: Optional[str] = None,
  vqvae_steps: Optional[int] = None,
  pca_components: int = PCA_COMPONENTS,
  pca_max_images: int = PCA_MAX_IMAGES,
  progress: bool = True,
  command: str = "",
  take_over: Optional[Dict[Tuple[str, int], str]] = None,
):
  """Trains and evaluates every method of a suite for every seed and writes the Table 1 files.

  Args:
    suite_name: "cars" or "faces".
    seeds: one run of every method per seed (Trainer.seed = seed).
    output_dir: runs go to <output_dir>/<suite>/<method>/seed<k>, the table to <output_dir>/<suite>/.
    preset: a PRESETS key: "none" (the suite's gin files), "quick" (gin/quick.gin and QUICK_TRAIN_STEPS steps: a
      CPU demo) or "cpu" (gin/cpu.gin: the longer CPU preset).
    methods: subset of METHODS to run.
    gin_files: extra gin files layered after the suite's and the preset's (its file and its step count).
    gin_params: extra gin bindings, applied after the files (e.g. "LooccConfig.weight = 0.1"; "VQVAE.hidden = 32").
    train_steps: overrides Trainer.train_steps (and hence the VQ-VAE's steps).
    train_data_dir, eval_data_dir: converted TFRecords; by default the suite's synthetic worlds, generated when
      missing. A given folder must already hold data.
    vqvae_steps: VQ-VAE optimizer steps; default the de-renderers' Trainer.train_steps.
    pca_components: PCA dimensions (capped by the number of training images).
    pca_max_images: training images the PCA is fitted on, at most.
    progress: progress bars.
    command: the command line, recorded in the outputs.
    take_over: (method, seed) -> the work dir of a finished run of the same settings elsewhere (the ablation's
      --reuse_dir), copied into this folder (`take_over_run`) instead of training it; only once this folder's
      progress file has accepted the settings, so a folder of other settings never receives a copy.

  Returns:
    dict with per_seed (method -> list of summaries), table (markdown str), paths (markdown, json) and skipped
    (the (method, seed) runs found finished in the progress file and not run again).
  """
  suite = get_suite(suite_name)
  get_preset(preset)
  unknown = [m for m in methods if m not in METHODS]
  if unknown or not methods:
    raise ValueError(f"unknown method(s) {unknown or methods}; choose from {', '.join(METHODS)}")
  seeds = [int(s) for s in seeds]
  if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
    raise ValueError(f"seeds must be a non-empty list of distinct non-negative integers, got {seeds}")
  for name, value in (("vqvae_steps", vqvae_steps), ("pca_components", pca_components)):
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
      raise ValueError(f"{name} must be a positive integer, got {value!r}")
  for path in gin_files:
    if not os.path.isfile(path):
      raise ValueError(f"gin file {path!r} does not exist")
  suite_dir = os.path.join(output_dir, suite.name)
  table1.check_table_writable(suite_dir)  # before the data and the runs, not after them
  os.makedirs(suite_dir, exist_ok=True)
  # One command per suite folder: two would each rewrite the progress file from their own copy of it.
  with locks.FolderLock(lock_path(output_dir, suite.name), f"pdr_tf.reproduce --suite {suite.name} -> {suite_dir}"):
    train_world = None if train_data_dir else suite.train_world
    train_data_dir = train_data_dir or suite.train_data_dir
    if train_world:
      datasets.ensure_synthetic(train_world, train_data_dir, progress=progress)
    if eval_data_dir is None:
      eval_data_dir = datasets.ensure_synthetic(suite.eval_world, suite.eval_data_dir, progress=progress)
    input_pipeline.list_shards(train_data_dir, "train")
    check_eval_split(suite, eval_data_dir)
    cache = {}

    def eval_split():  # the labelled test images, read once for every baseline run
      if "split" not in cache:
        cache["split"] = _eval_split(suite, eval_data_dir)
      return cache["split"]

    ctx = {
      "preset": preset,
      "gin_files": list(gin_files),
      "gin_params": list(gin_params),
      "train_steps": train_steps,
      "train_data_dir": train_data_dir,
      "train_world": train_world,
      "eval_data_dir": eval_data_dir,
      "vqvae_steps": vqvae_steps,
      "pca_components": pca_components,
      "pca_max_images": pca_max_images,
      "progress": progress,
      "eval_split": eval_split,
    }
    settings = run_settings(
      suite,
      preset,
      gin_files,
      gin_params,
      train_steps,
      train_data_dir,
      eval_data_dir,
      vqvae_steps,
      pca_components,
      pca_max_images,
    )
    config = dict(
      settings,
      seeds=seeds,
      methods=list(methods),
      command=command or f"run_suite({suite_name!r}, ...)",
      machine=f"{platform.node()} ({platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()})",
      date=datetime.datetime.now().isoformat(timespec="seconds"),
    )
    per_seed = {m: [] for m in methods}
    jobs = [(m, s) for s in seeds for m in methods]
    check_methods(suite, methods, seeds, output_dir, ctx)
    progress_file = open_progress(output_dir, suite, settings, jobs)
    skipped = []
    bar = tqdm(jobs, desc=f"reproduce {suite.name}", unit="run", disable=not progress)
    for method, seed in bar:
      bar.set_postfix(method=method, seed=seed)
      summary = progress_file.finished(method, seed)
      if summary is not None:
        logger.info("%s seed %d: finished before (%s), not run again", method, seed, progress_file.path)
        per_seed[method].append(summary)
        skipped.append((method, seed))
        continue
      workdir = run_workdir(output_dir, suite.name, method, seed)
      source = (take_over or {}).get((method, seed))
      taken = bool(source) and take_over_run(source, workdir)
      if taken:
        logger.info("%s seed %d: the finished run %s taken over (copied to %s)", method, seed, source, workdir)
      # A de-renderer resumed from a checkpoint: its seconds cover only what was left (the time estimate leaves it out).
      resumed = method in DERENDERERS and workdir_lib.latest_checkpoint(workdir) is not None
      if resumed and not taken:
        logger.warning(
          "%s holds checkpoints that %s does not record as finished: this run resumes from them, so they must come "
          "from the same settings (else use another --output_dir)",
          workdir,
          progress_file.path,
        )
      os.makedirs(workdir, exist_ok=True)
      logger.info("=== %s suite: %s, seed %d -> %s", suite.name, method, seed, workdir)
      progress_file.start(method, seed)
      tick = time.monotonic()
      if method in DERENDERERS:
        results = _run_derenderer(suite, method, seed, workdir, ctx)
      elif method == "vq_vae":
        results = _run_vqvae(suite, seed, workdir, ctx)
      else:
        results = _run_pca(suite, seed, workdir, ctx)
      results.update(seed=seed, seconds=round(time.monotonic() - tick, 1), workdir=workdir, resumed=resumed)
      summary = report.jsonable(table1.per_seed_summary(results))  # as a re-run reads it back from progress.json
      per_seed[method].append(summary)
      progress_file.record(method, seed, summary)
      logger.info("%s seed %d: %s (%.0f s)", method, seed, table1.summary_line(summary), results["seconds"])
      done, total = progress_file.counts()
      left = progress_file.seconds_left()
      logger.info(
        "%d of %d runs finished%s",
        done,
        total,
        f"; roughly {left / 60:.0f} min left (a rough estimate from the finished runs' times)" if left else "",
      )
      # The table holds every finished run of the folder, earlier commands' too; partial tables survive a kill.
      table1.write_table(suite, progress_file.recorded(METHODS), config, suite_dir)
    bar.close()
    paths, table = table1.write_table(suite, progress_file.recorded(METHODS), config, suite_dir)
    return {"per_seed": per_seed, "table": table, "paths": paths, "skipped": skipped}


def run_reporting_errors(log, fn, *args, **kwargs):
  """(0, fn(*args, **kwargs)), or the exit code of a command-line entry point and None after logging the error to
  `log`: 2 for a bad gin configuration, 1 for bad data, settings or a diverging run."""
  try:
    return 0, fn(*args, **kwargs)
  except gin_config.GinConfigError as e:
    log.error("%s", cli.error_text(e))
    return 2, None
  except (
    ValueError,
    FileNotFoundError,
    FileExistsError,
    NotADirectoryError,
    OSError,  # an unwritable --output_dir, a full disk
    datasets.ConversionError,
    trainer_lib.NonFiniteLossError,
    input_pipeline.CorruptDataError,
    locks.LockHeldError,
    kernel_build.KernelBuildError,
  ) as e:  # bad data, settings or folders, a failed conversion, a diverging run, a run already going, no kernel
    log.error("%s", cli.error_text(e))
    return 1, None


def make_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
    prog="python -m pdr_tf.reproduce", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
  )
  parser.add_argument("--suite", required=True, help="cars or faces")
  parser.add_argument("--seeds", type=int, default=3, help="number of seeds N (default 3)")
  parser.add_argument(
    "--first_seed", type=int, default=0, help="first seed (default 0): seeds run as first_seed..first_seed+N-1"
  )
  parser.add_argument(
    "--preset",
    default=None,
    help="training budget for every method: none (the suite's gin files: paper-size models, for GPUs; the default), "
    f"quick (gin/quick.gin and {QUICK_TRAIN_STEPS} steps: a CPU demo) or cpu (gin/cpu.gin: the longer CPU preset, "
    "15-20 minutes per de-renderer on 2 cores)",
  )
  parser.add_argument("--quick", action="store_true", help="the same as --preset quick")
  parser.add_argument("--output_dir", default="runs/reproduce", help="default runs/reproduce")
  parser.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated subset of {','.join(METHODS)}")
  parser.add_argument(
    "--gin_file",
    action="append",
    default=[],
    help="extra gin file layered after the suite's and the preset's (repeatable), e.g. gin/debug.gin (its "
    "Trainer.train_steps wins over a preset's step count)",
  )
  parser.add_argument(
    "--gin_param",
    action="append",
    default=[],
    help='gin binding applied to every model (repeatable), e.g. "LooccConfig.weight = 0.1"',
  )
  parser.add_argument("--train_steps", type=int, default=None, help="overrides Trainer.train_steps (all methods)")
  parser.add_argument("--train_data_dir", default=None, help="training TFRecords (default: the suite's world)")
  parser.add_argument("--eval_data_dir", default=None, help="evaluation TFRecords (default: the suite's world)")
  parser.add_argument("--vqvae_steps", type=int, default=None, help="VQ-VAE steps (default: Trainer.train_steps)")
  parser.add_argument("--pca_components", type=int, default=PCA_COMPONENTS, help="PCA dimensions (default 64)")
  parser.add_argument("--no_progress", action="store_true", help="no progress bars")
  cli.add_log_level(parser)
  return parser


def main(argv=None) -> int:
  args = make_parser().parse_args(argv)
  cli.setup_logging(args.log_level)
  if args.suite not in SUITES:
    logger.error("unknown suite %r; choose one of %s", args.suite, ", ".join(SUITES))
    return 2
  if args.quick and args.preset not in (None, "quick"):
    logger.error("--quick is --preset quick; it cannot be combined with --preset %s", args.preset)
    return 2
  preset = "quick" if args.quick else (args.preset or "none")
  if preset not in PRESETS:
    logger.error("--preset: unknown preset %r; choose one of %s", preset, ", ".join(PRESETS))
    return 2
  positive = {"--seeds": args.seeds, "--train_steps": args.train_steps, "--vqvae_steps": args.vqvae_steps}
  positive["--pca_components"] = args.pca_components
  bad = [f"{flag} {value}" for flag, value in positive.items() if value is not None and value < 1]
  if bad or args.first_seed < 0:
    logger.error("%s must be positive (--first_seed non-negative)", ", ".join(bad) or f"--first_seed {args.first_seed}")
    return 2
  methods = [m.strip() for m in args.methods.split(",") if m.strip()]
  unknown = [m for m in methods if m not in METHODS]
  if unknown or not methods:
    logger.error("--methods: unknown method(s) %s; choose from %s", unknown or "(none given)", ", ".join(METHODS))
    return 2
  command = "python -m pdr_tf.reproduce " + " ".join(sys.argv[1:] if argv is None else argv)
  code, out = run_reporting_errors(
    logger,
    run_suite,
    args.suite,
    seeds=range(args.first_seed, args.first_seed + args.seeds),
    output_dir=args.output_dir,
    preset=preset,
    methods=methods,
    gin_files=args.gin_file,
    gin_params=args.gin_param,
    train_steps=args.train_steps,
    train_data_dir=args.train_data_dir,
    eval_data_dir=args.eval_data_dir,
    vqvae_steps=args.vqvae_steps,
    pca_components=args.pca_components,
    progress=not args.no_progress,
    command=command,
  )
  if code:
    return code
  print(out["table"])
  logger.info(
    "Done. Table: %s (markdown), %s (JSON); runs under %s",
    out["paths"]["markdown"],
    out["paths"]["json"],
    os.path.join(args.output_dir, args.suite),
  )
  return 0


if __name__ == "__main__":
  sys.exit(main())
