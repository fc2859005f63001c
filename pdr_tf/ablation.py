"""LOOCC ablation: python -m pdr_tf.ablation --suite {cars,faces} [--preset cpu] [--seeds 1] [--variants a,b]

Why does (or doesn't) LOOCC improve the clustering? Trains the suite's LOOCC method (cars: light + view, faces:
light, as in the paper's best rows) as released and with one change at a time, and Unsup3D (LOOCC off) as the
reference of the same seeds and length, each through `pdr_tf.reproduce` and in its own folder
<output_dir>/<suite>/<variant>/, so every variant resumes after a kill and skips its finished runs. Then it clusters
the reference's and the released LOOCC's trained models on four feature sets (FEATURE_SETS; no training), and writes
<output_dir>/<suite>/ablation.md and ablation.json: per variant the training steps, cluster accuracy and F1, its
per-seed differences from Unsup3D and from the released LOOCC of the same length, the de-rendering ratios (model /
trivial) and the mean PCC. A variant whose loss (or weights) turns non-finite is reported as failed; the others still
run.

Variants (--variants, comma-separated; default all; the Unsup3D and released LOOCC runs each is compared with are
added):
"""

import argparse
import dataclasses
import datetime
import json
import logging
import os
import platform
import sys
from typing import Dict, List, Optional, Sequence, Tuple

from pdr_tf import cli
from pdr_tf import evaluate as evaluate_lib
from pdr_tf import export
from pdr_tf import reproduce
from pdr_tf.data import formats
from pdr_tf.data import locks
from pdr_tf.evaluation import ablation_report
from pdr_tf.evaluation import output_files
from pdr_tf.evaluation import report
from pdr_tf.evaluation import reproduce_progress
from pdr_tf.evaluation import table1
from pdr_tf.training import trainer as trainer_lib
from pdr_tf.training import workdir as workdir_lib

logger = logging.getLogger("pdr_tf.ablation")

LOOCC_METHOD = {"cars": report.LOOCC_LIGHT_VIEW, "faces": report.LOOCC_LIGHT}  # the paper's better LOOCC row per suite
REFERENCE = report.UNSUP3D
RELEASED = "released"
FEATURE_SETS = ("depth_albedo", "all", "depth", "albedo")  # clustered for the reference and the released LOOCC
FEATURE_SETS_FILE = "feature_sets.json"  # in a run's eval/ folder: its accuracies per feature set
FAILURES_FILENAME = "failed_variants.json"  # in <output_dir>/<suite>/: {variant: why it stopped}, across commands
LOCK_FILENAME = ".pdr_tf_ablation.lock"  # in <output_dir>/<suite>/ while a command runs there


@dataclasses.dataclass(frozen=True)
class Variant:
  """One ablation run per seed: the suite's LOOCC method (or Unsup3D) with gin bindings on top of the preset.

  steps_factor scales the base training length (--train_steps, else the preset's); a variant is compared with the
  Unsup3D variant and the released LOOCC variant of the same factor (`reference_of`, `released_of`)."""

  name: str
  what: str
  gin_params: Tuple[str, ...] = ()
  steps_factor: float = 1.0
  unsup3d: bool = False  # LOOCC off: a reference


