"""Command-line plumbing shared by the Beam jobs: arguments, local-runner defaults, running and the exit code."""

import argparse
import contextlib
import json
import logging
import operator
import os
import re
import shutil
import time
import uuid

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from beam_pipelines import common
from pdr_tf import cli
from pdr_tf.data import feature_spec
from pdr_tf.data import locks

DEFAULT_NUM_WORKERS = 2
DEFAULT_IMAGES_PER_SHARD = 2000

_EPILOG = """\
Any other flag goes to Beam's PipelineOptions untouched. Without --runner the job runs here on the Python
FnApiRunner with --direct_num_workers=<--num_workers> --direct_running_mode=multi_processing (no network).
On Dataflow, for example:
  python -m beam_pipelines.{dataset} --input_dir gs://BUCKET/raw --output_dir gs://BUCKET/tfrecords \\
      --runner=DataflowRunner --project=PROJECT --region=REGION --temp_location=gs://BUCKET/tmp \\
      --setup_file=./setup.py --num_workers=8
Outputs: <output_dir>/<split>.tfrecord-NNNNN-of-MMMMM, manifest.json, rejects.jsonl.
Exit status: 0 when at least one record was written; 1 when nothing could be written, the input is missing or holds
entries the listing would drop, the output folder is refused, or (with --strict) on the first rejected input.
"""


def _int_at_least(text, minimum):
  """An integer flag value (or, in the library form, an int) of at least `minimum`; ArgumentTypeError otherwise."""
  try:
    value = int(text) if isinstance(text, str) else operator.index(text)  # 2.5 is no shard count
  except (TypeError, ValueError):
    raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
  if value < minimum:
    raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
  return value


def _positive_int(text):
  return _int_at_least(text, 1)


def _non_negative_int(text):
  return _int_at_least(text, 0)


_CHECKED_TYPES = (_positive_int, _non_negative_int)  # re-checked on the library form's options (`job_args`)


def make_parser(dataset, description):
  """Argument parser of a job: the common options; callers add dataset options.

  Args:
    dataset: job name as in `python -m beam_pipelines.<dataset>`.
    description: --help text (the job module's docstring).
  """
  parser = argparse.ArgumentParser(
    prog=f"python -m beam_pipelines.{dataset}",
    description=description,
    epilog=_EPILOG.format(dataset=dataset),
    formatter_class=argparse.RawDescriptionHelpFormatter,
    allow_abbrev=False,
  )  # never swallow a Beam flag that starts like one of ours
  parser.add_argument("--input_dir", required=True, help="raw dataset root (local path or gs://...)")
  parser.add_argument("--output_dir", required=True, help="where the TFRecord shards, manifest and rejects go")
  parser.add_argument(
    "--num_workers",
    type=_positive_int,
    default=None,
    help=f"local worker processes (default {DEFAULT_NUM_WORKERS}); also passed to Beam, "
    "where Dataflow reads it as its initial worker count",
  )
  parser.add_argument(
    "--num_shards",
    type=_non_negative_int,
    default=0,
    help="shards per split; 0 picks ceil(images / --images_per_shard)",
  )
  parser.add_argument(
    "--images_per_shard",
    type=_positive_int,
    default=DEFAULT_IMAGES_PER_SHARD,
    help="target records per shard when --num_shards is 0",
  )
  parser.add_argument("--strict", action="store_true", help="fail on the first rejected input")
  parser.add_argument("--overwrite", action="store_true", help="replace a converted dataset already in --output_dir")
  cli.add_log_level(parser)  # an unknown level is a usage error (it was INFO without a word)
  return parser


