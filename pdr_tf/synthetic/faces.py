"""The synthetic face world: parametric heads whose identities depend on age, gender and race, written like UTKFace.

A head is built in the canonical camera frame (x right, y down, z away from the camera; the face looks towards -z)
around the origin, which the renderer puts at (0, 0, 1). An identity is a shape code (head size, jaw, chin, nose,
brows, cheeks, eye sockets, ears, hair volume) and an albedo code (skin tone, hair and brow colour, lips, eyes, beard,
clothing); the age, gender and race labels shift the distributions the codes are drawn from. Lengths below are in
units of the head's half width `a` unless noted.
"""

import datetime
import os

import numpy as np
from tqdm import tqdm

from pdr_tf.data import formats
from pdr_tf.synthetic import meshes
from pdr_tf.synthetic import render

WORLD = "faces"
DEFAULT_SIZES = {"num_identities": 2000, "images_per_identity": 2}
IMAGES_DIRNAME = "UTKFace"
CAMERA = render.Camera.for_center_crop(formats.UTKFACE_RAW_SIZE, formats.FACE_CENTER_CROP)
HEAD_HALF_WIDTH = 0.058  # scene units: the face fills most of the model's 10-degree view at depth 1
YAW_RANGE, PITCH_RANGE, ROLL_RANGE = np.radians(35.0), np.radians(15.0), np.radians(5.0)
TRANSLATION_RANGE = 0.003
AMBIENT_RANGE, DIFFUSE_RANGE, DIRECTION_RANGE = (0.35, 0.65), (0.3, 0.7), 0.8
HEAD, EAR, NECK, TORSO, BACK_HAIR = range(5)  # part ids
_FIRST_TIMESTAMP = datetime.datetime(2017, 1, 9, 12, 0, 0)

_SKIN = {0: (0.86, 0.68, 0.58), 1: (0.36, 0.23, 0.16), 2: (0.86, 0.7, 0.55), 3: (0.6, 0.42, 0.3), 4: (0.72, 0.53, 0.4)}
_HAIR = ((0.75, 0.6, 0.35), (0.45, 0.3, 0.18), (0.22, 0.14, 0.08), (0.06, 0.05, 0.05), (0.5, 0.2, 0.08))
_HAIR_WEIGHTS = {
  0: (0.2, 0.3, 0.3, 0.12, 0.08),
  1: (0, 0, 0.1, 0.9, 0),
  2: (0, 0, 0.1, 0.9, 0),
  3: (0, 0, 0.15, 0.85, 0),
  4: (0.03, 0.1, 0.4, 0.45, 0.02),
}
_IRIS = ((0.25, 0.15, 0.08), (0.3, 0.45, 0.6), (0.3, 0.4, 0.25), (0.1, 0.07, 0.05))


def sample_labels(rng: np.random.RandomState):
  """(age, gender, race) drawn roughly like UTKFace: many young adults, some children and elderly."""
  kind = rng.choice(5, p=(0.12, 0.1, 0.5, 0.2, 0.08))
  age = [
    rng.uniform(1, 10),
    rng.uniform(10, 20),
    np.clip(rng.normal(30, 7), 18, 45),
    rng.uniform(45, 70),
    rng.uniform(70, 100),
  ][kind]
  return int(age), int(rng.rand() < 0.48), int(rng.choice(5, p=(0.42, 0.19, 0.145, 0.167, 0.078)))


