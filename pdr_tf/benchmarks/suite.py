"""Benchmark harness: rasterizer backends, training step vs networks, data, FLOP/s, serving and Beam, in one run.

Run: python -m pdr_tf.bench [--json out.json] [--quick]. Every section is a function returning a dict; a section
that fails is recorded as {"error": "..."} and the run goes on. See docs/performance.md for what each number means
and the measured tables. The same command runs on a GPU machine (TensorFlow places the ops there; the TF-Graphics
rasterization kernel is CPU-only and stays on the host).
"""

import argparse
import dataclasses
import datetime
import io
import logging
import os
import platform
import sys
import tempfile
import time
import traceback
from typing import Dict, Optional, Tuple

import numpy as np

from pdr_tf import cli
from pdr_tf import graph
from pdr_tf.benchmarks.timing import ms as _ms, time_call, time_interleaved  # noqa: F401  (re-exported)
from pdr_tf.benchmarks.training import PAPER_MODEL, QUICK_MODEL, TARGET_STEP_RATIO  # noqa: F401
from pdr_tf.data.formats import IMAGE_SIZE
from pdr_tf.evaluation import output_files

logger = logging.getLogger(__name__)
# What the --json report names as its writer (`output_files.REPORT_KEY`): an existing file is overwritten only when
# it is such a report.
REPORT_WRITER = "pdr_tf.bench"

TARGET_PIPELINE_RATIO = 5.0  # the input pipeline at least 5x faster than training
TARGET_EVALUATION_RATIO = 5.0  # evaluation (embedding + de-rendering) at least 5x training's images/s
TRAINING_VIEW_DEGREES = 17.0  # the rasterizer section's views rotate within +-17 degrees (0.3 rad) per axis


@dataclasses.dataclass(frozen=True)
class Settings:
  """Sizes and repeat counts of one run (`preset` picks them: "full", "quick" or "smoke")."""

  preset: str
  repeats: int  # timed calls per measurement (the median is reported), after one warm-up call
  raster_batch: int  # the rasterizer section's batch of 64x64 grid meshes
  train_batch: int  # the training-step section's batch (quick.gin: 16)
  pipeline_images: int
  pipeline_batches: int
  matmul_n: int
  conv_batch: int
  conv_channels: int
  serving_batch: int
  beam_images: int
  beam_startup: bool
  paper_model: bool
  training_modes: Optional[Tuple[str, ...]]  # benchmarks.training.MODES, headline first (None: default_modes())


PRESETS = {
  "full": Settings("full", 10, 64, 16, 512, 40, 2048, 32, 64, 64, 200, True, True, None),
  "quick": Settings("quick", 7, 64, 16, 256, 30, 1024, 16, 64, 64, 60, False, False, None),
  "smoke": Settings("smoke", 1, 2, 2, 8, 2, 128, 1, 8, 2, 3, False, False, ("tf_xla_render", "tfg")),
}