def job_args(parser, input_dir, output_dir, **options):
  """The arguments of a job called as a library: the parser's defaults, the two folders and `options` by name.

  Args:
    parser: the job's parser (`make_parser` plus the job's own options): the one home of every default.
    input_dir, output_dir: as --input_dir and --output_dir.
    **options: any other option of the parser by its destination name (overwrite=True, num_workers=4, ...).

  Raises:
    TypeError: an option the job does not have.
    ValueError: a value its flag would refuse (num_shards=-3, num_workers=0, ...), naming the option.
  """
  args = parser.parse_args(["--input_dir", str(input_dir), "--output_dir", str(output_dir)])
  unknown = sorted(set(options) - set(vars(args)))
  if unknown:
    raise TypeError(f"{parser.prog} has no option {', '.join(unknown)}; options: {', '.join(sorted(vars(args)))}")
  types = {action.dest: action.type for action in parser._actions}  # pylint: disable=protected-access
  for name, value in options.items():
    if value is not None and types.get(name) in _CHECKED_TYPES:
      try:
        value = types[name](value)
      except argparse.ArgumentTypeError as e:
        raise ValueError(f"{parser.prog}: {name} {e}") from None
    setattr(args, name, value)
  return args


def convert(dataset, parser, build_pipeline, input_dir, output_dir, beam_args=(), **options):
  """A job's library form: parses `options` with the job's parser and runs `build_pipeline` through `run_job`.

  Args:
    dataset: job name.
    parser: the job's parser (`make_parser` plus the job's own options).
    build_pipeline: function(pipeline, input_dir, output_dir, strict, num_shards, images_per_shard, args, **extra)
      of the job, where extra are the job's own options by name (e.g. metadata_csv).
    input_dir, output_dir: as --input_dir and --output_dir.
    beam_args: flags for Beam's PipelineOptions.
    **options: the job's options by name (see `job_args`).

  Returns:
    Exit status: 0 when records were written, 1 otherwise (reason logged).
  """
  args = job_args(parser, input_dir, output_dir, **options)
  common_options = set(vars(make_parser(dataset, "").parse_args(["--input_dir", "-", "--output_dir", "-"])))
  extra = {name: value for name, value in vars(args).items() if name not in common_options}

  def build(pipeline, target):
    build_pipeline(
      pipeline,
      args.input_dir,
      target,
      strict=args.strict,
      num_shards=args.num_shards,
      images_per_shard=args.images_per_shard,
      args=manifest_args(args, beam_args),
      **extra,
    )

  return run_job(dataset, build, args, beam_args)


def main(dataset, parser, build_pipeline, argv=None):
  """A job's command-line form: parses argv (unknown flags go to Beam), sets up logging and calls `convert`."""
  args, beam_args = parser.parse_known_args(argv)
  setup_logging(args.log_level)
  options = vars(args)
  return convert(
    dataset, parser, build_pipeline, options.pop("input_dir"), options.pop("output_dir"), beam_args, **options
  )


def entry_points(dataset, make_job_parser, build_pipeline, what):
  """A job's two public functions, `convert` (library) and `main` (command line), built once here for every job.

  Args:
    dataset: job name (the module name under beam_pipelines).
    make_job_parser: () -> the job's parser (`make_parser` plus its own options).
    build_pipeline: the job's pipeline body (see `convert`).
    what: what the job converts, for the docstring, e.g. "a UTKFace folder".

  Returns:
    (convert(input_dir, output_dir, beam_args=(), **options) -> exit status, main(argv=None) -> exit status).
  """

  def job_convert(input_dir, output_dir, beam_args=(), **options):
    return convert(dataset, make_job_parser(), build_pipeline, input_dir, output_dir, beam_args, **options)

  def job_main(argv=None):
    return main(dataset, make_job_parser(), build_pipeline, argv)

  common_options = set(vars(make_parser(dataset, "").parse_args(["--input_dir", "-", "--output_dir", "-"])))
  job_options = [a.dest for a in make_job_parser()._actions if a.dest not in common_options | {"help"}]  # pylint: disable=protected-access
  options = ", ".join(sorted(common_options - {"input_dir", "output_dir", "log_level"}) + job_options)
  job_convert.__doc__ = (
    f"Converts {what} into TFRecords: the library form of this job (what `main` runs).\n\n"
    f"Options by name: {options}. beam_args go to Beam's PipelineOptions. Returns the exit status (0: records "
    "written)."
  )
  job_main.__doc__ = f"Entry point: python -m beam_pipelines.{dataset} --input_dir DIR --output_dir DIR [Beam flags]."
  job_convert.__name__, job_main.__name__ = "convert", "main"
  return job_convert, job_main