VARIANTS = (
  Variant(REFERENCE, "LOOCC off (Unsup3D): the reference", unsup3d=True),
  Variant(
    RELEASED,
    "LOOCC as released: SupCon scaling 0.5/0.07, λ 0.01, τ 0.5, unclipped light noise, gradient through the re-render",
  ),
  Variant("weight_x10", "λ 0.1", ("LooccConfig.weight = 0.1",)),
  Variant("weight_x0.1", "λ 0.001", ("LooccConfig.weight = 0.001",)),
  Variant(
    "plain_ntxent",
    "the NT-Xent mean without the SupCon factor 0.5/0.07: the loss's effective weight 0.01 instead of 0.071",
    ("LooccConfig.base_temperature = None",),
  ),
  Variant(
    "temperature_0.1",
    "τ 0.1, the SupCon factor kept at 7.14 (base temperature 0.014)",
    ("LooccConfig.temperature = 0.1", "LooccConfig.base_temperature = 0.014"),
  ),
  Variant(
    "no_render_gradient",
    "x_aug treated as data: no gradient through the re-render",
    ("Objective.backprop_through_render = False",),
  ),
  Variant(
    "clipped_light_noise",
    "light noise clipped to the model's ranges, on lx, ly only",
    ("LooccConfig.light_noise = 'clipped'",),
  ),
  Variant(
    "perturbations_x0.5",
    "every perturbation half as wide (the view's only where LOOCC perturbs the view: cars)",
    (
      "LooccConfig.ka_delta = 0.25",
      "LooccConfig.kd_delta = 0.25",
      "LooccConfig.light_dir_delta = 0.19634954",
      "LooccConfig.pitch_delta = 0.09817477",
      "LooccConfig.yaw_delta = 0.19634954",
    ),
  ),
  Variant(
    "perturbations_x2",
    "every perturbation twice as wide (the view's only where LOOCC perturbs the view: cars)",
    (
      "LooccConfig.ka_delta = 1.0",
      "LooccConfig.kd_delta = 1.0",
      "LooccConfig.light_dir_delta = 0.78539816",
      "LooccConfig.pitch_delta = 0.39269908",
      "LooccConfig.yaw_delta = 0.78539816",
    ),
  ),
  Variant(
    "unsup3d_half_length",
    "LOOCC off, half the training steps: the reference of half_length",
    unsup3d=True,
    steps_factor=0.5,
  ),
  Variant("half_length", "LOOCC as released, half the training steps", steps_factor=0.5),
)
VARIANT_NAMES = tuple(v.name for v in VARIANTS)
if __doc__:  # None under python -OO
  __doc__ += "\n" + "\n".join(f"  {v.name:22s}{v.what}" for v in VARIANTS)


def get_variants(names: Optional[Sequence[str]] = None) -> List[Variant]:
  """The named variants in VARIANTS order, with the Unsup3D and released LOOCC variants each is compared with;
  ValueError naming unknown ones."""
  if names is None:
    return list(VARIANTS)
  unknown = [n for n in names if n not in VARIANT_NAMES]
  if unknown or not names:
    raise ValueError(f"unknown variant(s) {unknown or '(none given)'}; choose from {', '.join(VARIANT_NAMES)}")
  wanted = set(names)
  for variant in VARIANTS:
    if variant.name in wanted:
      wanted |= {v.name for v in (reference_of(variant), released_of(variant)) if v is not None}
  return [v for v in VARIANTS if v.name in wanted]


def reference_of(variant: Variant) -> Optional[Variant]:
  """The Unsup3D variant trained as long as `variant` (None for a reference itself)."""
  if variant.unsup3d:
    return None
  for candidate in VARIANTS:
    if candidate.unsup3d and candidate.steps_factor == variant.steps_factor:
      return candidate
  raise ValueError(f"no Unsup3D reference with steps_factor {variant.steps_factor} for {variant.name}")


def released_of(variant: Variant) -> Optional[Variant]:
  """The released LOOCC variant (no bindings) trained as long as `variant`; None for it and for the references."""
  if variant.unsup3d or not variant.gin_params:
    return None
  for candidate in VARIANTS:
    if not candidate.unsup3d and not candidate.gin_params and candidate.steps_factor == variant.steps_factor:
      return candidate
  return None


def _steps(base_steps: int, variant: Variant) -> int:
  return max(1, int(round(base_steps * variant.steps_factor)))


def _preset_steps(suite, preset, gin_files, gin_params, train_steps) -> int:
  """The training length the reproduction would use under these settings (before a variant's factor)."""
  if train_steps is not None:
    return int(train_steps)
  ctx = {"preset": preset, "gin_files": list(gin_files), "gin_params": list(gin_params), "train_steps": None}
  steps, _ = reproduce._baseline_budget(suite, 0, None, ctx)
  return steps


def cluster_feature_sets(features, labels, group_ids=None, seed=0) -> Dict[str, float]:
  """Cluster accuracy of the same features on every FEATURE_SETS entry (Ward, k = classes)."""
  return {
    feature_set: float(
      evaluate_lib.evaluate_features(features, labels, group_ids=group_ids, feature_set=feature_set, seed=seed)[
        "accuracy"
      ]
    )
    for feature_set in FEATURE_SETS
  }


