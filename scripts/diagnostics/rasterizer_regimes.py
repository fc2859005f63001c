"""Diagnostic: which rasterization regime a scene is in, and what the triangle ids cost there.

python scripts/diagnostics/rasterizer_regimes.py [WORKDIR DATA_DIR [NUM_IMAGES]]

Builds the training step's two benchmark scenes (`pdr_tf.benchmarks.training`: the quick-preset cars model, batch 16,
the scene and its mirror, so 32 images; "smooth" and "edge_on"), and, given a training run, the scenes its latest
checkpoint predicts for NUM_IMAGES (64) validation images. For each it prints the candidate pixels per image a box
rasterizer tests and those the `tf` backend tests (its row spans), whether `tf` enumerates it with its sparse window
(`rasterizer_tf.is_sparse`), and the median time of the triangle ids over REPEATS (9) calls with the compiled `tf`
backend and, where it can be built, the TF-Graphics kernel `tfg`, with the fraction of pixels where they agree.
"""

import os
import sys
import time

import numpy as np
import tensorflow as tf

from pdr_tf.benchmarks import training
from pdr_tf.render import kernel_build
from pdr_tf.render import rasterizer
from pdr_tf.render import rasterizer_tf
from pdr_tf.render import renderer as renderer_lib

REPEATS = int(os.environ.get("REPEATS", 9))


def scene_clip(r, depth, view):
  """Clip-space vertices of the mesh `Renderer.warp_depth` rasterizes."""
  return rasterizer.clip_space(r.view_mesh(depth, view), r.intrinsics, (r.image_size, r.image_size))


def bench_scenes():
  """{name: (clip, faces, size)} of the training step's smooth and edge-on scenes (scene and mirror, 2B = 32)."""
  scenes = {}
  for name, mode in (("step smooth", "tf_xla_render"), ("step edge-on", "tf_xla_render_edge_on")):
    net, _, _ = training.build_training(training.QUICK_MODEL, mode)
    out = net(training._random_images(16), training=False)  # pylint: disable=protected-access
    depth, _, _, view = renderer_lib.flip_pair(out["depth"], out["albedo"], out["light"], out["view"])
    scenes[name] = (scene_clip(net.renderer, depth, view), net.renderer.faces, net.renderer.image_size)
  return scenes


def run_scenes(workdir, data_dir, num_images):
  """{name: (clip, faces, size)} of a trained run's predicted scenes on validation images."""
  from pdr_tf.data import input_pipeline  # pylint: disable=import-outside-toplevel
  from pdr_tf.training import workdir as workdir_lib  # pylint: disable=import-outside-toplevel

  model = workdir_lib.restore_model(workdir, None)
  batch = input_pipeline.ground_truth_batch(data_dir, "val", num_images)
  if batch is None:
    sys.exit(f"{data_dir} has no 'val' records with ground truth")
  scene = model.predict_scene(batch["image"])
  r = model.renderer
  return {f"run {workdir}": (scene_clip(r, scene["depth"], scene["view"]), r.faces, r.image_size)}


def median_ms(fn):
  fn()  # warm-up: tracing and XLA compilation
  times = []
  for _ in range(REPEATS):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return 1000.0 * float(np.median(times))


def report(name, clip, faces, size):
  boxes, spans = rasterizer_tf.candidate_counts(clip, faces, size, size)
  sparse = rasterizer_tf.is_sparse(clip, faces, size, size)
  line = f"{name}: {int(clip.shape[0])} images, candidates/image boxes {boxes:,.0f}, spans {spans:,.0f}, "
  tf_ms = median_ms(lambda: rasterizer_tf.triangle_ids(clip, faces, size, size).numpy())
  line += f"{'sparse' if sparse else 'dense'}; ids tf {tf_ms:.1f} ms"
  if kernel_build.kernel_available():
    kernel = rasterizer.get_backend("tfg")
    compiled = tf.function(lambda c: kernel.triangle_ids(c, faces, size, size))
    agree = np.mean(compiled(clip).numpy() == rasterizer_tf.triangle_ids(clip, faces, size, size).numpy())
    line += f", tfg {median_ms(lambda: compiled(clip).numpy()):.1f} ms, equal ids {agree:.5f}"
  print(line, flush=True)


def main():
  if len(sys.argv) == 2 or len(sys.argv) > 4 or (len(sys.argv) == 4 and not sys.argv[3].isdigit()):
    sys.exit(__doc__)
  scenes = bench_scenes()
  if len(sys.argv) >= 3:
    scenes.update(run_scenes(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 64))
  for name, (clip, faces, size) in scenes.items():
    report(name, clip, faces, size)


if __name__ == "__main__":
  main()
