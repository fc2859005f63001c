"""Rasterizer benchmarks: triangle-id backends ("tf", "tfg") alone and inside the renderer, forward and backward.

Run: python -m pdr_tf.benchmarks.rasterizer [--json out.json] [--batch 64] [--size 64] [--repeats 7].
The scene is the training renderer's hot path: a batch of smooth random depth maps (an ellipsoid bump with ripples
and Unsup3D's 2-pixel border columns) turned into grid meshes and seen from random views (rotations uniform in
+-max_angle degrees about each axis, translations +-0.1). Calls of all configurations are interleaved round by round,
so that load from other processes on a shared machine affects them alike; the table reports median and minimum.
"""

import argparse
import logging
import os
import platform
import sys
import time

import numpy as np
import tensorflow as tf
from tqdm import tqdm

from pdr_tf import cli
from pdr_tf import graph
from pdr_tf.render import rasterizer
from pdr_tf.evaluation import output_files
from pdr_tf.render import renderer as renderer_lib

REPORT_WRITER = "pdr_tf.benchmarks.rasterizer"  # the --json report's writer (`output_files.REPORT_KEY`)


def grid_scene(batch=64, size=64, max_angle=60.0, seed=0, border_depth=1.04):
  """Random inputs of `Renderer.render` with smooth canonical depth.

  Args:
    batch: images B.
    size: image side S.
    max_angle: views rotate uniformly within +-max_angle degrees about each axis.
    seed: numpy seed.
    border_depth: depth of the 2-pixel left/right border columns (Unsup3D faces).

  Returns:
    dict of float32 numpy arrays: depth [B,S,S] in [0.9, 1.1], albedo [B,S,S,3] in [-1,1], light [B,4], view [B,6].
  """
  rng = np.random.RandomState(seed)
  yy, xx = np.meshgrid(np.linspace(-1, 1, size), np.linspace(-1, 1, size), indexing="ij")
  depths = []
  for _ in range(batch):
    (cx, cy), (ax, ay) = rng.uniform(-0.2, 0.2, 2), rng.uniform(0.5, 0.9, 2)
    depth = 1.0 - 0.1 * np.sqrt(np.clip(1 - ((xx - cx) / ax) ** 2 - ((yy - cy) / ay) ** 2, 0, 1))
    for _ in range(3):
      fx, fy, phase = rng.uniform(0.5, 3.0), rng.uniform(0.5, 3.0), rng.uniform(0, 2 * np.pi)
      depth += 0.01 * np.sin(3 * (fx * xx + fy * yy) + phase)
    depth = np.clip(depth, 0.9, 1.1)
    depth[:, :2] = depth[:, -2:] = border_depth
    depths.append(depth)
  view = np.concatenate(
    [
      np.radians(rng.uniform(-max_angle, max_angle, (batch, 3))),
      rng.uniform(-0.1, 0.1, (batch, 2)),
      np.zeros((batch, 1)),
    ],
    axis=1,
  )
  return {
    "depth": np.asarray(depths, np.float32),
    "albedo": rng.uniform(-1, 1, (batch, size, size, 3)).astype(np.float32),
    "light": np.concatenate([rng.uniform(0, 1, (batch, 2)), rng.uniform(-1, 1, (batch, 2))], 1).astype(np.float32),
    "view": view.astype(np.float32),
  }


def edge_on_scene(batch=64, size=64, seed=1):
  """`grid_scene` with depth noise of +-0.05 and every view at +-58 degrees about each axis: the mesh seen edge-on,
  slivers across the image whose boxes hold many times the pixels they cover (what a de-renderer that has not
  learnt the view predicts)."""
  scene = grid_scene(batch, size, 60.0, 0)
  rng = np.random.RandomState(seed)
  noise = rng.uniform(-0.05, 0.05, scene["depth"].shape)
  scene["depth"] = np.clip(scene["depth"] + noise, 0.9, 1.1).astype(np.float32)
  scene["view"][:, :3] = np.radians(rng.choice([-58.0, 58.0], (batch, 3)))
  return scene