def _feature_accuracies(workdir, data_dir, suite, seed) -> Dict[str, float]:
  """Clusters one trained de-renderer's test features on every FEATURE_SETS entry (one embedding pass), cached in
  <workdir>/eval/FEATURE_SETS_FILE for the same data folder and SavedModel (an unreadable cache is computed again;
  the file is written through `output_files`, so a file of the user's with that name is never replaced)."""
  eval_dir = workdir_lib.eval_dir(workdir)
  resolved = export.resolve_saved_model_dir(workdir_lib.export(workdir))
  key = {"data_dir": os.path.abspath(data_dir), "saved_model_dir": os.path.abspath(resolved)}
  cache = os.path.join(eval_dir, FEATURE_SETS_FILE)
  try:
    with open(cache, encoding="utf-8") as f:
      cached = json.load(f)
    # A cache from before the SavedModel was part of the key (2026-12-07) holds only the data folder.
    same = (
      cached.get("data_dir") == key["data_dir"]
      and cached.get("saved_model_dir", key["saved_model_dir"]) == key["saved_model_dir"]
    )
    if same and set(cached.get("accuracy", {})) == set(FEATURE_SETS):
      return cached["accuracy"]
  except FileNotFoundError:
    pass
  except (OSError, ValueError, AttributeError) as e:  # cut short by a kill, or not ours: computed again
    logger.warning("%s is unreadable (%s): the feature sets are clustered again", cache, e)
  loaded, resolved = export.load_export(resolved, signatures=("embed_images",))
  features, labels, tracks, _, _ = evaluate_lib.embed_dataset(
    loaded,
    data_dir,
    formats.EVALUATION_SPLIT,
    label_field="label_id",
    derender_metrics_on=False,
    saved_model_dir=resolved,
  )
  accuracy = cluster_feature_sets(features, labels, tracks if suite.average_tracks else None, seed)
  text = json.dumps(dict(key, accuracy=accuracy), indent=1) + "\n"
  output_files.write_text(eval_dir, FEATURE_SETS_FILE, text, table1.OUTPUT_DIR_HINT)
  return accuracy


def variant_workdir(suite_dir: str, suite_name: str, variant: str, method: str, seed: int) -> str:
  """Where a variant's run of one seed trains: a reproduce output folder per variant."""
  return reproduce.run_workdir(os.path.join(suite_dir, variant), suite_name, method, seed)


def reusable_runs(
  reuse_dir: str,
  suite,
  methods: Sequence[str],
  seeds: Sequence[int],
  preset: str,
  gin_files: Sequence[str],
  gin_params: Sequence[str],
  steps: int,
  train_data_dir: str,
  eval_data_dir: str,
) -> Dict[Tuple[str, int], str]:
  """The finished de-renderer runs of a `pdr_tf.reproduce` output folder that an ablation variant without bindings
  may take over: (method, seed) -> work dir, for `methods` and `seeds` trained with the same preset, gin files and
  bindings, length, data and gin file contents (a seed the folder lacks is left out).

  Raises:
    ValueError: the folder has no readable progress file of `suite`, or it records other settings (named).
  """
  path = reproduce.progress_path(reuse_dir, suite.name)
  try:
    with open(path, encoding="utf-8") as f:
      data = json.load(f)
    recorded, runs = data["settings"], data["runs"]
  except (OSError, ValueError, KeyError, TypeError) as e:
    raise ValueError(f"--reuse_dir {reuse_dir}: no readable reproduce progress file {path} ({e})") from e
  recorded_steps = recorded.get("train_steps")
  if recorded_steps is None:  # the preset's own length
    recorded_steps = _preset_steps(
      suite, recorded.get("preset"), recorded.get("gin_files") or [], recorded.get("gin_params") or [], None
    )
  digest_now = reproduce._gin_digest(suite, preset, gin_files)  # pylint: disable=protected-access
  digest_there = recorded.get("gin_digest") if isinstance(recorded.get("gin_digest"), dict) else {}
  checks = {
    "preset": recorded.get("preset") == preset,
    "gin_files": list(recorded.get("gin_files") or []) == list(gin_files),
    "gin_params": list(recorded.get("gin_params") or []) == list(gin_params),
    "train_steps": int(recorded_steps) == int(steps),
    "train_data_dir": reproduce.same_folder(recorded.get("train_data_dir"), train_data_dir),
    "eval_data_dir": reproduce.same_folder(recorded.get("eval_data_dir"), eval_data_dir),
  }
  checks.update({f"gin_digest[{m}]": digest_there.get(m) == digest_now[m] for m in methods})
  differ = [key for key, same in checks.items() if not same]
  if differ:
    raise ValueError(
      f"--reuse_dir {reuse_dir}: {path} records runs made with other settings than this ablation's "
      f"({', '.join(differ)} differ), so its runs cannot stand in for the ablation's reference and released LOOCC"
    )
  found = {}
  for method in methods:
    for seed in seeds:
      workdir = reproduce.run_workdir(reuse_dir, suite.name, method, seed)
      entry = runs.get(reproduce_progress.run_key(method, seed)) or {}
      if entry.get("summary") and os.path.isdir(workdir_lib.export(workdir)):
        found[(method, seed)] = workdir
  return found


