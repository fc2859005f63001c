"""Synthetic worlds rendered with the project's renderer and written in the real datasets' on-disk formats.

Three worlds stand in for data that cannot be downloaded here: "cars" (syncar-like ShapeNet car renders in five
classes), "faces" (UTKFace-like aligned crops) and "bbt" (Big Bang Theory-like face tracks of five identities). Each
image gets a ground-truth sidecar (formats.GT_SUFFIX: depth, light, view), each world a ground_truth.csv of labels and,
written last, a summary JSON (SUMMARY_FILENAME). See docs/synthetic.md.
"""

import json
import logging
import os
import shutil

from pdr_tf.data import formats
from pdr_tf.synthetic import bbt
from pdr_tf.synthetic import cars
from pdr_tf.synthetic import faces
from pdr_tf.synthetic import render

logger = logging.getLogger(__name__)

# Bumped whenever a world renders different images for the same seed, so that `is_complete` no longer accepts a
# raw world written by an earlier version (2: the faces and BBT backdrops are lit like the face).
VERSION = 2
SUMMARY_FILENAME = "synthetic_world.json"
IN_PROGRESS_FILENAME = ".synthetic_world_in_progress"  # exists only while a world is being written
_MODULES = {"cars": cars, "faces": faces, "bbt": bbt}
WORLDS = tuple(_MODULES)
# What each world writes under its output folder (besides the summary), removed before it is rewritten.
_OUTPUTS = {
  "cars": formats.SYNCAR_SPLITS + (formats.SHAPENET_METADATA_FILENAME, render.LABELS_FILENAME),
  "faces": (faces.IMAGES_DIRNAME, render.LABELS_FILENAME),
  "bbt": (formats.BBT_TRACKS_DIRNAME, formats.BBT_LABELS_FILENAME, render.LABELS_FILENAME),
}


# The folder, relative to a world's output folder, that its Beam job takes as --input_dir (the UTKFace download
# unpacks into a UTKFace/ folder of flat images; syncar and BBT roots hold their own sub-folders).
_DATASET_ROOTS = {"cars": ".", "faces": faces.IMAGES_DIRNAME, "bbt": "."}


class WorldFolderError(ValueError):
  """The output folder cannot take the world: it is a file, or holds another world or files no world wrote. A refusal
  of the folder (the command line exits 1, as `train` does for a refused data folder), not of the arguments."""


def dataset_root(world: str, output_dir: str) -> str:
  """The folder of a world that its Beam job reads (`--input_dir`): <out>/UTKFace for faces, <out> otherwise."""
  return os.path.normpath(os.path.join(output_dir, _DATASET_ROOTS[_module(world).WORLD]))


def default_sizes(world: str) -> dict:
  """The size arguments of a world and their defaults."""
  return dict(_module(world).DEFAULT_SIZES)


def _module(world):
  if world not in _MODULES:
    raise ValueError(f"unknown synthetic world {world!r}; expected one of {', '.join(WORLDS)}")
  return _MODULES[world]


def read_summary(output_dir: str):
  """The summary dict of a complete world in output_dir, or None when there is none (or it is unreadable)."""
  try:
    with open(os.path.join(output_dir, SUMMARY_FILENAME), encoding="utf-8") as f:
      summary = json.load(f)
  except (OSError, ValueError):
    return None
  return summary if isinstance(summary, dict) else None


def count_images(world: str, output_dir: str) -> int:
  """Number of image files of a world in output_dir, recognised by the dataset's own file-name patterns."""

  def matching(folder, pattern):
    return sum(1 for n in os.listdir(folder) if pattern.match(n)) if os.path.isdir(folder) else 0

  if world == "cars":
    return sum(matching(os.path.join(output_dir, split), formats.SYNCAR_FILENAME) for split in formats.SYNCAR_SPLITS)
  if world == "faces":
    return matching(os.path.join(output_dir, faces.IMAGES_DIRNAME), formats.UTKFACE_FILENAME)
  tracks = os.path.join(output_dir, formats.BBT_TRACKS_DIRNAME)
  if not os.path.isdir(tracks):
    return 0
  return sum(matching(os.path.join(tracks, t), formats.BBT_FRAME_FILENAME) for t in os.listdir(tracks))


def is_complete(output_dir: str) -> bool:
  """True when output_dir holds a fully written world of this VERSION: summary present, no write in progress, and
  as many images on disk as the summary lists."""
  summary = read_summary(output_dir)
  if summary is None or os.path.exists(os.path.join(output_dir, IN_PROGRESS_FILENAME)):
    return False
  if summary.get("version") != VERSION or summary.get("world") not in _MODULES:
    return False
  return count_images(summary["world"], output_dir) == summary.get("num_images")


