"""Diagnostic: how well the model's image formation explains a world's images from ground-truth scenes.

python scripts/diagnostics/scene_fit.py [cars|faces] [OBJECTS] [VIEWS_PER_OBJECT]

For random objects and views of a synthetic world (its own tilts, lights and background; OBJECTS cars per class, or
faces), renders the world's image and then, with the model's Renderer, the object's ground-truth canonical albedo
(the object in the canonical pose, with the background's albedo around it) on four canonical depth maps:
- flat: a plane at the object's mean depth;
- plateau: the true depth on the object, the background filled with the depth of the nearest object pixel (no
  step);
- ground: the true depth on the object, the background at the depth of the object's farthest pixel (for a car,
  the ground it stands on: a step as tall as the object);
- stepped: the true depth on the object, the background at the border depth (cars: $BORDER_DEPTH, default 1.08,
  Unsup3D's syncar setting; faces 1.04), the step a depth map must stretch into a wall under a tilt;
each under three views: the true one, the true one with both tilts (rx, ry) negated, and the true one without tilt.
Every map gets the model's pinned border columns at that border depth. Prints the mean L1 image error (images in [0,
1]) of each over all the renders, on all pixels and on the pixels the render covers (those the training loss
counts). The albedo is the world's, not one the model could learn per image, so the numbers say what the image
formation favours for that albedo.
"""

import os
import sys

import numpy as np
from scipy import ndimage

from pdr_tf.data import formats
from pdr_tf.render import geometry
from pdr_tf.render import renderer as renderer_lib
from pdr_tf.render import scene as scene_lib
from pdr_tf.synthetic import cars
from pdr_tf.synthetic import faces
from pdr_tf.synthetic import render

WORLD = sys.argv[1] if len(sys.argv) > 1 else "cars"
OBJECTS = int(sys.argv[2]) if len(sys.argv) > 2 else 4
VIEWS_PER_OBJECT = int(sys.argv[3]) if len(sys.argv) > 3 else 4
BORDER_DEPTH = {"cars": float(os.environ.get("BORDER_DEPTH", 1.08)), "faces": 1.04}  # Unsup3D's syncar / faces
VIEWS = ("true view", "tilts negated", "no tilt")
PIXELS = ("all pixels", "covered pixels")  # covered: where the render has a surface (the loss's mask)
DEPTHS = ("flat", "plateau", "ground", "stepped")


def canonical_depths(depth):
  """The DEPTHS hypotheses for a [S, S] canonical ground-truth depth (0 off the car)."""
  car = depth > 0
  _, (iy, ix) = ndimage.distance_transform_edt(~car, return_indices=True)
  return {
    "flat": np.full(depth.shape, depth[car].mean()),
    "plateau": depth[iy, ix],
    "ground": np.where(car, depth, depth[car].max()),
    "stepped": np.where(car, depth, BORDER_DEPTH[WORLD]),
  }


def view_variants(view):
  negated, untilted = view.copy(), view.copy()
  negated[:2] *= -1.0
  untilted[:2] = 0.0
  return {"true view": view, "tilts negated": negated, "no tilt": untilted}


def scenes(rng, camera):
  """Yields (mesh, paint, to_canonical, view, light, background, canonical background) of WORLD's renders: the
  background as the world forms it, and the albedo the model's image formation needs there for the same pixels."""
  size = camera.size * camera.supersample
  if WORLD == "cars":
    for class_name in formats.CAR_CLASSES:
      for index in range(OBJECTS):
        car = cars.build_car(class_name, rng, index)
        views, lights, greys = cars.sample_views(rng, VIEWS_PER_OBJECT)
        for view, light, grey in zip(views, lights, greys):
          ground = render.lit_background(np.full(3, grey), light[None])[0]
          yield car.mesh, car.paint, cars.TO_CANONICAL, view, light, ground, np.full(3, grey)
  elif WORLD == "faces":
    for _ in range(OBJECTS):
      code = faces.sample_identity(rng, *faces.sample_labels(rng))
      mesh, paint = faces.head_mesh(code), faces.head_paint(code)
      views, lights = faces.sample_pose_light(rng, VIEWS_PER_OBJECT)
      backdrop = render.gradient_background(rng, 1, size)
      for view, light in zip(views, lights):
        yield mesh, paint, None, view, light, render.lit_background(backdrop, light[None])[0], backdrop[0]
  else:
    sys.exit(f"world must be cars or faces, got {WORLD!r}")


def main():
  intrinsics = geometry.intrinsics_from_fov(formats.IMAGE_SIZE).numpy()
  camera = render.Camera(formats.IMAGE_SIZE, tuple(float(k) for k in intrinsics), supersample=2)
  model = renderer_lib.Renderer(
    ranges=scene_lib.SceneRanges(min_depth=0.9, max_depth=1.1, border_depth=BORDER_DEPTH[WORLD])
  )
  errors = {(p, d, v): [] for p in PIXELS for d in DEPTHS for v in VIEWS}
  for mesh, paint, to_canonical, view, light, background, canonical_background in scenes(
    np.random.RandomState(0), camera
  ):
    image, _ = render.render_views(mesh, view[None], light[None], paint, camera, background, to_canonical)
    albedo, depth = render.render_views(
      mesh, np.zeros((1, 6)), np.array([[1.0, 0.0, 0.0, 0.0]]), paint, camera, canonical_background, to_canonical
    )
    for depth_name, canon in canonical_depths(depth[0]).items():
      for view_name, v in view_variants(view).items():
        out = model.render(
          scene_lib.with_border(canon[None].astype(np.float32), model.ranges),
          (albedo * 2.0 - 1.0).astype(np.float32),
          light[None].astype(np.float32),
          v[None].astype(np.float32),
        )
        recon = (out["recon_image"].numpy() + 1.0) / 2.0
        error = np.abs(recon - image).mean(-1)[0]
        covered = out["mask"].numpy()[0] > 0.5
        errors[("all pixels", depth_name, view_name)].append(float(error.mean()))
        errors[("covered pixels", depth_name, view_name)].append(float(error[covered].mean()))
  count = len(errors[(PIXELS[0], DEPTHS[0], VIEWS[0])])
  for pixels in PIXELS:
    print(f"{WORLD}: mean L1 image error on {pixels} over {count} renders (± standard error); rows: canonical depth")
    print(f"{'':>10}" + "".join(f"{v:>22}" for v in VIEWS))
    for d in DEPTHS:
      e = [errors[(pixels, d, v)] for v in VIEWS]
      print(f"{d:>10}" + "".join(f"{np.mean(x):.4f} ± {np.std(x) / np.sqrt(count):.4f}".rjust(22) for x in e))
    for d in DEPTHS:
      wins = np.mean(np.array(errors[(pixels, d, "true view")]) < np.array(errors[(pixels, d, "tilts negated")]))
      print(f"{d}: the true view beats the negated tilts in {wins:.0%} of the renders")


if __name__ == "__main__":
  main()