# --------------------------------------------------------------------------------------------------- helpers
def machine_info() -> Dict[str, object]:
  """CPU count, platform, Python and TF versions, GPU names, load average and a UTC timestamp."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel

  gpus = []
  for device in tf.config.list_physical_devices("GPU"):
    details = tf.config.experimental.get_device_details(device)
    gpus.append(details.get("device_name", device.name))
  return {
    "cpus": os.cpu_count(),
    "platform": platform.platform(),
    "processor": platform.processor(),
    "python": sys.version.split()[0],
    "tensorflow": tf.__version__,
    "gpus": gpus,
    "load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
    "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
  }


# --------------------------------------------------------------------------------------------------- sections
def bench_rasterizers(settings: Settings) -> Dict[str, object]:
  """Every rasterizer configuration on the 64x64 grid mesh (`benchmarks.rasterizer.run`, views within
  +-TRAINING_VIEW_DEGREES): triangle ids alone, the rendering path forward, and forward plus backward.

  Returns:
    {"tf": ..., "tf+xla": ..., "tfg": ...}, each with batch, triangle_ids_ms, render_forward_ms,
    render_forward_backward_ms (medians per batch) and triangle_ids_edge_on_ms (`edge_on_scene`); "agreement": the
    fraction of equal ids of "tf" and "tfg"; "edge_on_candidates_per_image": box and span candidate counts.
  """
  from pdr_tf.render import rasterizer  # pylint: disable=import-outside-toplevel
  from pdr_tf.benchmarks import rasterizer as raster_bench  # pylint: disable=import-outside-toplevel

  results, agreement = raster_bench.run(
    batch=settings.raster_batch,
    size=IMAGE_SIZE,
    repeats=settings.repeats,
    backends=rasterizer.backends(),
    max_angle=TRAINING_VIEW_DEGREES,
    progress=False,
  )
  keys = {"ids": "triangle_ids_ms", "forward": "render_forward_ms", "forward_backward": "render_forward_backward_ms"}
  sections = {}
  for r in results:
    name = r["backend"] + ("+xla" if r["jit_compile"] else "")
    sections.setdefault(name, {"backend": r["backend"], "xla": r["jit_compile"], "batch": r["batch"]})
    sections[name][keys[r["kind"]]] = r["median_ms"]
  if agreement:
    sections["agreement"] = agreement
  edge_on, candidates = raster_bench.time_edge_on_ids(
    batch=settings.raster_batch, size=IMAGE_SIZE, repeats=settings.repeats, backends=rasterizer.backends()
  )
  for r in results:
    if r["kind"] == "ids":
      name = r["backend"] + ("+xla" if r["jit_compile"] else "")
      sections[name]["triangle_ids_edge_on_ms"] = edge_on[r["name"]]
  sections["edge_on_candidates_per_image"] = candidates
  return sections


def bench_training(settings: Settings, model_size=None, breakdown=True) -> Dict[str, object]:
  """The training step of every mode in `settings.training_modes` against the networks alone
  (`benchmarks.training.bench_training_step`)."""
  from pdr_tf.benchmarks import training  # pylint: disable=import-outside-toplevel

  return training.bench_training_step(
    settings.train_batch, settings.repeats, model_size, settings.training_modes or training.default_modes(), breakdown
  )


def bench_flops(settings: Settings, training: Optional[Dict[str, object]]) -> Dict[str, object]:
  """The machine's dense matmul and conv2d GFLOP/s (timed), and the model's achieved GFLOP/s: the training step's
  and the networks' FLOPs counted by `tf.compat.v1.profiler` on their concrete-function graphs (ops with
  registered FLOP statistics: convolutions and their gradients, matmuls, element-wise ops), divided by their
  measured times."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel

  n, b, c = settings.matmul_n, settings.conv_batch, settings.conv_channels
  a = tf.random.normal([n, n])
  x = tf.random.normal([b, IMAGE_SIZE, IMAGE_SIZE, c])
  w = tf.random.normal([3, 3, c, c])
  matmul = graph.function(lambda: tf.reduce_sum(tf.matmul(a, a)))
  conv = graph.function(lambda: tf.reduce_sum(tf.nn.conv2d(x, w, 1, "SAME")))
  result = {
    "matmul_n": n,
    "conv_shape": [b, IMAGE_SIZE, IMAGE_SIZE, c, c],
    "machine_matmul_gflops": round(2 * n**3 / time_call(matmul, settings.repeats) / 1e9, 1),
    "machine_conv2d_gflops": round(2 * b * IMAGE_SIZE**2 * 9 * c * c / time_call(conv, settings.repeats) / 1e9, 1),
    "flop_count_method": "tf.compat.v1.profiler float_operation on the concrete-function graphs",
  }
  if not training or "_functions" not in training:
    result["model_error"] = "the training-step section failed; no model FLOPs"
    return result
  train_step, networks_step, images, images_aug = training["_functions"]
  seed = tf.TensorSpec([2], tf.int64)
  step_flops = graph_flops(train_step.get_concrete_function(tf.TensorSpec(images.shape), seed).graph)
  nets_flops = graph_flops(
    networks_step.get_concrete_function(tf.TensorSpec(images.shape), tf.TensorSpec(images.shape)).graph
  )
  batch = training["batch"]
  result.update(
    {
      "train_step_gflop_per_image": round(step_flops / batch / 1e9, 4),
      "networks_gflop_per_image": round(nets_flops / batch / 1e9, 4),
      "model_train_step_gflops": round(step_flops / (training["train_step_ms"] / 1e3) / 1e9, 1),
      "model_networks_gflops": round(nets_flops / (training["networks_fwd_bwd_ms"] / 1e3) / 1e9, 1),
    }
  )
  return result


