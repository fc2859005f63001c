"""Diagnostic: can gradient descent on the model's own loss recover a car's depth and tilt from ground truth?

python scripts/diagnostics/scene_descent.py [OBJECTS] [VIEWS_PER_OBJECT] [STEPS]

No networks: for cars-world renders (OBJECTS cars per class, VIEWS_PER_OBJECT views each), free per-image variables
are fitted by Adam to the training loss (masked photometric L1 + λ_smooth · depth smoothness) through the model's
Renderer, with the world's true canonical albedo and light. The set-ups:
- depth: the canonical depth from flat, under the true view;
- depth at truth: the same, started from the true depth (does descent stay there?);
- tilt: the tilts (rx, ry) from zero, with the true depth (the car's, the ground around it) and azimuth;
- depth + tilt: both from flat and zero.
Prints each set-up's depth error (mean absolute deviation from the true canonical depth on the car's pixels, both
mean-centred, against the flat map's), tilt error (mean |rx|, |ry| error in degrees, against zero tilt's) and the
loss at the first and last step, so a basin around flat depth and no tilt shows as a fit that stays there, and a
landscape whose minimum is not the truth as a last loss below the "depth at truth" start.

Environment variables: SETUPS (comma-separated names from the list above; default "depth,tilt,depth + tilt"),
LAMBDA_SMOOTH (0.1, gin/pieces/cars.gin's), LR (Adam's learning rate, 0.01), RESOLUTION (of the free depth map,
upsampled bilinearly to the image; 64), BORDER_DEPTH (the pinned border columns' depth; 1.08, Unsup3D's syncar
setting, with which docs/investigations.md's tables were measured; the cars preset's is 1.02), TARGET=model (fit the
model's own render of the true scene, composited over the world's image outside its mask, instead of the world's
image: separates what the image formation cannot express from what descent cannot find).
"""

import os
import sys

import numpy as np
import tensorflow as tf

from pdr_tf import graph
from pdr_tf.data import formats
from pdr_tf.model import losses
from pdr_tf.render import geometry
from pdr_tf.render import renderer as renderer_lib
from pdr_tf.render import scene as scene_lib
from pdr_tf.synthetic import cars
from pdr_tf.synthetic import render

OBJECTS = int(sys.argv[1]) if len(sys.argv) > 1 else 2
VIEWS_PER_OBJECT = int(sys.argv[2]) if len(sys.argv) > 2 else 2
STEPS = int(sys.argv[3]) if len(sys.argv) > 3 else 300
LAMBDA_SMOOTH = float(os.environ.get("LAMBDA_SMOOTH", 0.1))  # gin/pieces/cars.gin
LR = float(os.environ.get("LR", 0.01))
RESOLUTION = int(os.environ.get("RESOLUTION", 64))  # of the free depth map, upsampled bilinearly as depth_size
RANGES = scene_lib.SceneRanges(
  min_depth=0.9, max_depth=1.1, border_depth=float(os.environ.get("BORDER_DEPTH", 1.08))
)  # gin/pieces/cars.gin


def world_scenes():
  """Images [N,S,S,3] in [-1,1], canonical albedo [N,S,S,3] in [-1,1], true canonical depth [N,S,S] (the ground
  around the car at the car's farthest depth), car mask [N,S,S], lights [N,4], views [N,6]."""
  intrinsics = geometry.intrinsics_from_fov(formats.IMAGE_SIZE).numpy()
  camera = render.Camera(formats.IMAGE_SIZE, tuple(float(k) for k in intrinsics), supersample=2)
  rng = np.random.RandomState(0)
  out = {k: [] for k in ("image", "albedo", "depth", "car", "light", "view")}
  for class_name in formats.CAR_CLASSES:
    for index in range(OBJECTS):
      car = cars.build_car(class_name, rng, index)
      views, lights, greys = cars.sample_views(rng, VIEWS_PER_OBJECT)
      for view, light, grey in zip(views, lights, greys):
        ground = render.lit_background(np.full(3, grey), light[None])[0]
        albedo, depth = render.render_views(
          car.mesh,
          np.zeros((1, 6)),
          np.array([[1.0, 0.0, 0.0, 0.0]]),
          car.paint,
          camera,
          np.full(3, grey),
          cars.TO_CANONICAL,
        )
        image, _ = render.render_views(car.mesh, view[None], light[None], car.paint, camera, ground, cars.TO_CANONICAL)
        mask = depth[0] > 0
        out["image"].append(image[0] * 2 - 1)
        out["albedo"].append(albedo[0] * 2 - 1)
        out["depth"].append(np.where(mask, depth[0], depth[0][mask].max()))
        out["car"].append(mask)
        out["light"].append(light)
        out["view"].append(view)
  return {k: np.asarray(v, np.float32) for k, v in out.items()}


