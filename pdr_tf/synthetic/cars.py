"""The synthetic car world: five procedurally varied car classes seen from random top views, written like syncar.

Object frame: x to the car's right, y forward, z up, ground at z = 0 before centring; units are scene units (a
typical car is about 0.15 long, so that it fills most of the model's 10-degree view at depth 1). Every car is
symmetric about x = 0 in geometry and paint. `sample_params`/`car_mesh`/`car_paint` define the classes;
`sample_views` the top views and lights; `generate` writes the dataset.
"""

import csv
import dataclasses
import hashlib
import os

import numpy as np
from tqdm import tqdm

from pdr_tf.data import formats
from pdr_tf.synthetic import meshes
from pdr_tf.synthetic import render

WORLD = "cars"
DEFAULT_SIZES = {
  "train_models_per_class": 50,  # x 5 classes x images_per_model = 2,000 training images
  "val_models_per_class": 5,
  "test_models_per_class": 25,  # 200 test images per class, 1,000 in all, as in the paper
  "images_per_model": 8,
}
CAMERA = render.Camera.for_crop(formats.SYNCAR_RAW_SIZE, formats.SYNCAR_CROP, supersample=2)
# Viewpoints follow syncar (docs/synthetic.md): "random viewpoints from the top, where the cars are primarily oriented
# vertically". The canonical view looks straight down on the car with its front at the top of the image; each image
# turns the car in the image plane (azimuth, rz) and tilts the camera away from the zenith (rx, ry).
AZIMUTH_RANGE = np.radians(30.0)  # rz uniform in +-AZIMUTH_RANGE: cars stay primarily vertical
TILT_RANGE = np.radians(20.0)  # rx and ry uniform in +-TILT_RANGE: views from the top
TRANSLATION_RANGE = 0.004  # tx, ty uniform in +-TRANSLATION_RANGE (scene units); tz = 0
AMBIENT_RANGE = (0.25, 0.55)
DIFFUSE_RANGE = (0.5, 0.9)
DIRECTION_RANGE = 0.9  # lx, ly uniform in +-DIRECTION_RANGE
BACKGROUND_RANGE = (0.85, 1.0)  # albedo of the plain ground: light grey to white, one level per image
LENGTH_SCALE = 1.15  # scene units per "class length unit": frames a car to fill most of the syncar crop

# Object frame (x right, y forward, z up) -> the canonical camera frame (x right, y down, z forward) of a car seen from
# straight above with its front at the top of the image: right -> x, forward -> -y (up in the image), up -> -z
# (towards the camera). A rotation by 180 degrees about x.
TO_CANONICAL = np.array([[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]])

BODY, CABIN, WHEEL, LIGHTBAR, BOX, SPARE, SPOILER = range(7)  # part ids
GENERIC_CAR_LEMMAS = ("car", "auto", "automobile", "machine", "motorcar")
_NAMES = {
  "police car": ("Police car", "Patrol car", "Police cruiser"),
  "ambulance": ("Ambulance", "Ambulance van"),
  "limousine": ("Limousine", "Stretch limousine"),
  "jeep": ("Jeep", "Off-road jeep"),
  "Ferrari": ("Ferrari", "Ferrari sports car", "Ferrari racer"),
}


@dataclasses.dataclass
class Car:
  """One synthetic car model: its class, ShapeNet-style name and lemmas, mesh (object frame) and paint."""

  class_name: str
  name: str
  lemmas: tuple
  mesh: meshes.Mesh
  paint: render.PaintFn
  params: dict


def _pick(rng, options, weights):
  weights = np.asarray(weights, np.float64)
  return options[rng.choice(len(options), p=weights / weights.sum())]


def _jitter(rng, colour, amount=0.04):
  return np.clip(np.asarray(colour, np.float64) + rng.uniform(-amount, amount, 3), 0.0, 1.0)


