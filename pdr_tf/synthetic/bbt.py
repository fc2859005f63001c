"""The synthetic BBT world: five recurring identities in short face tracks with smooth pose and lighting changes.

Written like a face-track preparation of The Big Bang Theory S01E01: <out>/tracks/<track id>/<frame>.jpg plus
<out>/tracklabels.ids. Track counts follow the real episode's proportions (formats.BBT_TRACK_COUNTS) times
`track_scale`. Frames are FRAME_SIZE square face crops framed like the UTKFace world (the central
formats.FACE_CENTER_CROP of each side is the model camera's view), so either crop convention works downstream.
"""

import os

import numpy as np
from tqdm import tqdm

from pdr_tf.data import formats
from pdr_tf.synthetic import faces
from pdr_tf.synthetic import render

WORLD = "bbt"
DEFAULT_SIZES = {"track_scale": 0.25, "min_frames": 8, "max_frames": 24}
FRAME_SIZE = 128
CAMERA = render.Camera.for_center_crop(FRAME_SIZE, formats.FACE_CENTER_CROP)
FRAME_DIGITS = 6  # frame names are zero-padded episode frame numbers, so text and numeric order agree
EPISODE_FRAMES = 32000  # about 22 minutes at 24 fps

# Labels (age, gender, race) and code overrides that make each character recognisable, as in the show.
_CHARACTERS = {
  "leonard": (
    (27, 0, 0),
    {"hair": (0.12, 0.08, 0.05), "glasses": True, "hairline": -0.6, "hair_volume": 0.07, "height": 1.28, "jaw": 0.28},
  ),
  "sheldon": (
    (27, 0, 0),
    {
      "hair": (0.35, 0.24, 0.14),
      "height": 1.45,
      "a": 0.054,
      "jaw": 0.36,
      "nose_len": 1.2,
      "hairline": -0.62,
      "hair_volume": 0.03,
    },
  ),
  "penny": (
    (23, 1, 0),
    {"hair": (0.8, 0.66, 0.38), "long_hair": True, "skin": (0.88, 0.7, 0.6), "jaw": 0.4, "lips": (0.75, 0.38, 0.38)},
  ),
  "howard": (
    (27, 0, 0),
    {"hair": (0.2, 0.13, 0.08), "hairline": -0.42, "hair_volume": 0.09, "a": 0.055, "height": 1.4, "nose_len": 1.35},
  ),
  "raj": (
    (27, 0, 3),
    {"hair": (0.04, 0.03, 0.03), "skin": (0.55, 0.37, 0.25), "hairline": -0.58, "nose_width": 1.3, "cheeks": 1.3},
  ),
}
_DEFAULT_TRAITS = {"glasses": False, "beard": False, "long_hair": False}


def character_code(seed: int, name: str) -> dict:
  """The identity code of one character: drawn from its labels, then fixed by its distinguishing traits."""
  if name not in _CHARACTERS:
    raise ValueError(f"unknown BBT identity {name!r}; expected one of {formats.BBT_IDENTITIES}")
  (age, gender, race), overrides = _CHARACTERS[name]
  code = faces.sample_identity(render.seeded_random(seed, WORLD, "identity", name), age, gender, race)
  traits = dict(_DEFAULT_TRAITS, **overrides)
  code.update({k: np.asarray(v) if isinstance(v, tuple) else v for k, v in traits.items()})
  code["brow_colour"] = code["hair"] * 0.7
  return code


def track_counts(track_scale: float) -> dict:
  """Tracks per identity: the real episode's counts times `track_scale`, rounded, at least one each."""
  if not isinstance(track_scale, (int, float)) or not 0 < track_scale < float("inf"):
    raise ValueError(f"bbt: track_scale must be positive and finite, got {track_scale!r}")
  return {name: max(1, int(round(formats.BBT_TRACK_COUNTS[name] * track_scale))) for name in formats.BBT_IDENTITIES}


def sample_track(rng: np.random.RandomState, frames: int):
  """A smooth pose and lighting sequence: views [frames, 6] and lights [frames, 4] eased from a start to an end."""
  t = np.linspace(0.0, 1.0, frames)[:, None]
  ease = t * t * (3.0 - 2.0 * t)
  start_view, end_view = np.zeros(6), np.zeros(6)
  start_view[:3] = rng.uniform(-1, 1, 3) * (faces.PITCH_RANGE, faces.YAW_RANGE, faces.ROLL_RANGE)
  end_view[:3] = start_view[:3] + rng.uniform(-1, 1, 3) * (np.radians(8), np.radians(20), np.radians(4))
  start_view[3:5] = rng.uniform(-faces.TRANSLATION_RANGE, faces.TRANSLATION_RANGE, 2)
  end_view[3:5] = start_view[3:5] + rng.uniform(-0.002, 0.002, 2)
  start_light = render.sample_lights(rng, 1, faces.AMBIENT_RANGE, faces.DIFFUSE_RANGE, faces.DIRECTION_RANGE)[0]
  end_light = start_light + rng.uniform(-1, 1, 4) * (0.08, 0.1, 0.4, 0.3)
  views = start_view + ease * (end_view - start_view)
  views[:, 1] += np.radians(2.0) * np.sin(2 * np.pi * (t[:, 0] * rng.uniform(0.5, 1.5) + rng.rand()))  # head wobble
  return views, start_light + ease * (end_light - start_light)