def _prepare(world: str, output_dir: str) -> None:
  """Makes output_dir ready for a fresh write, refusing to touch files that no synthetic world wrote."""
  if os.path.exists(output_dir) and not os.path.isdir(output_dir):
    raise WorldFolderError(f"{output_dir} is a file, not a folder; write the {world!r} world to a new or empty folder")
  os.makedirs(output_dir, exist_ok=True)
  summary_path = os.path.join(output_dir, SUMMARY_FILENAME)
  marker = os.path.join(output_dir, IN_PROGRESS_FILENAME)
  summary = read_summary(output_dir)
  if summary is not None and summary.get("world") != world:
    raise WorldFolderError(
      f"{output_dir} already holds a synthetic {summary.get('world')!r} world; "
      f"write the {world!r} world to another directory"
    )
  entries = sorted(os.listdir(output_dir))
  if entries and summary is None and not os.path.exists(marker):  # e.g. the user's real images: never mixed in
    raise WorldFolderError(
      f"{output_dir} holds {len(entries)} entries (e.g. {entries[:3]}) and no synthetic world; pdr_tf never writes "
      "among files that no synthetic world wrote: use a new or empty folder, or one holding a world of its own"
    )
  stale = [name for name in _OUTPUTS[world] if os.path.exists(os.path.join(output_dir, name))]
  with open(marker, "w", encoding="utf-8") as f:
    f.write(world + "\n")
  if os.path.exists(summary_path):
    os.remove(summary_path)
  for name in stale:
    path = os.path.join(output_dir, name)
    if os.path.isdir(path):
      shutil.rmtree(path)
    else:
      os.remove(path)


def _camera_summary(camera: render.Camera) -> dict:
  return {
    "raw_size": camera.size,
    "intrinsics": [float(k) for k in camera.intrinsics],
    "supersample": camera.supersample,
    "model_fov_degrees": render.MODEL_FOV_DEGREES,
    "rotation_center": [float(c) for c in render.ROTATION_CENTER],
  }


def generate(world: str, output_dir: str, seed: int = 0, progress: bool = True, **sizes) -> dict:
  """Renders a synthetic world into output_dir in its dataset's format; deterministic for (world, seed, sizes).

  A previous world of the same kind in output_dir (complete or interrupted) is replaced; other files are refused.
  The summary JSON is the last file written, so `is_complete(output_dir)` tells a finished world from a partial one.

  Args:
    world: "cars", "faces" or "bbt".
    output_dir: destination folder (created if needed).
    seed: world seed.
    progress: show tqdm progress bars.
    **sizes: the world's size arguments (see `default_sizes(world)`); missing ones take their defaults.

  Returns:
    The summary dict (also written to <output_dir>/synthetic_world.json).
  """
  module = _module(world)
  unknown = sorted(set(sizes) - set(module.DEFAULT_SIZES))
  if unknown:
    raise ValueError(
      f"unknown size argument(s) {unknown} for the {world!r} world; valid: {', '.join(sorted(module.DEFAULT_SIZES))}"
    )
  if int(seed) != seed:
    raise ValueError(f"seed must be an integer, got {seed!r}")
  sizes = dict(module.DEFAULT_SIZES, **sizes)
  module.check_sizes(**sizes)  # before anything on disk changes
  _prepare(world, output_dir)
  logger.info("Rendering the synthetic %s world (seed %d, %s) into %s", world, seed, sizes, output_dir)
  details = module.generate(output_dir, seed=int(seed), progress=progress, **sizes)
  summary = {
    "world": world,
    "seed": int(seed),
    "version": VERSION,
    "sizes": sizes,
    "camera": _camera_summary(module.CAMERA),
    "dataset_root": _DATASET_ROOTS[world],
    "ground_truth": {"suffix": formats.GT_SUFFIX, "keys": list(formats.GT_KEYS), "labels_file": render.LABELS_FILENAME},
  }
  summary.update(details)
  with open(os.path.join(output_dir, SUMMARY_FILENAME), "w", encoding="utf-8") as f:
    json.dump(summary, f, indent=2, sort_keys=True)
    f.write("\n")
  os.remove(os.path.join(output_dir, IN_PROGRESS_FILENAME))
  logger.info("Wrote %d images of the %s world to %s", summary["num_images"], world, output_dir)
  return summary