def sample_params(class_name: str, rng: np.random.RandomState) -> dict:
  """Shape and colour parameters of one car of a class. Lengths are absolute (scene units) or fractions of L."""
  u = rng.uniform
  p = dict(
    body_exp=(0.3, 0.3),
    front_drop=0.3,
    rear_drop=0.15,
    nose_taper=0.06,
    cabin_w=0.86,
    cabin_exp=(0.35, 0.3),
    taper_front=0.35,
    taper_rear=0.25,
    taper_side=0.18,
    wheel_w=0.075,
    wheelbase=0.62,
    clearance=0.05,
    lightbar=False,
    box=False,
    spare=False,
    spoiler=False,
    stripe=False,
    soft_top=False,
    centre_stripe=False,
  )
  if class_name == "police car":
    p.update(
      L=u(0.125, 0.14),
      W=u(0.38, 0.41),
      Hb=u(0.16, 0.19),
      cabin_len=u(0.44, 0.52),
      cabin_h=u(0.09, 0.11),
      cabin_y=u(-0.08, -0.03),
      wheel_r=u(0.066, 0.074),
      lightbar=True,
      scheme=_pick(rng, ("black_white", "stripe", "navy"), (0.45, 0.35, 0.2)),
    )
    p["base"] = {
      "black_white": _jitter(rng, (0.06, 0.06, 0.07), 0.02),
      "stripe": _jitter(rng, (0.9, 0.9, 0.9)),
      "navy": _jitter(rng, (0.08, 0.1, 0.26), 0.03),
    }[p["scheme"]]
    p["accent"] = _jitter(
      rng,
      _pick(
        rng,
        ((0.92, 0.92, 0.92), (0.1, 0.2, 0.65), (0.05, 0.05, 0.25)),
        (1, 0, 0) if p["scheme"] != "stripe" else (0, 0.6, 0.4),
      ),
      0.03,
    )
  elif class_name == "ambulance":
    p.update(
      L=u(0.135, 0.15),
      W=u(0.42, 0.45),
      Hb=u(0.16, 0.18),
      cabin_len=u(0.2, 0.25),
      cabin_h=u(0.11, 0.14),
      cabin_y=u(0.26, 0.3),
      cabin_w=0.9,
      taper_front=0.45,
      taper_rear=0.0,
      wheel_r=u(0.068, 0.076),
      front_drop=u(0.15, 0.3),
      rear_drop=0.0,
      box=True,
      box_len=u(0.56, 0.64),
      box_h=u(0.24, 0.3),
      lightbar=True,
      stripe=True,
    )
    p["base"] = _jitter(rng, _pick(rng, ((0.93, 0.93, 0.93), (0.92, 0.85, 0.25)), (0.8, 0.2)), 0.03)
    p["accent"] = _jitter(
      rng, _pick(rng, ((0.82, 0.08, 0.08), (0.92, 0.45, 0.08), (0.1, 0.25, 0.75)), (0.6, 0.2, 0.2)), 0.03
    )
  elif class_name == "limousine":
    p.update(
      L=u(0.145, 0.16),
      W=u(0.32, 0.35),
      Hb=u(0.13, 0.145),
      cabin_len=u(0.6, 0.68),
      cabin_h=u(0.07, 0.08),
      cabin_y=u(-0.08, -0.04),
      wheel_r=u(0.05, 0.056),
      wheelbase=0.72,
      front_drop=0.25,
      rear_drop=0.2,
    )
    p["base"] = _jitter(
      rng,
      _pick(
        rng,
        ((0.04, 0.04, 0.05), (0.9, 0.9, 0.9), (0.62, 0.63, 0.65), (0.07, 0.1, 0.28), (0.75, 0.68, 0.5)),
        (0.45, 0.25, 0.15, 0.1, 0.05),
      ),
      0.02,
    )
  elif class_name == "jeep":
    p.update(
      L=u(0.105, 0.12),
      W=u(0.48, 0.53),
      Hb=u(0.2, 0.24),
      cabin_len=u(0.46, 0.54),
      cabin_h=u(0.16, 0.19),
      cabin_y=u(-0.17, -0.12),
      cabin_w=0.96,
      cabin_exp=(0.2, 0.2),
      body_exp=(0.2, 0.2),
      front_drop=0.08,
      rear_drop=0.0,
      nose_taper=0.0,
      taper_front=0.12,
      taper_rear=0.02,
      taper_side=0.04,
      wheel_r=u(0.1, 0.12),
      wheel_w=0.1,
      clearance=u(0.08, 0.1),
      wheelbase=0.6,
      spare=True,
      soft_top=bool(rng.rand() < 0.5),
    )
    p["base"] = _jitter(
      rng,
      _pick(
        rng,
        (
          (0.3, 0.34, 0.16),
          (0.72, 0.63, 0.44),
          (0.06, 0.06, 0.06),
          (0.45, 0.06, 0.06),
          (0.88, 0.88, 0.86),
          (0.85, 0.4, 0.08),
          (0.1, 0.3, 0.15),
        ),
        (0.3, 0.2, 0.15, 0.1, 0.1, 0.08, 0.07),
      ),
      0.03,
    )
  elif class_name == "Ferrari":
    p.update(
      L=u(0.125, 0.14),
      W=u(0.45, 0.49),
      Hb=u(0.11, 0.13),
      cabin_len=u(0.32, 0.38),
      cabin_h=u(0.065, 0.08),
      cabin_y=u(-0.1, -0.04),
      cabin_w=0.78,
      body_exp=(0.45, 0.55),
      cabin_exp=(0.6, 0.6),
      front_drop=u(0.35, 0.5),
      rear_drop=0.1,
      nose_taper=u(0.15, 0.25),
      taper_front=0.55,
      taper_rear=0.45,
      taper_side=0.3,
      wheel_r=u(0.062, 0.07),
      wheel_w=0.09,
      clearance=0.03,
      wheelbase=0.6,
      spoiler=bool(rng.rand() < 0.5),
      centre_stripe=bool(rng.rand() < 0.25),
    )
    red = (u(0.7, 0.86), u(0.02, 0.08), u(0.02, 0.06))
    colours = (red, (0.95, 0.8, 0.05), (0.05, 0.05, 0.05), (0.92, 0.92, 0.92), (0.65, 0.66, 0.68), (0.1, 0.2, 0.6))
    p["base"] = _jitter(rng, _pick(rng, colours, (0.65, 0.12, 0.08, 0.05, 0.05, 0.05)), 0.02)
    p["accent"] = (0.92, 0.92, 0.92) if p["base"].mean() < 0.5 else (0.05, 0.05, 0.05)
  else:
    raise ValueError(f"unknown car class {class_name!r}; expected one of {formats.CAR_CLASSES}")
  p["L"] *= LENGTH_SCALE
  return p


