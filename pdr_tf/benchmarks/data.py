"""Data benchmarks: Beam conversion images/s (1 and 2 workers) and tf.data input pipeline images/s.

Run: python -m pdr_tf.benchmarks.data [--json out.json] [--num_images N]. Inputs are random images generated in a
temporary directory (UTKFace format for Beam, the TFRecord layout for tf.data); nothing is downloaded.
"""

import argparse
import io
import logging
import os
import platform
import sys
import tempfile
import time

import numpy as np
from PIL import Image
from tqdm import tqdm

from pdr_tf import cli
from pdr_tf.data import feature_spec


from pdr_tf.data import formats
from pdr_tf.data import input_pipeline
from pdr_tf.evaluation import output_files

REPORT_WRITER = "pdr_tf.benchmarks.data"  # the --json report's writer (`output_files.REPORT_KEY`)


def make_raw_utkface(directory, num_images, size=formats.UTKFACE_RAW_SIZE, seed=0):
  """Writes `num_images` random UTKFace-named JPEGs (smooth colour plus noise, quality 90).

  Returns:
    The directory.
  """
  os.makedirs(directory, exist_ok=True)
  rng = np.random.default_rng(seed)
  ramp = np.linspace(0, 1, size, dtype=np.float32)
  for i in range(num_images):
    base = rng.uniform(0, 255, 3)[None, None, :] * ramp[:, None, None] + rng.uniform(0, 60)
    image = np.clip(base + rng.normal(0, 12, (size, size, 3)), 0, 255).astype(np.uint8)
    name = f"{i % 100}_{i % 2}_{i % 5}_{20170000000000000 + i}.jpg"
    Image.fromarray(image).save(os.path.join(directory, name), format="JPEG", quality=90)
  return directory


def bench_beam(num_workers, num_images, workdir=None, measure_startup=True):
  """Images/s of the UTKFace Beam job on the local FnApiRunner with `num_workers` processes.

  Args:
    num_workers: worker processes (--num_workers; multi_processing mode).
    num_images: generated 200x200 JPEGs to convert.
    workdir: scratch directory (a temporary one when None).
    measure_startup: also time a 2-image run, to separate the runner's fixed start-up cost.

  Returns:
    Dict: num_workers, num_images, written, seconds (wall, start-up included), images_per_s,
    startup_seconds and steady_images_per_s ((num_images - 2) / (seconds - startup_seconds)) when measured.
  """
  from beam_pipelines import utkface  # pylint: disable=import-outside-toplevel  (Beam only when benchmarked)

  with tempfile.TemporaryDirectory(dir=workdir) as tmp:
    raw = make_raw_utkface(os.path.join(tmp, "raw"), num_images)

    def run(input_dir, name):
      out = os.path.join(tmp, name)
      start = time.perf_counter()
      code = utkface.convert(input_dir, out, num_workers=num_workers)
      seconds = time.perf_counter() - start
      if code != 0:
        raise RuntimeError(f"the UTKFace job failed on {input_dir} (exit {code})")
      return seconds, input_pipeline.read_manifest(out)["written"]

    result = {"benchmark": "beam_utkface", "num_workers": num_workers, "num_images": num_images}
    if measure_startup:
      tiny = make_raw_utkface(os.path.join(tmp, "tiny"), 2, seed=1)
      result["startup_seconds"] = round(run(tiny, "out_tiny")[0], 3)
    seconds, written = run(raw, "out")
    result.update(written=written, seconds=round(seconds, 3), images_per_s=round(written / seconds, 1))
    if measure_startup and seconds > result["startup_seconds"]:
      result["steady_images_per_s"] = round((written - 2) / (seconds - result["startup_seconds"]), 1)
  return result