def beam_argv(beam_args, num_workers=None):
  """Beam flags: the user's, untouched, plus local FnApiRunner defaults when no --runner was given.

  Args:
    beam_args: flags our parser did not know.
    num_workers: --num_workers if the user gave it, else None.

  Returns:
    List of flags for PipelineOptions.
  """

  def given(flag):
    return any(a == flag or a.startswith(flag + "=") for a in beam_args)

  out = list(beam_args)
  if num_workers is not None:
    out.append(f"--num_workers={num_workers}")
  if not given("--runner"):
    out.append("--runner=FnApiRunner")
    if not given("--direct_num_workers"):
      out.append(f"--direct_num_workers={num_workers or DEFAULT_NUM_WORKERS}")
    if not given("--direct_running_mode"):
      out.append("--direct_running_mode=multi_processing")
  return out


def manifest_args(args, beam_args):
  """The job's arguments as stored in the manifest (ours by name, Beam's as given)."""
  out = {k: v for k, v in sorted(vars(args).items())}
  out["beam_args"] = list(beam_args)
  return out


def _entries(output_dir):
  """Every file below output_dir, relative to it (local: also empty folders, links to folders and folders that
  cannot be read, each with a trailing "/")."""
  if common.is_local(output_dir):
    found, unreadable = [], []
    for folder, dirs, files in os.walk(output_dir, onerror=unreadable.append):
      rel = os.path.relpath(folder, output_dir)
      found += [os.path.normpath(os.path.join(rel, name)) for name in files]
      # A link to a folder is not walked into, but it is an entry of the user's all the same.
      found += [
        os.path.normpath(os.path.join(rel, name)) + "/" for name in dirs if os.path.islink(os.path.join(folder, name))
      ]
      if not dirs and not files and rel != ".":
        found.append(rel + "/")
    found += [
      os.path.relpath(e.filename, output_dir) + "/" for e in unreadable if e.filename and e.filename != output_dir
    ]
    return sorted(found)
  prefix = output_dir.rstrip("/") + "/"
  return sorted(m.path[len(prefix) :] for m in FileSystems.match([prefix + "**"])[0].metadata_list)


def dataset_files(output_dir):
  """The files of the pdr_tf dataset in output_dir (manifest, rejects, the manifest's shards), or None when the
  folder holds no pdr_tf manifest."""
  try:
    manifest = read_manifest(output_dir)
  except (OSError, ValueError):
    return None
  if not isinstance(manifest, dict) or "schema_version" not in manifest:
    return None
  listed = manifest.get("shards") or {}
  if not isinstance(listed, dict):
    return None
  shards = []
  for split, names in listed.items():
    # Only names a pdr_tf job gives its shards, in this folder: another tool's manifest.json never gets files deleted.
    shard_name = re.compile(rf"{re.escape(str(split))}{re.escape(feature_spec.SHARD_INFIX)}-\d+-of-\d+")
    if not isinstance(names, list) or not all(isinstance(n, str) and shard_name.fullmatch(n) for n in names):
      return None
    shards += names
  return sorted(set(shards) | {feature_spec.MANIFEST_FILENAME, feature_spec.REJECTS_FILENAME})