def _read_failures(suite_dir: str) -> Dict[str, str]:
  """The variants whose training stopped on a non-finite loss or weights, as recorded by earlier commands
  (FAILURES_FILENAME: {variant: why}); {} when none did."""
  path = os.path.join(suite_dir, FAILURES_FILENAME)
  if not os.path.exists(path):
    return {}
  try:
    with open(path, encoding="utf-8") as f:
      failures = json.load(f)
    if not isinstance(failures, dict) or not all(isinstance(v, str) for v in failures.values()):
      raise ValueError("not a {variant: reason} object")
  except (OSError, ValueError) as e:
    raise ValueError(f"{path} is not the ablation's record of failed variants ({e}); move it away") from e
  return failures


def _write_failures(suite_dir: str, failures: Dict[str, str]) -> None:
  output_files.write_text(
    suite_dir,
    FAILURES_FILENAME,
    json.dumps(dict(sorted(failures.items())), indent=1) + "\n",
    table1.OUTPUT_DIR_HINT,
  )


def _table(base_steps: int, variants: Sequence[Variant]) -> List[dict]:
  """The report's description of each variant (ablation_report.variant_rows' `variants`)."""
  return [
    {
      "name": v.name,
      "what": v.what,
      "steps": _steps(base_steps, v),
      "reference": getattr(reference_of(v), "name", None),
      "released": getattr(released_of(v), "name", None),
    }
    for v in variants
  ]


def recorded_variants(
  suite,
  suite_dir: str,
  base_steps: int,
  preset: str,
  gin_files: Sequence[str],
  gin_params: Sequence[str],
  train_data_dir: Optional[str],
  eval_data_dir: Optional[str],
) -> Tuple[Dict[str, List[dict]], Dict[str, str]]:
  """The finished runs recorded in every variant's folder under <suite_dir>, whichever command trained them.

  A variant's folder counts when its progress file records the settings this ablation gives that variant (preset,
  gin files, the common and the variant's own bindings, length, data, gin file contents); one with other settings
  is left out, with the reason, rather than mixed into the comparison.

  Returns:
    (variant name -> per-seed summaries in seed order, in VARIANTS order; variant name -> why its folder was left
    out).
  """
  loocc = LOOCC_METHOD[suite.name]
  recorded, left_out = {}, {}
  for variant in VARIANTS:
    folder = os.path.join(suite_dir, variant.name)
    if not os.path.isfile(reproduce.progress_path(folder, suite.name)):
      continue
    method = REFERENCE if variant.unsup3d else loocc
    settings = reproduce.run_settings(
      suite,
      preset,
      gin_files,
      list(gin_params) + list(variant.gin_params),
      _steps(base_steps, variant),
      train_data_dir,
      eval_data_dir,
    )
    try:
      runs = reproduce.open_progress(folder, suite, settings).recorded([method]).get(method)
    except ValueError as e:
      logger.warning("variant %s left out of the report: %s", variant.name, e)
      left_out[variant.name] = str(e)
      continue
    if runs:
      recorded[variant.name] = runs
  return recorded, left_out