def check_sizes(
  track_scale=DEFAULT_SIZES["track_scale"],
  min_frames=DEFAULT_SIZES["min_frames"],
  max_frames=DEFAULT_SIZES["max_frames"],
) -> None:
  """Raises ValueError unless track_scale > 0 and min_frames, max_frames are integers with 1 <= min <= max."""
  track_counts(track_scale)
  if not (all(isinstance(v, (int, np.integer)) for v in (min_frames, max_frames)) and 1 <= min_frames <= max_frames):
    raise ValueError(f"bbt: need integers 1 <= min_frames <= max_frames, got {min_frames!r}, {max_frames!r}")


def generate(
  output_dir: str,
  seed: int = 0,
  track_scale: float = 0.25,
  min_frames: int = 8,
  max_frames: int = 24,
  progress: bool = True,
) -> dict:
  """Writes the BBT world: <out>/tracks/<track id>/<frame>.jpg with .gt.npz sidecars, <out>/tracklabels.ids and
  ground_truth.csv. Track ids are 1..N in a seeded random order of identities. The summary is written by the caller.

  Args:
    output_dir: destination folder (must exist).
    seed: world seed; equal seeds and sizes give byte-identical files.
    track_scale: tracks per identity = round(real count x track_scale), at least 1 (1.0: 253/211/111/42/26).
    min_frames, max_frames: frames per track, uniform in [min_frames, max_frames].
    progress: show a tqdm progress bar.

  Returns:
    The world-specific part of the summary.
  """
  check_sizes(track_scale=track_scale, min_frames=min_frames, max_frames=max_frames)
  counts = track_counts(track_scale)
  names = [name for name in formats.BBT_IDENTITIES for _ in range(counts[name])]
  order = render.seeded_random(seed, WORLD, "order").permutation(len(names))
  codes = {name: character_code(seed, name) for name in formats.BBT_IDENTITIES}
  characters = {name: faces.head_mesh(code) for name, code in codes.items()}
  tracks_dir = os.path.join(output_dir, formats.BBT_TRACKS_DIRNAME)
  os.makedirs(tracks_dir, exist_ok=True)
  lines, labels = [formats.BBT_LABELS_HEADER], []
  frames_per_identity = {name: 0 for name in formats.BBT_IDENTITIES}
  for position in tqdm(range(len(names)), desc="bbt (tracks)", disable=not progress, unit="track"):
    track_id, name = position + 1, names[order[position]]
    rng = render.seeded_random(seed, WORLD, "track", track_id)
    frames = int(rng.randint(min_frames, max_frames + 1))
    views, lights = sample_track(rng, frames)
    backdrop = render.gradient_background(
      rng, 1, CAMERA.size * CAMERA.supersample, base_range=(0.15, 0.75), tint=0.15, slope=0.3
    )
    background = render.lit_background(backdrop, lights)
    # Clothes change between scenes: a new shirt colour per track.
    paint = faces.head_paint(dict(codes[name], shirt=rng.uniform(0.05, 0.9, 3)))
    images, depth = render.render_views(characters[name], views, lights, paint, CAMERA, background)
    folder = os.path.join(tracks_dir, str(track_id))
    os.makedirs(folder, exist_ok=True)
    first = int(rng.randint(EPISODE_FRAMES - frames))
    for k in range(frames):
      frame_name = f"{first + k:0{FRAME_DIGITS}d}.jpg"
      path = os.path.join(folder, frame_name)
      render.save_image(path, images[k])
      render.save_ground_truth(path, depth[k], lights[k], views[k])
      labels.append(
        {
          "image": f"{formats.BBT_TRACKS_DIRNAME}/{track_id}/{frame_name}",
          "split": "",
          "label": name,
          "object_id": track_id,
        }
      )
    lines.append(f"{track_id} {name}")
    frames_per_identity[name] += frames
  with open(os.path.join(output_dir, formats.BBT_LABELS_FILENAME), "w", encoding="utf-8") as f:
    f.write("\n".join(lines) + "\n")
  render.write_labels(output_dir, labels)
  return {
    "frame_size": FRAME_SIZE,
    "num_tracks": len(names),
    "num_images": len(labels),
    "tracks": counts,
    "frames": frames_per_identity,
  }