def check_output_dir(output_dir, overwrite=False):
  """Refuses an output folder that a job must not write into; returns the old dataset's files to replace.

  A job writes only into a folder that does not exist, is empty, or (with `overwrite`) holds nothing but a
  dataset that a pdr_tf job wrote (its manifest.json, rejects.jsonl and the shards the manifest lists). pdr_tf
  never deletes or overwrites files it did not write.

  Returns:
    The relative paths of the previous pdr_tf dataset (empty when there is none).

  Raises:
    ValueError: the folder holds other files, or a dataset and `overwrite` is False.
  """
  if not common.folder_exists(output_dir):
    return []
  if common.is_local(output_dir) and not os.path.isdir(output_dir):
    raise ValueError(f"--output_dir {output_dir} is a file, not a folder; choose a new or empty folder")
  entries = _entries(output_dir)
  if not entries:
    return []
  known = dataset_files(output_dir)
  if known is None:
    raise ValueError(
      f"{output_dir} is not empty ({len(entries)} entries, e.g. {entries[:3]}) and holds no pdr_tf "
      f"dataset (no {feature_spec.MANIFEST_FILENAME}): pdr_tf never deletes or overwrites data it "
      "did not write. Choose a new or empty --output_dir."
    )
  foreign = [e for e in entries if e not in known]
  if foreign:
    raise ValueError(
      f"{output_dir} holds a pdr_tf dataset and {len(foreign)} other entries that pdr_tf did not "
      f"write (e.g. {foreign[:3]}); move them away or choose another --output_dir"
    )
  if not overwrite:
    raise ValueError(
      f"{output_dir} already holds a converted dataset ({len(entries)} files, e.g. "
      f"{entries[0]}); pass --overwrite to replace it or choose another --output_dir"
    )
  return [e for e in entries if e in known]


def _first_rejects(path, count):
  """The first `count` records of a rejects file ({"path", "reason"}), or [] when it cannot be read."""
  try:
    with FileSystems.open(path) as f:
      lines = f.read().decode("utf-8").splitlines()
    return [json.loads(line) for line in lines[:count] if line.strip()]
  except (OSError, ValueError):
    return []


def _sibling(output_dir, tag):
  parent, name = os.path.split(os.path.normpath(os.path.abspath(output_dir)))
  return os.path.join(parent, f".{name}.pdr_tf-{tag}")


def _local_output_dir(output_dir):
  """The real folder a local --output_dir names: a symbolic link is followed, so that the staging folder, the lock
  and the final move are beside the folder itself (on its file system, under one lock whichever path names it).

  Raises:
    ValueError: the folder is a mount point: the staging folder beside it would be on another file system, from
      which the finished dataset cannot be moved into place.
  """
  real = os.path.realpath(output_dir)
  if real != os.path.abspath(output_dir):
    logging.info("--output_dir %s is %s", output_dir, real)
  if os.path.ismount(real):
    raise ValueError(
      f"--output_dir {output_dir} is a mount point: the job stages its dataset beside the folder and could not "
      "move it into place from there; give a folder inside it"
    )
  return real


def _remove_stale_staging(output_dir):
  """Removes staging folders that killed jobs left beside `output_dir` (called under the folder's lock, so no job is
  writing them; a later job with the same pid would otherwise carry their files into its output)."""
  parent, prefix = os.path.split(_sibling(output_dir, "staging-"))
  for name in os.listdir(parent) if os.path.isdir(parent) else []:
    if name.startswith(prefix):
      logging.warning("removing %s, left by a job that was killed", os.path.join(parent, name))
      shutil.rmtree(os.path.join(parent, name), ignore_errors=True)


def lock_path(output_dir):
  """The lock file of a local output folder: a hidden sibling, so that it exists before the folder does."""
  return _sibling(output_dir, "lock")


def read_manifest(output_dir):
  """The manifest dict written by a job."""
  with FileSystems.open(FileSystems.join(output_dir, feature_spec.MANIFEST_FILENAME)) as f:
    return json.loads(f.read().decode("utf-8"))


def _log_counters(result):
  try:
    counters = result.metrics().query(MetricsFilter().with_namespace(common.NAMESPACE))["counters"]
  except Exception:  # some runners do not report metrics; the manifest has the counts anyway
    return
  totals = {}  # a counter of the same name in several steps is reported once, summed
  for counter in counters:
    value = counter.committed if counter.committed is not None else counter.attempted
    totals[counter.key.metric.name] = totals.get(counter.key.metric.name, 0) + (value or 0)
  for name, value in sorted(totals.items()):
    logging.info("counter %s = %s", name, value)


class PublishError(RuntimeError):
  """A finished dataset could not be moved into place; the message names where it is kept (a local staging folder
  renamed aside, or the object-store staging prefix that holds what was not published yet)."""