def graph_flops(graph) -> int:
  """FLOPs of one run of `graph` as counted by TF's v1 profiler (ops without FLOP statistics count 0)."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel

  options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
  options["output"] = "none"
  return int(tf.compat.v1.profiler.profile(graph, options=options).total_float_ops)


def bench_input_pipeline_vs_training(settings: Settings, training: Optional[Dict[str, object]]):
  """tf.data images/s (data.bench_input_pipeline, training mode, the training batch) against training images/s."""
  from pdr_tf.benchmarks import data  # pylint: disable=import-outside-toplevel

  pipe = data.bench_input_pipeline(
    num_images=settings.pipeline_images,
    batch_size=settings.train_batch,
    num_batches=settings.pipeline_batches,
    training=True,
  )
  result = {
    "pipeline_images_per_s": pipe["images_per_s"],
    "batch": pipe["batch_size"],
    "target_ratio": TARGET_PIPELINE_RATIO,
  }
  if training and "train_images_per_s" in training:
    ratio = pipe["images_per_s"] / training["train_images_per_s"]
    result.update(
      train_images_per_s=training["train_images_per_s"],
      ratio=round(ratio, 2),
      **{"pass": bool(ratio >= TARGET_PIPELINE_RATIO)},
    )
  return result


def _png(seed):
  from PIL import Image  # pylint: disable=import-outside-toplevel

  pixels = np.random.default_rng(seed).integers(0, 256, (IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
  buffer = io.BytesIO()
  Image.fromarray(pixels).save(buffer, format="PNG")
  return buffer.getvalue()


def bench_serving(settings: Settings, training=None) -> Dict[str, object]:
  """Exports the quick-preset model, loads it back (export.load_export) and times serving_default on one PNG
  (latency), embed_images and de_render on a float batch (throughput), the de-rendering as `pdr_tf.evaluate`
  runs it (`evaluation.exported_derender`: the check-free function under XLA), and embed_images plus that per
  image: what evaluate runs on every test image. The model is gin/quick.gin's (`training.QUICK_MODEL`: 16x16 depth
  started flat), so the rasterizer sees a smooth scene as in a trained model; de_render is the portable export
  (the pure-TF rasterizer, no XLA)."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from pdr_tf import export  # pylint: disable=import-outside-toplevel
  from pdr_tf.evaluation import exported_derender  # pylint: disable=import-outside-toplevel
  from pdr_tf.model import de_renderer as model

  net = model.DeRenderer(**QUICK_MODEL)
  net.build_for_inference()
  with tempfile.TemporaryDirectory() as tmp:
    start = time.perf_counter()
    version_dir = export.export_model(net, os.path.join(tmp, "export"))
    export_s = time.perf_counter() - start
    loaded, _ = export.load_export(version_dir, signatures=("serving_default", "embed_images", "de_render"))
    serve, embed = loaded.signatures["serving_default"], loaded.signatures["embed_images"]
    de_render = loaded.signatures["de_render"]
    one = tf.constant([_png(0)])
    batch = settings.serving_batch
    floats = tf.random.stateless_uniform([batch, IMAGE_SIZE, IMAGE_SIZE, 3], [0, 2])
    latency = time_call(lambda: serve(image_bytes=one), max(settings.repeats, 3) * 4)
    throughput = time_call(lambda: embed(images=floats), settings.repeats)
    de_render_s = time_call(lambda: de_render(images=floats), settings.repeats)
    evaluation_de_render = exported_derender.ExportedDeRender(loaded, batch)
    floats_np = floats.numpy()
    evaluation_de_render(floats_np)  # compiles
    evaluation_s = time_call(lambda: evaluation_de_render(floats_np), settings.repeats)
  evaluation_per_s = batch / (throughput + evaluation_s)
  train_per_s = (training or {}).get("train_images_per_s")
  versus_training = {}
  if train_per_s:
    ratio = evaluation_per_s / train_per_s
    versus_training = {
      "evaluation_over_training": round(ratio, 2),
      "target_evaluation_ratio": TARGET_EVALUATION_RATIO,
      "evaluation_pass": bool(ratio >= TARGET_EVALUATION_RATIO),
    }
  return {
    "export_seconds": round(export_s, 2),
    "serving_default_batch1_ms": _ms(latency),
    "embed_images_batch": batch,
    "embed_images_batch_ms": _ms(throughput),
    "embed_images_per_s": round(batch / throughput, 1),
    "de_render_batch_ms": _ms(de_render_s),
    "de_render_images_per_s": round(batch / de_render_s, 1),
    "evaluation_de_render_path": evaluation_de_render.mode,
    "evaluation_de_render_batch_ms": _ms(evaluation_s),
    "evaluation_de_render_images_per_s": round(batch / evaluation_s, 1),
    "evaluation_images_per_s": round(evaluation_per_s, 1),
    **versus_training,
  }