def _body_top_scale(p, y):
  """Height scale of the body's upper half along the car (lower hood and trunk)."""
  t = np.asarray(y) / (p["L"] / 2)
  return 1.0 - p["front_drop"] * meshes.smoothstep(0.25, 1.0, t) - p["rear_drop"] * meshes.smoothstep(0.35, 1.0, -t)


def car_mesh(p: dict) -> meshes.Mesh:
  """Builds the merged, normal-carrying, bounding-box-centred mesh of a car from `sample_params` output."""
  length, width = p["L"], p["W"] * p["L"]
  hb, clearance, r = p["Hb"] * p["L"], p["clearance"] * p["L"], p["wheel_r"] * p["L"]
  zc = clearance + hb / 2
  body = meshes.superellipsoid((width / 2, length / 2, hb / 2), p["body_exp"], (0, 0, zc), BODY, 26, 56)

  def shape_body(v):
    top = v[:, 2] > zc
    v[:, 2] = np.where(top, zc + (v[:, 2] - zc) * _body_top_scale(p, v[:, 1]), v[:, 2])
    v[:, 0] *= 1.0 - p["nose_taper"] * meshes.smoothstep(0.2, 1.0, v[:, 1] / (length / 2))
    return v

  parts = [meshes.deform(body, shape_body)]
  yc = p["cabin_y"] * length
  body_top = zc + hb / 2 * float(_body_top_scale(p, yc))
  z1 = body_top + p["cabin_h"] * length
  cw, cl = p["cabin_w"] * width, p["cabin_len"] * length
  cabin = meshes.superellipsoid((cw / 2, cl / 2, (z1 - zc) / 2), p["cabin_exp"], (0, yc, (z1 + zc) / 2), CABIN, 22, 44)

  def shape_cabin(v):
    t = np.clip((v[:, 2] - body_top) / (z1 - body_top), 0.0, 1.0)
    v[:, 0] *= 1.0 - p["taper_side"] * t
    d = v[:, 1] - yc
    v[:, 1] = yc + d * (1.0 - t * np.where(d > 0, p["taper_front"], p["taper_rear"]))
    return v

  parts.append(meshes.deform(cabin, shape_cabin))
  ww = p["wheel_w"] * length
  for y in (p["wheelbase"] / 2 * length, -p["wheelbase"] / 2 * length):
    wheel = meshes.superellipsoid((ww / 2, r, r), (0.2, 1.0), (width / 2 - 0.3 * ww, y, r), WHEEL, 10, 24, axis="x")
    parts.append(meshes.symmetric_pair(wheel))
  if p["lightbar"]:
    half = cw / 2 * (1.0 - p["taper_side"]) * 0.85
    bar = (half, 0.045 * length, 0.02 * length) if not p["box"] else (half * 0.7, 0.03 * length, 0.018 * length)
    parts.append(meshes.superellipsoid(bar, (0.3, 0.3), (0, yc, z1 + 0.6 * bar[2]), LIGHTBAR, 8, 24))
  if p["box"]:
    box_top = body_top + p["box_h"] * length
    yb = -length / 2 + p["box_len"] * length / 2 + 0.01 * length
    parts.append(
      meshes.superellipsoid(
        (width / 2 * 0.99, p["box_len"] * length / 2, (box_top - zc) / 2),
        (0.12, 0.12),
        (0, yb, (box_top + zc) / 2),
        BOX,
        20,
        44,
      )
    )
    p["box_geometry"] = (yb, zc, box_top)
  if p["spare"]:
    parts.append(
      meshes.superellipsoid(
        (0.9 * r, ww / 2, 0.9 * r), (0.2, 1.0), (0, -length / 2 - 0.3 * ww, zc + 0.1 * hb), SPARE, 10, 24, axis="y"
      )
    )
  if p["spoiler"]:
    rear_top = zc + hb / 2 * float(_body_top_scale(p, -0.42 * length))
    parts.append(
      meshes.superellipsoid(
        (0.45 * width, 0.05 * length, 0.007 * length),
        (0.3, 0.3),
        (0, -0.42 * length, rear_top + 0.05 * length),
        SPOILER,
        8,
        24,
      )
    )
    post = meshes.superellipsoid(
      (0.012 * length, 0.02 * length, 0.03 * length),
      (0.3, 0.3),
      (0.25 * width, -0.42 * length, rear_top + 0.02 * length),
      SPOILER,
      6,
      12,
    )
    parts.append(meshes.symmetric_pair(post))
  mesh = meshes.merge(parts)
  low, high = meshes.bounding_box(mesh)
  p["centre"] = (low + high) / 2  # the paint works in the uncentred frame
  return meshes.with_normals(meshes.recenter(mesh))