def sample_identity(rng: np.random.RandomState, age: int, gender: int, race: int) -> dict:
  """Shape and albedo code of one identity, shifted by its labels."""
  n = rng.normal
  child, old, female = float(np.clip((14 - age) / 12, 0, 1)), float(np.clip((age - 45) / 40, 0, 1)), float(gender)
  wide_nose = race in (1, 3)
  code = {
    "a": HEAD_HALF_WIDTH * (1 + 0.05 * n()) * (1 - 0.04 * female),
    "height": 1.33 + 0.06 * n() - 0.12 * child,
    "depth": 1.18 + 0.05 * n() + 0.04 * (race == 0),
    "jaw": np.clip(0.3 + 0.08 * n() + 0.1 * female + 0.1 * child - 0.08 * (1 - female) * (age > 16), 0.05, 0.6),
    "chin": np.clip(1 + 0.3 * n() - 0.3 * female - 0.4 * child, 0.2, 1.8),
    "nose_len": np.clip(1 + 0.2 * n() - 0.3 * child + 0.15 * old - 0.1 * (race in (1, 2)), 0.4, 1.6),
    "nose_width": np.clip(1 + 0.15 * n() + 0.3 * wide_nose - 0.1 * female, 0.6, 1.6),
    "brow": np.clip(1 + 0.25 * n() - 0.35 * female - 0.5 * child, 0.1, 1.8),
    "cheeks": np.clip(1 + 0.3 * n() + 0.3 * child + 0.2 * (race == 2), 0.2, 2.0),
    "eyes": np.clip(1 + 0.2 * n() - 0.35 * (race == 2), 0.3, 1.6),
    "eye_y": -0.05 + 0.03 * n() + 0.08 * child,
    "ears": np.clip(1 + 0.2 * n(), 0.5, 1.5),
    "hairline": -0.55 + 0.06 * n() + 0.35 * old * (1 - female) * (rng.rand() < 0.5),
    "long_hair": bool(rng.rand() < (0.75 if female else 0.08)),
    "hair_volume": np.clip(0.04 + 0.02 * n(), 0, 0.09),
  }
  skin = np.asarray(_SKIN[race]) * (1 + 0.08 * n()) * (1 + 0.04 * rng.randn(3))
  hair = np.asarray(_HAIR[rng.choice(len(_HAIR), p=_HAIR_WEIGHTS[race])]) * (1 + 0.15 * n())
  grey = np.clip((age - 40) / 35 + 0.2 * n(), 0, 1)
  hair = (1 - grey) * hair + grey * np.array([0.72, 0.72, 0.7])
  code.update(
    skin=np.clip(skin, 0.05, 0.95),
    hair=np.clip(hair, 0.02, 0.95),
    brow_colour=np.clip(hair * 0.7 if grey < 0.7 else hair * 0.85, 0.02, 0.9),
    lips=np.clip(skin * np.array([1.0, 0.68, 0.7]) * (0.95 - 0.1 * female) + np.array([0.06 * female, 0, 0]), 0, 1),
    iris=np.asarray(_IRIS[rng.randint(len(_IRIS))] if race == 0 else _IRIS[0]) * (1 + 0.1 * n()),
    beard=bool(gender == 0 and age >= 18 and rng.rand() < 0.3),
    shirt=np.clip(rng.uniform(0.05, 0.9, 3), 0, 1),
    blush=0.05 * female + 0.05 * child,
    glasses=bool(rng.rand() < 0.12),
  )
  return code


def _gauss(u, v, cu, cv, su, sv):
  return np.exp(-0.5 * (((u - cu) / su) ** 2 + ((v - cv) / sv) ** 2))


def head_mesh(code: dict) -> meshes.Mesh:
  """The merged head, ears, neck, torso (and long hair) mesh of an identity, in the canonical frame at the origin."""
  a = code["a"]
  b, c = a * code["height"], a * code["depth"]
  head = meshes.superellipsoid((a, b, c), (0.9, 0.85), (0, 0, 0), HEAD, 56, 80, axis="y")

  def shape_head(v):
    u, w, front = v[:, 0] / a, v[:, 1] / b, np.clip(-v[:, 2] / c, 0, 1)
    f = meshes.smoothstep(0.2, 0.7, front)  # features only on the front of the head
    # Jaw narrows towards the chin; hair adds volume above the hairline.
    v[:, 0] *= 1 - code["jaw"] * meshes.smoothstep(0.05, 1.0, w)
    v[:, 0] *= 1 - 0.08 * meshes.smoothstep(0.0, 1.0, -w) * f
    out = np.zeros(len(v))
    out += -0.07 * code["eyes"] * _gauss(np.abs(u), w, 0.36, code["eye_y"], 0.16, 0.09)
    out += 0.05 * code["brow"] * _gauss(np.abs(u), w, 0.36, code["eye_y"] - 0.17, 0.25, 0.06)
    # The nose rises from between the eyes to its tip at w = 0.34 and falls off quickly below it.
    ridge = np.where(w < 0.34, meshes.smoothstep(code["eye_y"] - 0.05, 0.32, w), np.exp(-(((w - 0.34) / 0.05) ** 2)))
    out += 0.22 * code["nose_len"] * ridge * np.exp(-0.5 * (u / (0.09 * code["nose_width"])) ** 2)
    out += 0.05 * code["nose_width"] * _gauss(np.abs(u), w, 0.1 * code["nose_width"], 0.33, 0.06, 0.05)
    out += 0.05 * code["cheeks"] * _gauss(np.abs(u), w, 0.5, 0.22, 0.2, 0.18)
    out += 0.035 * _gauss(u, w, 0, 0.56, 0.2, 0.06)
    out += 0.07 * code["chin"] * _gauss(u, w, 0, 0.86, 0.22, 0.1)
    v[:, 2] -= c * out * f
    v *= 1 + code["hair_volume"] * meshes.smoothstep(-0.1, 0.2, code["hairline"] - w)[:, None]
    return v

  parts = [meshes.deform(head, shape_head)]
  ear = meshes.superellipsoid(
    (0.1 * a, 0.3 * a * code["ears"], 0.18 * a), (0.8, 0.8), (0.93 * a, 0.05 * b, 0.12 * c), EAR, 10, 16
  )
  parts.append(meshes.symmetric_pair(ear))
  parts.append(
    meshes.superellipsoid((0.55 * a, 0.7 * b, 0.55 * a), (0.2, 1.0), (0, 1.1 * b, 0.2 * c), NECK, 10, 24, axis="y")
  )
  parts.append(meshes.superellipsoid((2.3 * a, 0.7 * b, 1.1 * c), (0.7, 0.9), (0, 2.1 * b, 0.35 * c), TORSO, 20, 40))
  if code["long_hair"]:
    parts.append(
      meshes.superellipsoid((1.18 * a, 1.2 * b, 0.55 * c), (0.8, 0.8), (0, 0.35 * b, 0.5 * c), BACK_HAIR, 20, 32)
    )
  return meshes.with_normals(meshes.merge(parts))