def time_edge_on_ids(batch=64, size=64, repeats=7, backends=("tf", "tfg")):
  """Triangle ids alone on `edge_on_scene`, every backend (tf compiled and not), interleaved rounds.

  Returns:
    {configuration name: median ms}, and {"box", "span"}: candidate fragments per image that a box rasterizer
    and the tf backend's row spans test (`rasterizer_tf.candidate_counts`).
  """
  from pdr_tf.render import rasterizer_tf  # pylint: disable=import-outside-toplevel

  clip, faces = scene_clip(edge_on_scene(batch, size), size)
  fns = {
    name: _ids_fn(backend, faces, size, jit) for name, backend, kind, jit in configurations(backends) if kind == "ids"
  }
  times = {name: [] for name in fns}
  for fn in fns.values():
    fn(clip).numpy()
  for _ in range(repeats):
    for name, fn in fns.items():
      start = time.perf_counter()
      fn(clip).numpy()
      times[name].append(time.perf_counter() - start)
  box, span = rasterizer_tf.candidate_counts(clip, faces, size, size)
  medians = {name: round(1000 * float(np.median(t)), 2) for name, t in times.items()}
  return medians, {"box": round(box), "span": round(span)}


def scene_clip(scene, size):
  """Clip-space vertices [B, S*S, 4] of the scene's view-transformed grid meshes, as `Renderer.warp_depth` makes."""
  r = renderer_lib.Renderer(size)
  return rasterizer.clip_space(r.view_mesh(scene["depth"], scene["view"]), r.intrinsics, (size, size)), r.faces


def _ids_fn(backend, faces, size, jit_compile):
  """The backend's triangle ids alone, in a tf.function."""
  backend_fn = rasterizer.get_backend(backend).triangle_ids  # timing the seam itself
  return graph.function(lambda clip: backend_fn(clip, faces, size, size), jit_compile=jit_compile)


def _render_fn(backend, size, backward, jit_compile):
  """A compiled step of the renderer path: render, a masked L1 loss, and optionally its gradients."""
  r = renderer_lib.Renderer(size, backend=backend)

  def step(depth, albedo, light, view, target):
    with tf.GradientTape() as tape:
      tape.watch([depth, albedo, light, view])
      out = r.render(depth, albedo, light, view)
      mask = out["mask"][..., None]
      loss = tf.reduce_sum(tf.abs(out["recon_image"] - target) * mask) / (tf.reduce_sum(mask) * 3 + 1.0)
    if not backward:
      return loss
    return [loss] + tape.gradient(loss, [depth, albedo, light, view])

  return graph.function(step, jit_compile=jit_compile)


def configurations(backends=("tf", "tfg")):
  """(name, backend, kind, jit_compile) of every timed configuration; the kernel never runs under XLA."""
  configs = []
  for backend in backends:
    for jit in (False, True) if backend == "tf" else (False,):
      for kind in ("ids", "forward", "forward_backward"):
        configs.append((f"{backend}{' xla' if jit else ''} {kind}", backend, kind, jit))
  return configs


def run(batch=64, size=64, repeats=7, backends=("tf", "tfg"), max_angle=60.0, seed=0, progress=True):
  """Times every configuration; returns a list of dicts (one per configuration) plus an agreement summary.

  Each dict: name, backend, kind ("ids" = the backend's triangle ids alone, "forward" = `Renderer.render` plus a
  masked L1 loss, "forward_backward" = the same with gradients w.r.t. depth, albedo, light and view), jit_compile
  (the whole step compiled with XLA; the "tf" backend compiles its own part with XLA in any case), batch, size,
  repeats, median_ms, min_ms, compile_s (first call, tracing and compilation included).
  """
  scene = grid_scene(batch, size, max_angle, seed)
  clip, faces = scene_clip(scene, size)
  inputs = [tf.constant(scene[k]) for k in ("depth", "albedo", "light", "view")]
  inputs.append(tf.constant(np.random.RandomState(seed + 1).uniform(-1, 1, scene["albedo"].shape), tf.float32))
  configs = configurations(backends)
  fns, results = {}, []
  for name, backend, kind, jit in configs:
    if kind == "ids":
      fn = _ids_fn(backend, faces, size, jit)
      args = (clip,)
    else:
      fn = _render_fn(backend, size, kind == "forward_backward", jit)
      args = tuple(inputs)
    start = time.perf_counter()
    tf.nest.map_structure(lambda t: t.numpy(), fn(*args))
    compile_s = time.perf_counter() - start
    fns[name] = (fn, args)
    results.append(
      {
        "name": name,
        "backend": backend,
        "kind": kind,
        "jit_compile": jit,
        "batch": batch,
        "size": size,
        "repeats": repeats,
        "compile_s": round(compile_s, 2),
        "times": [],
      }
    )
  for _ in tqdm(range(repeats), desc="rounds", unit="round", disable=not progress):
    for result in results:
      fn, args = fns[result["name"]]
      start = time.perf_counter()
      tf.nest.map_structure(lambda t: t.numpy(), fn(*args))
      result["times"].append(time.perf_counter() - start)
  for result in results:
    times = result.pop("times")
    result["median_ms"] = round(1000 * float(np.median(times)), 2)
    result["min_ms"] = round(1000 * float(np.min(times)), 2)
  agreement = None
  if {"tf", "tfg"} <= set(backends):
    ids = {b: rasterizer.get_backend(b).triangle_ids(clip, faces, size, size).numpy() for b in ("tf", "tfg")}
    agreement = {
      "pixels": int(ids["tf"].size),
      "equal_ids": float(np.mean(ids["tf"] == ids["tfg"])),
      "covered": float(np.mean(ids["tfg"] >= 0)),
    }
  return results, agreement