_GLASS = np.array([0.1, 0.12, 0.15])
_TIRE, _HUB, _DARK = np.array([0.06, 0.06, 0.06]), np.array([0.62, 0.62, 0.64]), np.array([0.12, 0.12, 0.12])
_HEADLIGHT, _TAILLIGHT = np.array([0.95, 0.95, 0.85]), np.array([0.75, 0.05, 0.05])
_RED, _BLUE = np.array([0.9, 0.08, 0.08]), np.array([0.1, 0.25, 0.95])


def car_paint(p: dict) -> render.PaintFn:
  """The albedo of a car as a function of (centred) object-frame position, normal and part; symmetric in x."""
  length, width = p["L"], p["W"] * p["L"]
  hb, zc, r = p["Hb"] * length, (p["clearance"] + p["Hb"] / 2) * length, p["wheel_r"] * length
  yc, base = p["cabin_y"] * length, np.asarray(p["base"])
  wheel_y = p["wheelbase"] / 2 * length

  def paint(points, normals, part):
    x, y, z = (points + p["centre"]).T
    ax, zrel = np.abs(x) / (width / 2), (z - zc) / (hb / 2)
    nx, ny, nz = np.abs(normals[:, 0]), normals[:, 1], normals[:, 2]
    albedo = np.broadcast_to(base, points.shape).copy()
    body, cabin = part == BODY, part == CABIN
    side = body & (nx > 0.5)
    front, rear = body & (ny > 0.55) & (y > 0), body & (ny < -0.55) & (y < 0)
    roof = cabin & (nz > 0.7)
    if "scheme" in p:
      if p["scheme"] in ("black_white", "navy"):
        albedo[(side & (np.abs(y - yc) < 0.27 * length)) | roof] = p["accent"]
      else:
        albedo[side & (zrel > -0.25) & (zrel < 0.25)] = p["accent"]
    if p["stripe"]:
      band = (nx > 0.5) & (((part == BODY) & (zrel > -0.1) & (zrel < 0.4)) | ((part == BOX) & (z < zc + 0.6 * hb)))
      albedo[band] = p["accent"]
    if p["box"]:
      yb = p["box_geometry"][0]
      arm, span = 0.09 * width, 0.3 * width
      cross = ((np.abs(x) < arm) & (np.abs(y - yb) < span)) | ((np.abs(y - yb) < arm) & (np.abs(x) < span))
      albedo[(part == BOX) & (nz > 0.7) & cross] = p["accent"]
    if p["soft_top"]:
      albedo[roof] = _DARK
    if p["centre_stripe"]:
      albedo[(body | cabin | (part == SPOILER)) & (np.abs(x) < 0.07 * width) & (nz > 0.3)] = p["accent"]
    glass = cabin & ~roof
    albedo[glass] = _GLASS
    if p["class_name"] == "limousine":  # body-coloured pillars between the side windows
      pillars = glass & (nx > 0.6) & (np.mod((y - yc) / (0.13 * length), 1.0) < 0.14)
      albedo[pillars] = base
      albedo[side & (np.abs(zrel - 0.45) < 0.07)] = _HUB
    if p["class_name"] == "Ferrari":
      albedo[side & (y > -0.32 * length) & (y < -0.08 * length) & (zrel > -0.45) & (zrel < 0.2)] = _DARK
    if p["class_name"] == "jeep":
      albedo[front & (ax < 0.5) & (zrel > -0.3) & (zrel < 0.6) & (np.mod(x / (0.05 * width), 1.0) < 0.5)] = _DARK
    if p["class_name"] != "Ferrari":
      albedo[body & (zrel < -0.6) & (np.abs(ny) > 0.3)] = _DARK  # bumpers
    albedo[front & (ax > 0.5) & (ax < 0.9) & (zrel > -0.1) & (zrel < 0.6)] = _HEADLIGHT
    albedo[rear & (ax > 0.55) & (ax < 0.92) & (zrel > 0.0) & (zrel < 0.6)] = _TAILLIGHT
    bar = part == LIGHTBAR
    albedo[bar] = _RED if p["box"] else np.where((ax[bar] > 0.3)[:, None], _RED, _BLUE)
    wheel = part == WHEEL
    radial = np.hypot(np.abs(y) - wheel_y, z - r)
    albedo[wheel] = np.where(((nx[wheel] > 0.7) & (radial[wheel] < 0.6 * r))[:, None], _HUB, _TIRE)
    spare = part == SPARE
    albedo[spare] = np.where(
      ((-ny[spare] > 0.7) & (np.hypot(x, z - zc - 0.1 * hb)[spare] < 0.6 * r))[:, None], base, _TIRE
    )
    return albedo

  return paint