def run_ablation(
  suite_name: str,
  seeds: Sequence[int] = (0,),
  output_dir: str = "runs/ablation",
  preset: str = "cpu",
  variants: Optional[Sequence[str]] = None,
  gin_files: Sequence[str] = (),
  gin_params: Sequence[str] = (),
  train_steps: Optional[int] = None,
  train_data_dir: Optional[str] = None,
  eval_data_dir: Optional[str] = None,
  feature_sets: bool = True,
  progress: bool = True,
  command: str = "",
  reuse_dir: Optional[str] = None,
):
  """Runs the variants (each through `reproduce.run_suite`) and writes the ablation report.

  Args:
    suite_name: "cars" or "faces".
    seeds: one run of every variant per seed.
    output_dir: variant v's runs go to <output_dir>/<suite>/<v>/<suite>/<method>/seed<k>; the report to
      <output_dir>/<suite>/.
    preset: a reproduce.PRESETS key ("cpu" by default).
    variants: VARIANTS names (the Unsup3D and released LOOCC variants they are compared with are added); None for
      all.
    gin_files, gin_params: layered under every variant's own bindings.
    train_steps: the length before a variant's steps_factor (default: the preset's).
    train_data_dir, eval_data_dir: as in `reproduce.run_suite`.
    feature_sets: also cluster the reference and the released LOOCC on every FEATURE_SETS entry.
    progress: progress bars.
    command: the command line, recorded in the outputs.
    reuse_dir: a `pdr_tf.reproduce` --output_dir whose finished Unsup3D and LOOCC runs (same preset, length, data,
      gin files and bindings) the Unsup3D and released variants of full length take over instead of training them
      again: each run's folder is copied into the variant's, which then only evaluates it. Seeds it lacks train.

  Returns:
    dict with rows, feature_rows, per_seed (variant -> summaries), failed (variant -> why it stopped: a
    non-finite loss or weights; the other variants still run) and paths (markdown, json).
  """
  suite = reproduce.get_suite(suite_name)
  chosen = get_variants(variants)
  seeds = [int(s) for s in seeds]
  if not seeds or min(seeds) < 0:
    raise ValueError(f"seeds must be a non-empty list of non-negative integers, got {seeds}")
  suite_dir = os.path.join(output_dir, suite.name)
  ablation_report.check_report_writable(suite_dir)  # a file of the user's stops the command now, not after the runs
  base_steps = _preset_steps(suite, preset, gin_files, gin_params, train_steps)
  loocc = LOOCC_METHOD[suite.name]
  config = {
    "suite": suite.name,
    "seeds": seeds,
    "preset": preset,
    "train_steps": base_steps,
    "variants": [dataclasses.asdict(v) for v in chosen],
    "gin_files": list(gin_files),
    "gin_params": list(gin_params),
    "train_data_dir": train_data_dir,
    "eval_data_dir": eval_data_dir,
    "command": command or f"run_ablation({suite_name!r}, ...)",
    "reuse_dir": reuse_dir,
    "machine": f"{platform.node()} ({platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()})",
    "date": datetime.datetime.now().isoformat(timespec="seconds"),
  }
  chosen_names = {v.name for v in chosen}
  os.makedirs(suite_dir, exist_ok=True)
  # One command per ablation folder: two would each rewrite failed_variants.json and the report from their own copy.
  with locks.FolderLock(os.path.join(suite_dir, LOCK_FILENAME), f"pdr_tf.ablation --suite {suite.name} -> {suite_dir}"):
    failed: Dict[str, str] = _read_failures(suite_dir)  # earlier commands' too: the report holds every variant
    reused = {}
    if reuse_dir:
      reused = reusable_runs(
        reuse_dir,
        suite,
        (REFERENCE, loocc),
        seeds,
        preset,
        gin_files,
        gin_params,
        base_steps,
        train_data_dir or suite.train_data_dir,
        eval_data_dir or suite.eval_data_dir,
      )

    def write(feature_rows=()):
      """Writes the report of every finished run the variants' folders record, earlier commands' too (so a narrower
      later command does not shrink it); returns (per_seed, rows, paths)."""
      per_seed, left_out = recorded_variants(
        suite, suite_dir, base_steps, preset, gin_files, gin_params, train_data_dir, eval_data_dir
      )
      config["earlier_variants"] = [name for name in per_seed if name not in chosen_names]
      config["left_out"] = left_out
      shown = [v for v in VARIANTS if v.name in per_seed or v.name in failed]
      rows = ablation_report.variant_rows(_table(base_steps, shown), per_seed, failed)
      return per_seed, rows, ablation_report.write_report(rows, feature_rows, config, suite_dir)

    for i, variant in enumerate(chosen):
      method = REFERENCE if variant.unsup3d else loocc
      steps = _steps(base_steps, variant)
      plain = variant.steps_factor == 1.0 and not variant.gin_params  # the runs a reproduction may hold
      take_over = {(method, seed): reused[(method, seed)] for seed in seeds if plain and (method, seed) in reused}
      logger.info(
        "=== ablation %d/%d: %s (%s, %d steps): %s", i + 1, len(chosen), variant.name, method, steps, variant.what
      )
      try:
        reproduce.run_suite(
          suite.name,
          seeds=seeds,
          output_dir=os.path.join(suite_dir, variant.name),
          preset=preset,
          methods=[method],
          gin_files=gin_files,
          gin_params=list(gin_params) + list(variant.gin_params),
          train_steps=steps,
          train_data_dir=train_data_dir,
          eval_data_dir=eval_data_dir,
          progress=progress,
          command=f"{config['command']} (variant {variant.name})",
          take_over=take_over,
        )
      except trainer_lib.NonFiniteLossError as e:  # a diverging variant is a finding: record it, go on
        logger.error("variant %s stopped: %s", variant.name, e)
        failed[variant.name] = str(e).splitlines()[0]
        _write_failures(suite_dir, failed)
        write()
        continue
      if failed.pop(variant.name, None) is not None:  # resumed and finished since it failed
        _write_failures(suite_dir, failed)
      write()  # a partial report survives an interruption
    per_seed, _, _ = write()
    by_feature_set = {}
    if feature_sets:
      eval_dir = eval_data_dir or suite.eval_data_dir
      for name in (REFERENCE, RELEASED):
        method = REFERENCE if name == REFERENCE else loocc
        for summary in per_seed.get(name, []):
          workdir = variant_workdir(suite_dir, suite.name, name, method, summary["seed"])
          for feature_set, accuracy in _feature_accuracies(workdir, eval_dir, suite, summary["seed"]).items():
            by_feature_set.setdefault(name, {}).setdefault(feature_set, []).append(accuracy)
    feature_rows = ablation_report.feature_rows(by_feature_set)
    _, rows, paths = write(feature_rows)
    return {"rows": rows, "feature_rows": feature_rows, "per_seed": per_seed, "failed": failed, "paths": paths}