def bench_beam_workers(settings: Settings) -> Dict[str, object]:
  """Beam UTKFace conversion images/s with 1 and 2 local workers (data.bench_beam)."""
  from pdr_tf.benchmarks import data  # pylint: disable=import-outside-toplevel

  result = {}
  for workers in (1, 2):
    result[f"workers_{workers}"] = data.bench_beam(workers, settings.beam_images, measure_startup=settings.beam_startup)
    logging.getLogger().setLevel(logging.INFO)  # the Beam job lowers the root level to WARNING
  return result


def bench_paper_model(settings: Settings) -> Dict[str, object]:
  """Training images/s of the paper-size model (nf=64, zdim=256, encoder_nf=32) at the training batch."""
  from pdr_tf.benchmarks import training  # pylint: disable=import-outside-toplevel

  modes = settings.training_modes or training.default_modes()
  result = bench_training(
    dataclasses.replace(settings, training_modes=modes[:1]), model_size=PAPER_MODEL, breakdown=False
  )
  return {
    k: v
    for k, v in result.items()
    if k in ("model", "batch", "train_step_ms", "networks_fwd_bwd_ms", "ratio", "train_images_per_s", "_functions")
  }


def _guarded(name, fn):
  """Runs a section; a failure becomes {"error": "<type>: <message>"} and is logged, and the run goes on."""
  logger.info("benchmark: %s", name)
  start = time.perf_counter()
  try:
    result = fn()
  except Exception as e:  # pylint: disable=broad-except  (a failed section must not stop the others)
    logger.warning("%s failed: %s\n%s", name, e, traceback.format_exc())
    return {"error": f"{type(e).__name__}: {e}"}
  logger.info("%s done in %.1f s", name, time.perf_counter() - start)
  return result


# ----------------------------------------------------------------------------------------------- report
def _fmt(value):
  if isinstance(value, bool):
    return "PASS" if value else "FAIL"
  if isinstance(value, float):
    return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.1f}"
  return str(value)