def build_car(class_name: str, rng: np.random.RandomState, index: int = 0) -> Car:
  """Samples one car of a class.

  Args:
    class_name: one of formats.CAR_CLASSES.
    rng: the model's random state.
    index: model number, used in its name.

  Returns:
    A Car whose mesh is centred at the origin of its object frame.
  """
  p = sample_params(class_name, rng)
  p["class_name"] = class_name
  mesh = car_mesh(p)
  name = f"{_NAMES[class_name][rng.randint(len(_NAMES[class_name]))]} {index:04d}"
  return Car(class_name, name, tuple(formats.CAR_CLASS_LEMMAS[class_name]), mesh, car_paint(p), p)


def model_id(seed: int, split: str, class_name: str, index: int) -> str:
  """The 32-hex ShapeNet-style id of one synthetic model (distinct across splits, classes and seeds)."""
  return hashlib.md5(f"pdr_tf-synthetic/{seed}/{split}/{class_name}/{index}".encode()).hexdigest()


def sample_views(rng: np.random.RandomState, count: int):
  """Random top views and lights.

  Returns:
    views [count, 6] (the Unsup3D view relative to the canonical top view: rx, ry tilts, rz azimuth, radians; tx, ty
    jitter), lights [count, 4] (ka, kd, lx, ly; direction in the canonical frame) and backgrounds [count] (grey
    albedo of the ground, lit by `render.ground_shading`).
  """
  views = np.zeros((count, 6))
  views[:, 0:2] = rng.uniform(-TILT_RANGE, TILT_RANGE, (count, 2))
  views[:, 2] = rng.uniform(-AZIMUTH_RANGE, AZIMUTH_RANGE, count)
  views[:, 3:5] = rng.uniform(-TRANSLATION_RANGE, TRANSLATION_RANGE, (count, 2))
  lights = render.sample_lights(rng, count, AMBIENT_RANGE, DIFFUSE_RANGE, DIRECTION_RANGE)
  backgrounds = rng.uniform(*BACKGROUND_RANGE, count)
  return views, lights, backgrounds