def run_job(dataset, build, args, beam_args):
  """Builds, runs and checks one conversion job; the shared body of every job's main().

  One output folder, one writer: on the local file system the job holds a lock beside --output_dir (its real folder,
  a symbolic link resolved; a second job on the same folder stops with an error naming the first), writes into a
  hidden staging folder beside it and moves that into place only when everything succeeded, so a failed job leaves
  neither a half-written dataset nor Beam's temporary folders. On object stores (gs://, ...), which have neither
  locks nor folder renames, it writes under a hidden staging prefix beside --output_dir (unique per job) and
  publishes it object by object only when everything succeeded (`_publish_objects`): a failed job, or an
  --overwrite job that writes nothing, leaves the previous dataset as it was there too.

  Args:
    dataset: job name.
    build: function(pipeline, output_dir) adding the job's transforms, writing to output_dir (may raise
      ValueError for bad input).
    args: our parsed arguments (input_dir, output_dir, num_workers, strict, overwrite).
    beam_args: flags for Beam.

  Returns:
    Exit status: 0 when records were written, 1 otherwise (reason logged).
  """
  options = PipelineOptions(beam_argv(beam_args, args.num_workers))
  start = time.time()
  local = common.is_local(args.output_dir)
  runner_name = str(options.view_as(StandardOptions).runner or "")
  on_local_disk = [
    f"--{flag} {getattr(args, flag)}" for flag in ("input_dir", "output_dir") if common.is_local(getattr(args, flag))
  ]
  if runner_name.endswith("DataflowRunner") and on_local_disk:
    logging.error(
      "%s: %s on this machine's disk, which Dataflow's workers cannot read or write: give gs:// paths",
      dataset,
      " and ".join(on_local_disk),
    )
    return 1
  if local:
    try:
      args.output_dir = _local_output_dir(args.output_dir)
    except ValueError as e:
      logging.error("%s: %s", dataset, e)
      return 1
  pipeline = None
  lock = (
    locks.FolderLock(lock_path(args.output_dir), f"beam_pipelines.{dataset} -> {args.output_dir}") if local else None
  )
  try:
    if lock is not None:
      os.makedirs(os.path.dirname(lock.path), exist_ok=True)
      lock.acquire()
    old_files = check_output_dir(args.output_dir, args.overwrite)
    if local:
      _remove_stale_staging(args.output_dir)
      target = _sibling(args.output_dir, f"staging-{os.getpid()}")
    else:
      _warn_other_object_staging(args.output_dir)
      target = object_staging(args.output_dir, uuid.uuid4().hex[:12])
    pipeline = beam.Pipeline(options=options)
    build(pipeline, target)  # lists and checks the inputs first: a bad --input_dir leaves no output behind
  except BaseException as e:  # refused input, or an unexpected error: either way nothing of this job stays behind
    if pipeline is not None:  # never run: Beam removes its local temporary folder only in run()
      shutil.rmtree(pipeline.local_tempdir, ignore_errors=True)
    if lock is not None:
      lock.release()
    if not isinstance(e, (ValueError, locks.LockHeldError)):
      raise
    logging.error("%s: %s", dataset, e)
    return 1
  keep_staging = False
  try:
    with _quiet_beam():
      return _run_and_commit(dataset, pipeline, args, target, old_files, start)
  except PublishError as e:  # the finished dataset, or what was not published of it, is kept: say where
    keep_staging = True
    logging.error("%s: %s", dataset, e)
    return 1
  finally:
    if local and os.path.isdir(target):  # not moved into place: the job failed
      shutil.rmtree(target, ignore_errors=True)
    elif not local and not keep_staging:
      _delete_objects(target)
    if lock is not None:
      lock.release()


