"""Command-line plumbing shared by the Beam jobs: arguments, local-runner defaults, running and the exit code."""

import argparse
import json
import logging
import re
import time

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions

from beam_pipelines import common
from pdr_tf import feature_spec

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
Exit status: 0 when at least one record was written; 1 when nothing could be written, the input is missing,
or (with --strict) on the first rejected input.
"""


def make_parser(dataset, description):
    """Argument parser of a job: the common options; callers add dataset options.

    Args:
      dataset: job name as in `python -m beam_pipelines.<dataset>`.
      description: --help text (the job module's docstring).
    """
    parser = argparse.ArgumentParser(
        prog=f"python -m beam_pipelines.{dataset}", description=description,
        epilog=_EPILOG.format(dataset=dataset), formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False)  # never swallow a Beam flag that starts like one of ours
    parser.add_argument("--input_dir", required=True, help="raw dataset root (local path or gs://...)")
    parser.add_argument("--output_dir", required=True, help="where the TFRecord shards, manifest and rejects go")
    parser.add_argument("--num_workers", type=int, default=None,
                        help=f"local worker processes (default {DEFAULT_NUM_WORKERS}); also passed to Beam, "
                             "where Dataflow reads it as its initial worker count")
    parser.add_argument("--num_shards", type=int, default=0,
                        help="shards per split; 0 picks ceil(images / --images_per_shard)")
    parser.add_argument("--images_per_shard", type=int, default=DEFAULT_IMAGES_PER_SHARD,
                        help="target records per shard when --num_shards is 0")
    parser.add_argument("--strict", action="store_true", help="fail on the first rejected input")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a converted dataset already in --output_dir")
    parser.add_argument("--log_level", default="INFO", help="Python logging level")
    return parser


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


def prepare_output_dir(output_dir, overwrite=False):
    """Creates the output directory, refusing (or with `overwrite`, deleting) a converted dataset already there.

    Raises:
      ValueError: the directory holds shards, a manifest or a rejects file and overwrite is False.
    """
    existing = [m.path for pattern in (feature_spec.shard_pattern(output_dir, "*"),
                                       FileSystems.join(output_dir, feature_spec.MANIFEST_FILENAME),
                                       FileSystems.join(output_dir, feature_spec.REJECTS_FILENAME))
                for m in FileSystems.match([pattern])[0].metadata_list]
    if existing and not overwrite:
        raise ValueError(f"{output_dir} already holds a converted dataset ({len(existing)} files, e.g. "
                         f"{existing[0]}); pass --overwrite or choose another --output_dir")
    if existing:
        logging.info("--overwrite: deleting %d files of the previous dataset in %s", len(existing), output_dir)
        FileSystems.delete(existing)
    try:
        FileSystems.mkdirs(output_dir)
    except OSError:  # already exists (local) or the file system has no directories (object stores)
        pass


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


def run_job(dataset, build, args, beam_args):
    """Builds, runs and checks one conversion job; the shared body of every job's main().

    Args:
      dataset: job name.
      build: function(pipeline) adding the job's transforms (may raise ValueError for bad input).
      args: our parsed arguments (input_dir, output_dir, num_workers, strict, overwrite).
      beam_args: flags for Beam.

    Returns:
      Exit status: 0 when records were written, 1 otherwise (reason logged).
    """
    options = PipelineOptions(beam_argv(beam_args, args.num_workers))
    start = time.time()
    try:
        pipeline = beam.Pipeline(options=options)
        build(pipeline)  # lists and checks the inputs first: a bad --input_dir leaves no output behind
        prepare_output_dir(args.output_dir, args.overwrite)
    except ValueError as e:
        logging.error("%s: %s", dataset, e)
        return 1
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
    manifest = read_manifest(args.output_dir)
    logging.info("%s: %d inputs -> %d written %s, %d rejected %s in %.1f s", dataset, manifest["inputs"],
                 manifest["written"], manifest["splits"], manifest["rejected"], manifest["reject_reasons"],
                 time.time() - start)
    if manifest["written"] == 0:
        logging.error("%s: nothing could be written: all %d inputs were rejected; reasons in %s", dataset,
                      manifest["inputs"], FileSystems.join(args.output_dir, feature_spec.REJECTS_FILENAME))
        return 1
    logging.info("%s: outputs in %s (shards %s, %s, %s)", dataset, args.output_dir,
                 feature_spec.shard_pattern("", "<split>"), feature_spec.MANIFEST_FILENAME,
                 feature_spec.REJECTS_FILENAME)
    return 0


def setup_logging(level):
    """Plain stdlib logging for a job's main()."""
    logging.basicConfig(level=getattr(logging, str(level).upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger().setLevel(getattr(logging, str(level).upper(), logging.INFO))
    # Beam's portable runner relays every worker's start-up chatter at INFO; keep the job's own log readable.
    logging.getLogger("apache_beam").setLevel(max(logging.WARNING, logging.getLogger().level))