def render_model(car: Car, rng: np.random.RandomState, count: int):
  """Renders `count` random views of one car.

  Returns:
    images [count, H, W, 3] float in [0, 1], depth [count, H, W], views [count, 6], lights [count, 4].
  """
  views, lights, backgrounds = sample_views(rng, count)
  # The background is the ground the car stands on, lit like the car (the model's image formation lights every
  # pixel: an unlit background brighter than ka + kd * cos could not be reproduced by any albedo, docs/synthetic.md).
  background = render.lit_background(np.broadcast_to(backgrounds[:, None, None, None], (count, 1, 1, 3)), lights)
  images, depth = render.render_views(car.mesh, views, lights, car.paint, CAMERA, background, to_canonical=TO_CANONICAL)
  return images, depth, views, lights


def _metadata_row(mid: str, car: Car):
  return {
    "fullId": formats.SHAPENET_FULLID_PREFIX + mid,
    "wnsynset": formats.SHAPENET_CAR_SYNSET,
    "wnlemmas": ",".join(GENERIC_CAR_LEMMAS + car.lemmas),
    "up": "0,0,1",
    "front": "0,1,0",
    "name": car.name,
    "tags": "synthetic," + car.class_name,
  }


def check_sizes(**sizes) -> None:
  """Raises ValueError unless the models per class are integers >= 0 and images_per_model an integer >= 1."""
  for name, value in sizes.items():
    low = 1 if name == "images_per_model" else 0
    if not isinstance(value, (int, np.integer)) or value < low:
      raise ValueError(f"cars: {name} must be an integer >= {low}, got {value!r}")


def generate(
  output_dir: str,
  seed: int = 0,
  train_models_per_class: int = 50,
  val_models_per_class: int = 5,
  test_models_per_class: int = 25,
  images_per_model: int = 8,
  progress: bool = True,
) -> dict:
  """Writes the car world: <out>/{train,val,test}/<model id>_<view>.png with .gt.npz sidecars, metadata.csv and
  ground_truth.csv (image, split, label, object id). The summary JSON is written by the caller.

  Args:
    output_dir: destination folder (must exist).
    seed: world seed; equal seeds and sizes give byte-identical files.
    train_models_per_class, val_models_per_class, test_models_per_class: distinct models per class and split.
    images_per_model: random views rendered per model.
    progress: show a tqdm progress bar.

  Returns:
    The world-specific part of the summary (sizes and counts).
  """
  check_sizes(
    train_models_per_class=train_models_per_class,
    val_models_per_class=val_models_per_class,
    test_models_per_class=test_models_per_class,
    images_per_model=images_per_model,
  )
  per_split = dict(zip(formats.SYNCAR_SPLITS, (train_models_per_class, val_models_per_class, test_models_per_class)))
  jobs = [
    (split, class_name, i)
    for split in formats.SYNCAR_SPLITS
    for class_name in formats.CAR_CLASSES
    for i in range(per_split[split])
  ]
  counts = {split: {c: 0 for c in formats.CAR_CLASSES} for split in formats.SYNCAR_SPLITS}
  metadata, labels = [], []
  for split in formats.SYNCAR_SPLITS:
    os.makedirs(os.path.join(output_dir, split), exist_ok=True)
  for split, class_name, index in tqdm(jobs, desc="cars (models)", disable=not progress, unit="model"):
    mid = model_id(seed, split, class_name, index)
    car = build_car(class_name, render.seeded_random(seed, WORLD, "model", mid), index)
    images, depth, views, lights = render_model(car, render.seeded_random(seed, WORLD, "views", mid), images_per_model)
    for view_index in range(images_per_model):
      name = f"{mid}_{view_index}.png"
      path = os.path.join(output_dir, split, name)
      render.save_image(path, images[view_index])
      render.save_ground_truth(path, depth[view_index], lights[view_index], views[view_index])
      labels.append({"image": f"{split}/{name}", "split": split, "label": class_name, "object_id": mid})
    counts[split][class_name] += images_per_model
    metadata.append(_metadata_row(mid, car))
  with open(os.path.join(output_dir, formats.SHAPENET_METADATA_FILENAME), "w", newline="", encoding="utf-8") as f:
    writer = csv.DictWriter(f, fieldnames=formats.SHAPENET_METADATA_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(metadata)
  render.write_labels(output_dir, labels)
  return {
    "models": {split: per_split[split] * len(formats.CAR_CLASSES) for split in formats.SYNCAR_SPLITS},
    "images": counts,
    "num_images": len(labels),
    "classes": list(formats.CAR_CLASSES),
  }