def head_paint(code: dict) -> render.PaintFn:
  """The albedo of an identity: skin, hair (above the hairline and behind), brows, eyes, lips, beard, clothes."""
  a = code["a"]
  b, c = a * code["height"], a * code["depth"]
  skin, hair = np.asarray(code["skin"]), np.asarray(code["hair"])

  def paint(points, normals, part):
    u, w, z = points[:, 0] / a, points[:, 1] / b, points[:, 2] / c
    au, ey = np.abs(u), code["eye_y"]
    albedo = np.broadcast_to(skin, points.shape).copy()
    head = part == HEAD
    front = head & (z < -0.35)
    albedo[front] *= 1 + code["blush"] * _gauss(au, w, 0.5, 0.25, 0.15, 0.12)[front, None] * np.array([1, -1, -1])
    sclera = front & (((au - 0.36) / 0.13) ** 2 + ((w - ey) / 0.05) ** 2 < 1)
    albedo[sclera] = (0.85, 0.83, 0.8)
    iris = sclera & ((au - 0.36) ** 2 + ((w - ey) * b / a) ** 2 < 0.052**2)
    albedo[iris] = code["iris"]
    albedo[iris & ((au - 0.36) ** 2 + ((w - ey) * b / a) ** 2 < 0.022**2)] = (0.03, 0.03, 0.03)
    if code["glasses"]:
      ring = ((au - 0.36) / 0.2) ** 2 + ((w - ey) / 0.13) ** 2
      albedo[front & (((ring > 0.8) & (ring < 1.0)) | ((au < 0.17) & (np.abs(w - ey + 0.03) < 0.015)))] = 0.05
    brow_v = ey - 0.15 - 0.05 * np.clip(1 - ((au - 0.36) / 0.22) ** 2, 0, 1)
    thickness = 0.02 + 0.012 * np.clip(code["brow"], 0, 1.5)
    albedo[front & (au > 0.14) & (au < 0.6) & (np.abs(w - brow_v) < thickness)] = code["brow_colour"]
    albedo[front & ((u / 0.2) ** 2 + ((w - 0.56) / 0.055) ** 2 < 1)] = code["lips"]
    albedo[front & (au < 0.17) & (np.abs(w - 0.56) < 0.008)] = skin * 0.35
    albedo[front & ((au - 0.08) ** 2 / 0.035**2 + (w - 0.37) ** 2 / 0.02**2 < 1)] = skin * 0.4
    if code["beard"]:
      beard = head & (z < 0.0) & (((w > 0.62) & (au < 0.8)) | ((w > 0.45) & (w < 0.5) & (au < 0.3)))
      albedo[beard] = 0.7 * hair + 0.3 * skin
    line = code["hairline"] + 0.3 * u**2
    scalp = head & (((z < -0.35) & (w < line)) | ((z >= -0.35) & (w < 0.05 + 0.5 * meshes.smoothstep(-0.35, 0.6, z))))
    albedo[scalp | (part == BACK_HAIR)] = hair
    albedo[(part == TORSO)] = code["shirt"]
    return np.clip(albedo, 0.0, 1.0)

  return paint