def _run_and_commit(dataset, pipeline, args, target, old_files, start):
  if old_files:
    logging.info(
      "--overwrite: the previous dataset in %s (%d files) is replaced when the job succeeds",
      args.output_dir,
      len(old_files),
    )
  logging.info("%s: converting %s -> %s", dataset, args.input_dir, args.output_dir)
  try:
    result = pipeline.run()
    result.wait_until_finish()
  except Exception as e:  # runner errors wrap the worker's exception; report it and exit non-zero
    message = str(e)
    strict = re.search(re.escape(common.STRICT_MARKER) + r" ([^\n'\"]*)", message)
    if strict:
      logging.error("%s: --strict: rejected input %s", dataset, strict.group(1))
    else:
      logging.error("%s: the pipeline failed: %s", dataset, message[-4000:])
    return 1
  _log_counters(result)
  manifest = read_manifest(target)
  logging.info(
    "%s: %d inputs -> %d written %s, %d rejected %s in %.1f s",
    dataset,
    manifest["inputs"],
    manifest["written"],
    manifest["splits"],
    manifest["rejected"],
    manifest["reject_reasons"],
    time.time() - start,
  )
  if manifest["written"] == 0 and old_files:
    # --overwrite replaces a dataset with a better one only: the previous dataset stays, this job's staging goes.
    examples = _first_rejects(FileSystems.join(target, feature_spec.REJECTS_FILENAME), 3)
    logging.error(
      "%s: nothing could be written: all %d inputs were rejected (%s; e.g. %s); the previous dataset in %s was kept",
      dataset,
      manifest["inputs"],
      manifest["reject_reasons"],
      "; ".join(f"{r.get('path')}: {r.get('reason')}" for r in examples) or "none listed",
      args.output_dir,
    )
    return 1
  if common.is_local(args.output_dir):
    _move_into_place(target, args.output_dir, old_files)
  else:
    _publish_objects(target, args.output_dir, old_files)
  if manifest["written"] == 0:
    logging.error(
      "%s: nothing could be written: all %d inputs were rejected; reasons in %s",
      dataset,
      manifest["inputs"],
      FileSystems.join(args.output_dir, feature_spec.REJECTS_FILENAME),
    )
    return 1
  logging.info(
    "%s: outputs in %s (shards %s, %s, %s)",
    dataset,
    args.output_dir,
    feature_spec.shard_pattern("", "<split>"),
    feature_spec.MANIFEST_FILENAME,
    feature_spec.REJECTS_FILENAME,
  )
  return 0


def _move_into_place(staging, output_dir, old_files):
  """Replaces output_dir (absent, empty, or the previous pdr_tf dataset `old_files`) with the staging folder.

  Raises:
    PublishError: another program wrote into output_dir while the job ran (files that are not the previous
      dataset's), or the move failed. output_dir is then left as it is, the finished dataset is kept beside it under
      a name that later jobs leave alone (`.NAME.pdr_tf-kept-<time>-<token>`), and the message names it.
  """
  old = None
  try:
    exists = os.path.isdir(output_dir)
    appeared = [e for e in _entries(output_dir) if e not in old_files] if exists else []
    if appeared:
      raise FileExistsError(f"{len(appeared)} entries appeared there, e.g. {appeared[:3]}")
    if exists:
      old = _sibling(output_dir, f"old-{os.getpid()}")
      os.rename(output_dir, old)
    else:
      os.makedirs(os.path.dirname(os.path.abspath(output_dir)), exist_ok=True)
    os.rename(staging, output_dir)
  except OSError as e:
    kept = _sibling(output_dir, f"kept-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}")
    os.rename(staging, kept)  # out of the way of the next job's clean-up of killed jobs' staging folders
    where = f"the previous output folder was moved to {old}" if old is not None else f"{output_dir} is left as it is"
    raise PublishError(
      f"could not move the finished dataset into {output_dir} ({e}; did another program write there during the "
      f"job?): {where}, the dataset is kept in {kept}"
    ) from e
  if old is not None:
    for name in old_files:
      path = os.path.join(old, name)
      if os.path.isfile(path):
        os.remove(path)
    try:
      os.rmdir(old)  # empty: what was there besides the old dataset stopped the move above
    except OSError:  # written in the instant between that check and the move
      logging.warning("Kept %s: files appeared in the old output folder during the job", old)