def make_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
    prog="python -m pdr_tf.ablation", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
  )
  parser.add_argument("--suite", required=True, help="cars or faces")
  parser.add_argument("--seeds", type=int, default=1, help="number of seeds N (default 1)")
  parser.add_argument("--first_seed", type=int, default=0, help="first seed (default 0)")
  parser.add_argument("--preset", default="cpu", help="a reproduce preset: none, quick or cpu (default cpu)")
  parser.add_argument("--variants", default=None, help=f"comma-separated subset of {','.join(VARIANT_NAMES)}")
  parser.add_argument("--output_dir", default="runs/ablation", help="default runs/ablation")
  parser.add_argument("--gin_file", action="append", default=[], help="extra gin file under every variant")
  parser.add_argument("--gin_param", action="append", default=[], help="extra gin binding under every variant")
  parser.add_argument("--train_steps", type=int, default=None, help="training length before a variant's factor")
  parser.add_argument("--train_data_dir", default=None, help="training TFRecords (default: the suite's world)")
  parser.add_argument("--eval_data_dir", default=None, help="evaluation TFRecords (default: the suite's world)")
  parser.add_argument(
    "--reuse_dir",
    default=None,
    help="a python -m pdr_tf.reproduce --output_dir of the same preset and data: its finished Unsup3D and LOOCC runs "
    "stand in for the reference and released variants (copied, not trained again)",
  )
  parser.add_argument("--no_feature_sets", action="store_true", help="skip clustering on the other feature sets")
  parser.add_argument("--no_progress", action="store_true", help="no progress bars")
  cli.add_log_level(parser)
  return parser


def main(argv=None) -> int:
  args = make_parser().parse_args(argv)
  cli.setup_logging(args.log_level)
  if args.seeds < 1 or (args.train_steps is not None and args.train_steps < 1) or args.first_seed < 0:
    logger.error("--seeds and --train_steps must be positive, --first_seed non-negative")
    return 2
  try:
    reproduce.get_suite(args.suite)
    reproduce.get_preset(args.preset)
    variants = None if args.variants is None else [v.strip() for v in args.variants.split(",") if v.strip()]
    get_variants(variants)
  except ValueError as e:
    logger.error("%s", e)
    return 2
  command = "python -m pdr_tf.ablation " + " ".join(sys.argv[1:] if argv is None else argv)
  code, out = reproduce.run_reporting_errors(
    logger,
    run_ablation,
    args.suite,
    seeds=range(args.first_seed, args.first_seed + args.seeds),
    output_dir=args.output_dir,
    preset=args.preset,
    variants=variants,
    gin_files=args.gin_file,
    gin_params=args.gin_param,
    train_steps=args.train_steps,
    train_data_dir=args.train_data_dir,
    eval_data_dir=args.eval_data_dir,
    feature_sets=not args.no_feature_sets,
    progress=not args.no_progress,
    command=command,
    reuse_dir=args.reuse_dir,
  )
  if code:
    return code
  with open(out["paths"]["markdown"], encoding="utf-8") as f:
    print(f.read())
  for name, why in out["failed"].items():
    logger.warning("variant %s stopped (%s); its row says so", name, why)
  logger.info("Done. Report: %s (markdown), %s (JSON)", out["paths"]["markdown"], out["paths"]["json"])
  return 0


if __name__ == "__main__":
  sys.exit(main())