def sample_pose_light(rng: np.random.RandomState, count: int):
  """Random views [count, 6] (pitch, yaw, roll radians; small x/y shift) and lights [count, 4]."""
  views = np.zeros((count, 6))
  views[:, 0] = rng.uniform(-PITCH_RANGE, PITCH_RANGE, count)
  views[:, 1] = rng.uniform(-YAW_RANGE, YAW_RANGE, count)
  views[:, 2] = rng.uniform(-ROLL_RANGE, ROLL_RANGE, count)
  views[:, 3:5] = rng.uniform(-TRANSLATION_RANGE, TRANSLATION_RANGE, (count, 2))
  lights = render.sample_lights(rng, count, AMBIENT_RANGE, DIFFUSE_RANGE, DIRECTION_RANGE)
  return views, lights


def render_identity(code: dict, rng: np.random.RandomState, count: int):
  """Renders `count` random views of one identity in front of one backdrop, which each image's light shades like
  the face (`render.lit_background`).

  Returns:
    images [count, H, W, 3] float in [0, 1], depth [count, H, W], views [count, 6], lights [count, 4].
  """
  views, lights = sample_pose_light(rng, count)
  backdrop = render.gradient_background(rng, 1, CAMERA.size * CAMERA.supersample)
  background = render.lit_background(backdrop, lights)
  images, depth = render.render_views(head_mesh(code), views, lights, head_paint(code), CAMERA, background)
  return images, depth, views, lights


def timestamp(index: int, rng: np.random.RandomState) -> str:
  """A unique 17-digit YYYYMMDDHHMMSSFFF timestamp for image `index` (strictly increasing with the index)."""
  moment = _FIRST_TIMESTAMP + datetime.timedelta(seconds=index, milliseconds=int(rng.randint(1000)))
  return moment.strftime("%Y%m%d%H%M%S") + f"{moment.microsecond // 1000:03d}"


def check_sizes(**sizes) -> None:
  """Raises ValueError unless num_identities and images_per_identity are positive integers."""
  for name, value in sizes.items():
    if not isinstance(value, (int, np.integer)) or value < 1:
      raise ValueError(f"faces: {name} must be a positive integer, got {value!r}")


def generate(
  output_dir: str, seed: int = 0, num_identities: int = 2000, images_per_identity: int = 2, progress: bool = True
) -> dict:
  """Writes the face world: <out>/UTKFace/<age>_<gender>_<race>_<timestamp>.jpg (200x200 aligned crops) with .gt.npz
  sidecars, and ground_truth.csv (label = identity number). The summary JSON is written by the caller.

  Args:
    output_dir: destination folder (must exist).
    seed: world seed; equal seeds and sizes give byte-identical files.
    num_identities: distinct people.
    images_per_identity: random pose and light per image.
    progress: show a tqdm progress bar.

  Returns:
    The world-specific part of the summary.
  """
  check_sizes(num_identities=num_identities, images_per_identity=images_per_identity)
  folder = os.path.join(output_dir, IMAGES_DIRNAME)
  os.makedirs(folder, exist_ok=True)
  labels, genders, races, ages = [], [0, 0], [0] * 5, []
  for identity in tqdm(range(num_identities), desc="faces (identities)", disable=not progress, unit="id"):
    rng = render.seeded_random(seed, WORLD, "identity", identity)
    age, gender, race = sample_labels(rng)
    code = sample_identity(rng, age, gender, race)
    images, depth, views, lights = render_identity(code, rng, images_per_identity)
    for k in range(images_per_identity):
      index = identity * images_per_identity + k
      name = f"{age}_{gender}_{race}_{timestamp(index, rng)}.jpg"
      path = os.path.join(folder, name)
      render.save_image(path, images[k])
      render.save_ground_truth(path, depth[k], lights[k], views[k])
      labels.append({"image": f"{IMAGES_DIRNAME}/{name}", "split": "", "label": identity, "object_id": identity})
    genders[gender] += images_per_identity
    races[race] += images_per_identity
    ages.append(age)
  render.write_labels(output_dir, labels)
  return {
    "num_identities": num_identities,
    "num_images": len(labels),
    "images_by_gender": dict(zip(formats.UTKFACE_GENDERS, genders)),
    "images_by_race": dict(zip(formats.UTKFACE_RACES, races)),
    "identity_age": {"min": int(min(ages)), "median": float(np.median(ages)), "max": int(max(ages))},
  }