def object_staging(output_dir, token):
  """The hidden staging prefix of an object-store --output_dir: a sibling, `<parent>/.<name>.pdr_tf-staging-<token>`."""
  parent, name = FileSystems.split(output_dir.rstrip("/"))
  return FileSystems.join(parent, f".{name}.pdr_tf-staging-{token}")


def _warn_other_object_staging(output_dir):
  """Warns about staging prefixes of other jobs beside an object-store --output_dir: one is running (no lock can say
  so there) or was killed and left its staging behind."""
  pattern = object_staging(output_dir, "*") + "/**"
  try:
    (result,) = FileSystems.match([pattern])
  except (OSError, ValueError):
    return
  prefix = object_staging(output_dir, "")
  others = sorted({prefix + m.path[len(prefix) :].split("/", 1)[0] for m in result.metadata_list})
  if others:
    logging.warning(
      "%s: staging left by another job beside it (%s): if no other job writes there, a killed job left it and it "
      "can be deleted",
      output_dir,
      ", ".join(others[:3]),
    )


def _delete_objects(prefix):
  """Deletes every object under an object-store prefix (Beam's temporary files included); nothing there is fine."""
  try:
    (result,) = FileSystems.match([prefix.rstrip("/") + "/**"])
    paths = [m.path for m in result.metadata_list]
    if paths:
      FileSystems.delete(paths)
  except (OSError, ValueError) as e:
    logging.warning("could not remove the staging %s: %s", prefix, e)


def _publish_objects(staging, output_dir, old_files):
  """Moves a finished dataset from its staging prefix to an object-store output_dir, replacing `old_files` (the
  previous pdr_tf dataset there, or none).

  An object store renames object by object (copy, then delete), so the folder cannot change in one step. The order
  keeps it readable as a dataset only when it is one: the old manifest goes first (a reader then finds no dataset,
  never a mix), then the new shards and rejects are moved in, the old shards no longer listed are deleted, and the
  new manifest comes last.

  Raises:
    PublishError: a move or delete failed; the staging prefix keeps what was not moved yet.
  """
  new_files = [name for name in _entries(staging) if not name.startswith("beam-temp-")]
  manifest = feature_spec.MANIFEST_FILENAME
  steps = []
  if manifest in old_files:
    steps.append(("delete", [FileSystems.join(output_dir, manifest)], None))
  data = [name for name in new_files if name != manifest]
  steps.append(
    ("rename", [FileSystems.join(staging, n) for n in data], [FileSystems.join(output_dir, n) for n in data])
  )
  stale = [name for name in old_files if name != manifest and name not in new_files]
  steps.append(("delete", [FileSystems.join(output_dir, n) for n in stale], None))
  steps.append(("rename", [FileSystems.join(staging, manifest)], [FileSystems.join(output_dir, manifest)]))
  for action, sources, destinations in steps:
    if not sources:
      continue
    try:
      if action == "delete":
        FileSystems.delete(sources)
      else:
        FileSystems.rename(sources, destinations)
    except (OSError, ValueError) as e:
      raise PublishError(
        f"publishing the dataset to {output_dir} stopped ({action} of {sources[0]}{' ...' if len(sources) > 1 else ''}"
        f" failed: {e}); what was not moved yet is in {staging}: move it there by hand, the manifest last"
      ) from e
  _delete_objects(staging)


def setup_logging(level):
  """Plain stdlib logging for a job's main()."""
  logging.basicConfig(
    level=getattr(logging, str(level).upper(), logging.INFO), format="%(asctime)s %(levelname)s %(message)s"
  )
  logging.getLogger().setLevel(getattr(logging, str(level).upper(), logging.INFO))


@contextlib.contextmanager
def _quiet_beam():
  """Beam's portable runner relays every worker's start-up chatter at INFO: keep the job's own log readable (for
  the command and the library form alike) by raising Beam's loggers to WARNING while a job runs."""
  beam_logger = logging.getLogger("apache_beam")
  saved = beam_logger.level
  beam_logger.setLevel(max(logging.WARNING, logging.getLogger().level, saved))
  try:
    yield
  finally:
    beam_logger.setLevel(saved)