def depth_error(depth, truth, car):
  """Mean |(d - mean d) - (t - mean t)| over the car's pixels, per image."""

  def centred(x):
    return x - (x * car).sum((1, 2), keepdims=True) / car.sum((1, 2), keepdims=True)

  return (np.abs(centred(depth) - centred(truth)) * car).sum((1, 2)) / car.sum((1, 2))


def fit(data, fit_depth, fit_tilt, renderer, from_truth=False):
  """Adam on the per-image variables; returns (canonical depth, view) after STEPS steps."""
  n = len(data["image"])
  raw = tf.Variable(tf.zeros([n, RESOLUTION, RESOLUTION]))
  tilt = tf.Variable(tf.zeros([n, 2]))
  images, albedo, light = (tf.constant(data[k]) for k in ("image", "albedo", "light"))
  true_view = tf.constant(data["view"])
  # The true depth as a raw map: depth_from_raw(raw) inverts it exactly up to the mean, which it removes anyway.
  true_raw = tf.constant(np.arctanh(np.clip((data["depth"] - 1.0) / 0.1, -0.999, 0.999)), tf.float32)
  if from_truth:
    raw.assign(tf.image.resize(true_raw[..., None], [RESOLUTION] * 2, "area")[..., 0])
  variables = ([raw] if fit_depth else []) + ([tilt] if fit_tilt else [])
  moments = [(tf.Variable(tf.zeros_like(v)), tf.Variable(tf.zeros_like(v))) for v in variables]
  count = tf.Variable(0.0)

  def scene():
    size = formats.IMAGE_SIZE
    depth_raw = tf.image.resize(raw[..., None], [size, size], "bilinear")[..., 0] if fit_depth else true_raw
    before = scene_lib.depth_from_raw(depth_raw, RANGES, border=False)
    view = tf.concat([tilt, true_view[:, 2:]], 1) if fit_tilt else true_view
    return before, view

  @graph.function(jit_compile=True)
  def step():
    with tf.GradientTape() as tape:
      before, view = scene()
      out = renderer.render(scene_lib.with_border(before, RANGES), albedo, light, view)
      loss = losses.photometric_l1(out["recon_image"], images, out["mask"]) + LAMBDA_SMOOTH * losses.depth_smoothness(
        before, RANGES.max_depth - RANGES.min_depth
      )
      total = tf.reduce_sum(loss)
    count.assign_add(1.0)
    grads = tape.gradient(total, variables)
    for v, g, (m, s) in zip(variables, grads, moments):
      m.assign(0.9 * m + 0.1 * g)
      s.assign(0.999 * s + 0.001 * g * g)
      v.assign_sub(LR * (m / (1 - 0.9**count)) / (tf.sqrt(s / (1 - 0.999**count)) + 1e-8))
    return tf.reduce_mean(loss)

  first = float(step())
  for _ in range(STEPS - 1):
    last = float(step())
  before, view = scene()
  return scene_lib.with_border(before, RANGES).numpy(), view.numpy(), first, last


def main():
  data = world_scenes()
  renderer = renderer_lib.Renderer(ranges=RANGES).inline()
  if os.environ.get("TARGET") == "model":  # the model's own render of the true scene instead of the world's image
    out = renderer.render(
      scene_lib.with_border(tf.constant(data["depth"]), RANGES), data["albedo"], data["light"], data["view"]
    )
    data["image"] = (out["recon_image"] * out["mask"][..., None] + data["image"] * (1 - out["mask"][..., None])).numpy()
  car = data["car"].astype(np.float32)
  flat = depth_error(np.ones_like(data["depth"]), data["depth"], car).mean()
  zero = np.degrees(np.abs(data["view"][:, :2])).mean()
  print(f"{len(data['image'])} cars-world renders, {STEPS} Adam steps per set-up")
  print(f"lr {LR}, λ_smooth {LAMBDA_SMOOTH}, depth map {RESOLUTION} px, border depth {RANGES.border_depth}")
  print(f"trivial: flat depth error {flat:.4f}, zero tilt error {zero:.2f} deg")
  print(
    f"{'set-up':>14} {'depth error':>12} {'ratio':>6} {'tilt error':>11} {'ratio':>6}"
    f" {'first loss':>10} {'last loss':>10}"
  )
  setups = (
    ("depth", True, False, False),
    ("depth at truth", True, False, True),
    ("tilt", False, True, False),
    ("depth + tilt", True, True, False),
  )
  wanted = os.environ.get("SETUPS", "depth,tilt,depth + tilt").split(",")
  for name, fit_depth, fit_tilt, from_truth in [s for s in setups if s[0] in wanted]:
    depth, view, first, last = fit(data, fit_depth, fit_tilt, renderer, from_truth)
    d = depth_error(depth, data["depth"], car).mean()
    t = np.degrees(np.abs(view[:, :2] - data["view"][:, :2])).mean()
    print(f"{name:>14} {d:12.4f} {d / flat:6.2f} {t:9.2f}°  {t / zero:6.2f} {first:10.4f} {last:10.4f}")


if __name__ == "__main__":
  main()