def _rows(sections):
  """(section, measurement, value, note) rows of the table."""
  rows = []

  def add(section, name, data, key, note=""):
    if isinstance(data, dict) and "error" in data:
      rows.append((section, name, "error", data["error"][:70]))
    elif isinstance(data, dict) and key in data:
      rows.append((section, name, _fmt(data[key]), note))

  for backend, r in (sections.get("rasterizer") or {}).items():
    if backend == "error":
      add("rasterizer", "all backends", sections["rasterizer"], "")
      break
    if backend == "agreement":
      add("rasterizer", "tf vs tfg equal ids", r, "equal_ids", "fraction of pixels")
      continue
    if backend == "edge_on_candidates_per_image":
      add("rasterizer", "edge-on candidates/image: boxes", r, "box", "what a box rasterizer tests")
      add("rasterizer", "edge-on candidates/image: spans", r, "span", "what the tf backend tests")
      continue
    batch = f"batch {r.get('batch', '?')}, 64x64 grid mesh"
    add("rasterizer", f"{backend}: triangle ids ms", r, "triangle_ids_ms", batch)
    add("rasterizer", f"{backend}: triangle ids edge-on ms", r, "triangle_ids_edge_on_ms", "views at +-58 deg")
    add("rasterizer", f"{backend}: render fwd ms", r, "render_forward_ms", batch)
    add("rasterizer", f"{backend}: render fwd+bwd ms", r, "render_forward_backward_ms", batch)
  t = sections.get("training_step", {})
  mode = f"mode {t.get('mode', '?')}"
  add("training", "full step ms", t, "train_step_ms", f"batch {t.get('batch', '?')}, LOOCC light_view, {mode}")
  add("training", "networks fwd+bwd ms", t, "networks_fwd_bwd_ms", "networks + cycle encode, trivial loss")
  add("training", "ratio step / networks", t, "ratio", f"target <= {TARGET_STEP_RATIO}")
  add("training", "ratio of minima", t, "ratio_of_minima", "least-disturbed runs")
  add("training", "ratio target", t, "pass", "on the ratio of medians")
  for name, m in (t.get("modes") or {}).items():
    add("training", f"  mode {name}: step ms", m, "train_step_ms", f"ratio {_fmt(m.get('ratio', '?'))}")
  for key, value in (t.get("breakdown") or {}).items():
    rows.append(("training", f"  breakdown: {key}", _fmt(value), "profile"))
  p = sections.get("input_pipeline", {})
  add("input", "pipeline images/s", p, "pipeline_images_per_s", f"batch {p.get('batch', '?')}")
  add("input", "training images/s", p, "train_images_per_s")
  add("input", "ratio pipeline / training", p, "ratio", f"target >= {TARGET_PIPELINE_RATIO}")
  add("input", "ratio target", p, "pass")
  f = sections.get("flops", {})
  add("flops", "machine matmul GFLOP/s", f, "machine_matmul_gflops", f"{f.get('matmul_n', '?')}^2 float32")
  add("flops", "machine conv2d GFLOP/s", f, "machine_conv2d_gflops", "3x3, NHWC")
  add("flops", "train step GFLOP/image", f, "train_step_gflop_per_image", "TF profiler count")
  add("flops", "model GFLOP/s (train step)", f, "model_train_step_gflops")
  add("flops", "model GFLOP/s (networks)", f, "model_networks_gflops")
  s = sections.get("serving", {})
  add("serving", "serving_default b=1 ms", s, "serving_default_batch1_ms", "one PNG")
  add("serving", "embed_images images/s", s, "embed_images_per_s", f"batch {s.get('embed_images_batch', '?')}")
  add("serving", "de_render images/s", s, "de_render_images_per_s", "portable export (pure-TF rasterizer, no XLA)")
  add("serving", "evaluation de_render images/s", s, "evaluation_de_render_images_per_s", "as evaluate runs it")
  add("serving", "evaluation images/s", s, "evaluation_images_per_s", "embed_images + evaluation de_render")
  add("serving", "ratio evaluation / training", s, "evaluation_over_training", f"target >= {TARGET_EVALUATION_RATIO}")
  add("serving", "ratio target", s, "evaluation_pass")
  b = sections.get("beam", {})
  if "error" in b:
    add("beam", "conversion", b, "")
  for workers in (1, 2):
    r = b.get(f"workers_{workers}", {})
    add(
      "beam", f"{workers} worker(s) images/s", r, "images_per_s", f"{r.get('written', '?')} images, start-up included"
    )
    add("beam", f"{workers} worker(s) steady images/s", r, "steady_images_per_s", "start-up excluded")
  m = sections.get("paper_model")
  if m is not None:
    add("paper model", "train images/s", m, "train_images_per_s", "nf=64, zdim=256, encoder_nf=32")
    add("paper model", "ratio step / networks", m, "ratio")
  return rows


