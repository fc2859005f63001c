"""Test helpers: tiny TFRecord datasets written with the project's one schema."""

import importlib.util
import io
import os
import pathlib
import re
import sys

import numpy as np
from PIL import Image

from pdr_tf.data import feature_spec

# Subprocesses in tests get this limit only to stop a deadlock from hanging CI: it is no budget. A loaded machine
# makes a subprocess slower, never wrong, so no test may fail because one took long.
HANG_GUARD_S = 3600
REPO = pathlib.Path(__file__).resolve().parents[1]
DIAGNOSTICS = REPO / "scripts" / "diagnostics"


def python_result(argv):
  """Runs `python argv...` in the repository with TensorFlow quiet (a fresh process: logical devices can be set up
  before TensorFlow runs an op) and returns the JSON it printed on its last line starting "RESULT "."""
  import json  # pylint: disable=import-outside-toplevel
  import subprocess  # pylint: disable=import-outside-toplevel

  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
  proc = subprocess.run(
    [sys.executable, *argv], capture_output=True, text=True, cwd=REPO, env=env, timeout=HANG_GUARD_S, check=False
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
  assert lines, proc.stdout[-3000:]
  return json.loads(lines[-1][len("RESULT ") :])


# The pages a user reads: their links and their commands are checked (test_docs.py, test_doc_commands.py).
DOC_PAGES = [str(REPO / "README.md")] + sorted(str(p) for p in (REPO / "docs").glob("*.md"))


# A fenced code block's opening or closing line, with the opening line's language (```bash, ```python).
FENCE = re.compile(r"^\s*(?:```|~~~)\s*(\w*)")


def markdown_parts(path):
  """(prose, blocks) of a markdown page. prose: its lines with every fenced block's lines (fences included)
  blanked, so line numbers stay; blocks: per fenced block, (language, [(line number, text), ...])."""
  prose, blocks, block = [], [], None
  with open(path, encoding="utf-8") as f:
    for number, line in enumerate(f.read().split("\n"), 1):
      fence = FENCE.match(line)
      if fence and block is None:
        block = (fence.group(1), [])
      elif fence:
        blocks.append(block)
        block = None
      elif block is not None:
        block[1].append((number, line))
      prose.append("" if fence or block is not None else line)
  return prose, blocks


def load_diagnostic(name):
  """Imports scripts/diagnostics/<name>.py as a module, its folder on sys.path as when the script runs (so its
  sibling modules import)."""
  if str(DIAGNOSTICS) not in sys.path:
    sys.path.insert(0, str(DIAGNOSTICS))
  spec = importlib.util.spec_from_file_location(f"diagnostics_{name}", DIAGNOSTICS / f"{name}.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def png_bytes(image: np.ndarray) -> bytes:
  return png_image(image)


def blob_image(rng, size=64, colour=None):
  """A symmetric coloured blob on grey: an object the de-renderer can reconstruct."""
  yy, xx = np.mgrid[0:size, 0:size] / (size - 1) * 2 - 1
  radius = rng.uniform(0.4, 0.7)
  inside = (xx**2 + (yy / rng.uniform(0.6, 1.0)) ** 2) < radius**2
  colour = np.asarray(colour if colour is not None else rng.uniform(40, 240, 3))
  shade = 0.6 + 0.4 * (1 - (xx**2 + yy**2))[..., None]
  image = np.where(inside[..., None], colour * shade, 128.0)
  return np.clip(image, 0, 255).astype(np.uint8)


def blob_ground_truth(rng, size=64):
  """Ground truth of a blob-like scene: a bump's depth in the input view (0 outside), a light and a small view."""
  yy, xx = np.mgrid[0:size, 0:size] / (size - 1) * 2 - 1
  r2 = xx**2 + yy**2
  depth = np.where(r2 < 0.5, 1.0 - 0.03 * np.sqrt(np.clip(0.5 - r2, 0, None)), 0.0).astype(np.float32)
  light = [rng.uniform(0.2, 0.5), rng.uniform(0.5, 0.9), rng.uniform(-0.8, 0.8), rng.uniform(-0.8, 0.8)]
  view = list(np.radians(rng.uniform(-15, 15, 3))) + [0.0, 0.0, 0.0]
  return {"gt/has": 1, "gt/depth": depth, "gt/light": light, "gt/view": view}


def bump_depth(amplitude, radius=20.0, size=64) -> np.ndarray:
  """[size, size] depth of a centred round bump `amplitude` nearer than its rim (1.0) at `radius` pixels; 0 outside
  it (background, as ground-truth depth maps have it)."""
  yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
  r = np.sqrt(xx**2 + yy**2) / radius
  return np.where(r < 1, 1.0 - amplitude * np.cos(np.minimum(r, 1) * np.pi / 2), 0.0)


def write_tiny_dataset(
  path, num_train=16, num_test=10, classes=("a", "b"), seed=0, tracks=False, num_val=0, test_ground_truth=False
):
  """Writes train and test splits of blob images; test records carry labels (and track ids when `tracks`).

  With num_val > 0 a "val" split of blob images with (made-up) ground truth is written too, for the trainer's
  de-rendering validation; with test_ground_truth the test records carry such ground truth too (evaluate's
  de-rendering metrics).
  """
  rng = np.random.RandomState(seed)
  palette = [(220, 40, 40), (40, 40, 220), (40, 200, 40), (200, 200, 40), (200, 40, 200)]
  records = []
  for i in range(num_val):
    record = {"image/encoded": png_bytes(blob_image(rng)), "split": "val", "source/path": f"val/{i}.png"}
    record.update(blob_ground_truth(rng))
    records.append(record)
  for split, count in (("train", num_train), ("test", num_test)):
    for i in range(count):
      label = i % len(classes)
      record = {
        "image/encoded": png_bytes(blob_image(rng, colour=palette[label % len(palette)])),
        "split": split,
        "source/path": f"{split}/{i}.png",
      }
      if split == "test":
        record.update({"label/name": classes[label], "label/id": label})
        if tracks:
          record.update({"track/id": f"t{i // 2}", "track/frame": i})
        if test_ground_truth:
          record.update(blob_ground_truth(rng))
      records.append(record)
  feature_spec.write_dataset(str(path), records, dataset="custom")
  return str(path)


def tiny_de_renderer():
  """A built DeRenderer small enough for unit tests (confidence maps on), seeded."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel  (fixtures stay importable without TF)

  from pdr_tf.model import de_renderer  # pylint: disable=import-outside-toplevel

  tf.keras.utils.set_random_seed(0)
  model = de_renderer.DeRenderer(nf=8, zdim=16, encoder_nf=8, use_confidence=True, conf_zdim=16)
  model.build_for_inference()
  return model


def tiny_images():
  """[2, 64, 64, 3] fixed random images in [-1, 1]."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel

  return tf.random.stateless_uniform([2, 64, 64, 3], [1, 2], -1.0, 1.0)


def png_image(array, mode=None, **save_args) -> bytes:
  """PNG bytes of a uint8 array, optionally converted to a PIL mode first (e.g. "LA", "P", "I;16")."""
  image = Image.fromarray(array) if mode is None else Image.fromarray(array).convert(mode)
  buffer = io.BytesIO()
  image.save(buffer, format="PNG", **save_args)
  return buffer.getvalue()


def random_rgb(height=20, width=30, seed=0) -> np.ndarray:
  return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def gt_npz(depth, light=None, view=None, drop=None) -> bytes:
  """A ground-truth sidecar (.gt.npz bytes) with depth, light and view; `drop` leaves one array out."""
  arrays = {
    "depth": depth,
    "light": np.arange(4, dtype=np.float32) if light is None else light,
    "view": np.arange(6, dtype=np.float32) if view is None else view,
  }
  arrays.pop(drop, None)
  buffer = io.BytesIO()
  np.savez(buffer, **arrays)
  return buffer.getvalue()


def folder_bytes(folder):
  """{relative path: bytes} of every file under `folder`: compare two calls to show nothing was written or deleted."""
  out = {}
  for root, _, names in os.walk(folder):
    for name in names:
      path = os.path.join(root, name)
      with open(path, "rb") as f:
        out[os.path.relpath(path, folder)] = f.read()
  return out