def bench_input_pipeline(num_images=512, batch_size=64, num_batches=30, training=True, num_shards=4, workdir=None):
  """Images/s of `input_pipeline.make_dataset` over generated TFRecords (after 3 warm-up batches).

  Args:
    num_images: records written (random 64x64 PNGs); training repeats them as needed.
    batch_size: batch size.
    num_batches: timed batches (the records repeat as needed in both modes).
    training: training mode (shuffle, flip, repeat) or evaluation mode (all labels, file order).
    num_shards: shards of the split.
    workdir: scratch directory (a temporary one when None).

  Returns:
    Dict: mode, num_images, batch_size, batches, images, seconds, images_per_s.
  """
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from pdr_tf.data import input_pipeline  # pylint: disable=import-outside-toplevel

  rng = np.random.default_rng(0)
  with tempfile.TemporaryDirectory(dir=workdir) as tmp:
    records = []
    for i in range(num_images):
      buffer = io.BytesIO()
      pixels = rng.integers(0, 256, (formats.IMAGE_SIZE, formats.IMAGE_SIZE, 3), dtype=np.uint8)
      Image.fromarray(pixels).save(buffer, format="PNG")
      records.append({"image/encoded": buffer.getvalue(), "split": "train", "label/id": i % 5})
    feature_spec.write_dataset(tmp, records, dataset="benchmark", num_shards=num_shards)
    # Evaluation repeats too, so that every mode times num_batches batches.
    ds = input_pipeline.make_dataset(tmp, "train", batch_size, training=training, seed=0, repeat=True)
    iterator = iter(ds)
    for _ in range(3):
      next(iterator)
    images, batches = 0, 0
    start = time.perf_counter()
    for batch in iterator:
      images += int(tf.shape(batch["image"])[0])
      batches += 1
      if batches == num_batches:
        break
    seconds = time.perf_counter() - start
  return {
    "benchmark": "input_pipeline",
    "mode": "training" if training else "evaluation",
    "num_images": num_images,
    "batch_size": batch_size,
    "batches": batches,
    "images": images,
    "seconds": round(seconds, 3),
    "images_per_s": round(images / max(seconds, 1e-9), 1),
  }


def _table(results):
  lines = [f"{'benchmark':<16} {'setting':<26} {'images':>7} {'seconds':>8} {'images/s':>9} {'steady/s':>9}"]
  for r in results:
    if r["benchmark"] == "beam_utkface":
      setting = f"{r['num_workers']} worker(s), start-up {r.get('startup_seconds', '?')}s"
      images = r["written"]
    else:
      setting = f"{r['mode']}, batch {r['batch_size']}"
      images = r["images"]
    lines.append(
      f"{r['benchmark']:<16} {setting:<26} {images:>7} {r['seconds']:>8.2f} {r['images_per_s']:>9.1f} "
      f"{r.get('steady_images_per_s', ''):>9}"
    )
  return "\n".join(lines)


def make_parser() -> argparse.ArgumentParser:
  """This entry point's command line: `main` parses it; tests/test_doc_commands.py checks the docs against it."""
  parser = argparse.ArgumentParser(
    prog="python -m pdr_tf.benchmarks.data", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
  )
  parser.add_argument("--json", default=None, help="write the results here")
  parser.add_argument("--num_images", type=int, default=200, help="images converted by each Beam run")
  parser.add_argument("--workers", default="1,2", help="comma-separated Beam worker counts")
  parser.add_argument("--pipeline_images", type=int, default=512, help="records for the tf.data benchmark")
  parser.add_argument("--batch_size", type=int, default=64)
  parser.add_argument("--num_batches", type=int, default=30, help="timed tf.data batches")
  parser.add_argument("--workdir", default=None, help="scratch directory (default: system temp)")
  cli.add_log_level(parser)
  return parser


def main(argv=None):
  """Entry point: runs the data benchmarks, prints a table and optionally writes JSON."""
  parser = make_parser()
  args = parser.parse_args(argv)
  output_files.check_json_argument(parser, args.json, REPORT_WRITER)
  cli.setup_logging(args.log_level)

  try:
    workers = [int(w) for w in args.workers.split(",") if w.strip()]
  except ValueError:
    parser.error(f"--workers takes comma-separated worker counts such as 1,2; got {args.workers!r}")
  if not workers or min(workers) < 1:
    parser.error(f"--workers takes positive worker counts; got {args.workers!r}")
  if args.workdir is not None and not os.path.isdir(args.workdir):
    parser.error(f"--workdir {args.workdir} is not an existing folder")
  steps = [("beam", w) for w in workers] + [("input", True), ("input", False)]
  results = []
  for kind, setting in tqdm(steps, desc="benchmarks", unit="run"):
    if kind == "beam":
      results.append(bench_beam(setting, args.num_images, args.workdir))
    else:
      results.append(
        bench_input_pipeline(
          args.pipeline_images, args.batch_size, args.num_batches, training=setting, workdir=args.workdir
        )
      )
    logging.getLogger().setLevel(logging.INFO)  # the Beam job lowers it to WARNING
    logging.info("%s", results[-1])
  report = {
    "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": sys.version.split()[0]},
    "results": results,
  }
  print(_table(results))
  if args.json and not output_files.write_json_argument(args.json, report, REPORT_WRITER):
    return 1
  return 0


if __name__ == "__main__":
  sys.exit(main())