def format_table(sections) -> str:
  """A fixed-width text table of the headline numbers of every section."""
  rows = [("section", "measurement", "value", "note")] + _rows(sections)
  widths = [max(len(r[i]) for r in rows) for i in range(3)]
  lines = [f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]}".rstrip() for r in rows]
  lines.insert(1, "-" * len(lines[0]))
  return "\n".join(lines)


SECTION_NAMES = ("rasterizer", "training_step", "input_pipeline", "flops", "serving", "beam", "paper_model")


def run_all(settings: Settings, sections=None) -> Dict[str, object]:
  """Runs the chosen sections (all by default) and returns {"machine", "settings", "sections"}."""
  from tqdm import tqdm  # pylint: disable=import-outside-toplevel

  names = sections or ["rasterizer", "training_step", "input_pipeline", "flops", "serving", "beam"] + (
    ["paper_model"] if settings.paper_model else []
  )
  results = {}
  functions = {
    "rasterizer": lambda: bench_rasterizers(settings),
    "training_step": lambda: bench_training(settings),
    "input_pipeline": lambda: bench_input_pipeline_vs_training(settings, results.get("training_step")),
    "flops": lambda: bench_flops(settings, results.get("training_step")),
    "serving": lambda: bench_serving(settings, results.get("training_step")),
    "beam": lambda: bench_beam_workers(settings),
    "paper_model": lambda: bench_paper_model(settings),
  }
  assert set(functions) == set(SECTION_NAMES)
  unknown = [n for n in names if n not in functions]
  if unknown:
    raise ValueError(f"unknown benchmark section(s) {unknown}; choose from {', '.join(SECTION_NAMES)}")
  for name in tqdm(names, desc="benchmarks", unit="section"):
    results[name] = _guarded(name, functions[name])
  for value in results.values():
    value.pop("_functions", None)  # tf.functions kept for the FLOP count; not JSON
  return {"machine": machine_info(), "settings": dataclasses.asdict(settings), "sections": results}


def make_parser() -> argparse.ArgumentParser:
  """This entry point's command line: `main` parses it; tests/test_doc_commands.py checks the docs against it."""
  parser = argparse.ArgumentParser(
    prog="python -m pdr_tf.bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
  )
  parser.add_argument("--json", default=None, help="write the results (with machine info) to this file")
  parser.add_argument("--quick", action="store_true", help="few repeats, no paper-size model (~4-5 min, 2 CPUs)")
  parser.add_argument("--smoke", action="store_true", help=argparse.SUPPRESS)  # tests: 1 repeat, tiny sizes
  parser.add_argument(
    "--sections",
    default=None,
    help="comma-separated subset: rasterizer,training_step,input_pipeline,flops,serving,beam,"
    "paper_model (default: all of the preset)",
  )
  cli.add_log_level(parser)
  return parser


def main(argv=None) -> int:
  """Entry point: runs the harness, prints the table, optionally writes JSON."""
  parser = make_parser()
  args = parser.parse_args(argv)
  output_files.check_json_argument(parser, args.json, REPORT_WRITER)  # before the minutes of benchmarks
  cli.setup_logging(args.log_level)
  settings = PRESETS["smoke" if args.smoke else "quick" if args.quick else "full"]
  sections = None
  if args.sections is not None:
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = [s for s in sections if s not in SECTION_NAMES]
    if not sections or unknown:
      parser.error(f"--sections: unknown or no section(s) {unknown or args.sections!r}; choose from {SECTION_NAMES}")
  start = time.perf_counter()
  report = run_all(settings, sections)
  report["seconds"] = round(time.perf_counter() - start, 1)
  print(format_table(report["sections"]))
  print(
    f"machine: {report['machine']['cpus']} CPUs, {report['machine']['platform']}, "
    f"GPUs {report['machine']['gpus'] or 'none'}, load average {report['machine']['load_average']}, "
    f"TF {report['machine']['tensorflow']}; {report['seconds']} s"
  )
  if args.json and not output_files.write_json_argument(args.json, report, REPORT_WRITER):
    return 1
  return 0


if __name__ == "__main__":
  sys.exit(main())