def table(results):
  """The results as a fixed-width text table."""
  lines = [f"{'configuration':<28} {'batch':>5} {'size':>4} {'median ms':>10} {'min ms':>8} {'compile s':>10}"]
  for r in results:
    lines.append(
      f"{r['name']:<28} {r['batch']:>5} {r['size']:>4} {r['median_ms']:>10.2f} {r['min_ms']:>8.2f} "
      f"{r['compile_s']:>10.2f}"
    )
  return "\n".join(lines)


def make_parser() -> argparse.ArgumentParser:
  """This entry point's command line: `main` parses it; tests/test_doc_commands.py checks the docs against it."""
  parser = argparse.ArgumentParser(
    prog="python -m pdr_tf.benchmarks.rasterizer",
    description=__doc__,
    formatter_class=argparse.RawDescriptionHelpFormatter,
  )
  parser.add_argument("--json", default=None, help="write the results here")
  parser.add_argument("--batch", type=int, default=64, help="images per batch")
  parser.add_argument("--size", type=int, default=64, help="image side in pixels (grid mesh of size^2 vertices)")
  parser.add_argument("--repeats", type=int, default=7, help="timed rounds (each calls every configuration once)")
  parser.add_argument("--backends", default="tf,tfg", help="comma-separated backends to time")
  parser.add_argument("--max_angle", type=float, default=60.0, help="view rotation range in degrees, per axis")
  parser.add_argument("--seed", type=int, default=0)
  cli.add_log_level(parser)
  return parser


def main(argv=None) -> int:
  """Entry point: times the rasterizer backends, prints a table and optionally writes JSON."""
  parser = make_parser()
  args = parser.parse_args(argv)
  output_files.check_json_argument(parser, args.json, REPORT_WRITER)
  cli.setup_logging(args.log_level)
  backends = tuple(b.strip() for b in args.backends.split(",") if b.strip())
  unknown = [b for b in backends if b not in rasterizer.backends()]
  if unknown:
    parser.error(f"unknown backends {unknown}; available: {', '.join(rasterizer.backends())}")
  logging.info(
    "Timing %s at batch %d, %dx%d, %d rounds", ", ".join(backends), args.batch, args.size, args.size, args.repeats
  )
  results, agreement = run(args.batch, args.size, args.repeats, backends, args.max_angle, args.seed)
  print(table(results))
  if agreement:
    print(
      f"tf vs tfg triangle ids: {agreement['equal_ids']:.6f} of {agreement['pixels']} pixels equal "
      f"({agreement['covered']:.3f} covered)"
    )
  if args.json:
    report = {
      "machine": {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "tensorflow": tf.__version__,
      },
      "auto_backend": rasterizer.resolve_backend("auto"),
      "agreement": agreement,
      "results": results,
    }
    if not output_files.write_json_argument(args.json, report, REPORT_WRITER):
      return 1
  else:
    logging.info("Done (no --json given; results printed only)")
  return 0


if __name__ == "__main__":
  sys.exit(main())
