"""Diagnostic: how well the model's image formation explains the cars world's images from ground-truth scenes.

python scripts/diagnostics/scene_fit.py [CARS_PER_CLASS] [VIEWS_PER_CAR]

For random cars and views of the synthetic cars world (its own tilts, lights and lit ground), renders the world's
image and then, with the model's Renderer, the car's ground-truth canonical albedo (the car seen from the canonical
top view with the ground's grey around it) on three canonical depth maps:
- flat: a plane at the car's mean depth;
- plateau: the true depth on the car, the background filled with the depth of the nearest car pixel (no step);
- stepped: the true depth on the car, the background at the model's border depth (the step a depth map must
  stretch into a wall under a tilt);
each under three views: the true one, the true one with both tilts (rx, ry) negated, and the true one without tilt.
Prints the mean L1 image error (images in [0, 1]) of each, over all the renders. The albedo is the world's, not one
the model could learn per image, so the numbers say what the image formation favours for that albedo.
"""

import sys

import numpy as np
from scipy import ndimage

from pdr_tf.data import formats
from pdr_tf.render import geometry
from pdr_tf.render import renderer as renderer_lib
from pdr_tf.render import scene as scene_lib
from pdr_tf.synthetic import cars
from pdr_tf.synthetic import render

CARS_PER_CLASS = int(sys.argv[1]) if len(sys.argv) > 1 else 4
VIEWS_PER_CAR = int(sys.argv[2]) if len(sys.argv) > 2 else 4
RANGES = scene_lib.SceneRanges(min_depth=0.9, max_depth=1.1, border_depth=1.08)  # gin/pieces/cars.gin's
VIEWS = ("true view", "tilts negated", "no tilt")
DEPTHS = ("flat", "plateau", "stepped")


def canonical_depths(depth):
  """The DEPTHS hypotheses for a [S, S] canonical ground-truth depth (0 off the car)."""
  car = depth > 0
  _, (iy, ix) = ndimage.distance_transform_edt(~car, return_indices=True)
  return {
    "flat": np.full(depth.shape, depth[car].mean()),
    "plateau": depth[iy, ix],
    "stepped": np.where(car, depth, RANGES.border_depth),
  }


def view_variants(view):
  negated, untilted = view.copy(), view.copy()
  negated[:2] *= -1.0
  untilted[:2] = 0.0
  return {"true view": view, "tilts negated": negated, "no tilt": untilted}


def main():
  intrinsics = geometry.intrinsics_from_fov(formats.IMAGE_SIZE).numpy()
  camera = render.Camera(formats.IMAGE_SIZE, tuple(float(k) for k in intrinsics), supersample=2)
  model = renderer_lib.Renderer(ranges=RANGES)
  rng = np.random.RandomState(0)
  errors = {(d, v): [] for d in DEPTHS for v in VIEWS}
  for class_name in formats.CAR_CLASSES:
    for index in range(CARS_PER_CLASS):
      car = cars.build_car(class_name, rng, index)
      views, lights, greys = cars.sample_views(rng, VIEWS_PER_CAR)
      for view, light, grey in zip(views, lights, greys):
        ground = np.clip(grey * render.ground_shading(light[None]), 0.0, 1.0)
        image, _ = render.render_views(
          car.mesh, view[None], light[None], car.paint, camera, np.full(3, ground[0]), to_canonical=cars.TO_CANONICAL
        )
        albedo, depth = render.render_views(
          car.mesh,
          np.zeros((1, 6)),
          np.array([[1.0, 0.0, 0.0, 0.0]]),
          car.paint,
          camera,
          np.full(3, grey),
          to_canonical=cars.TO_CANONICAL,
        )
        for depth_name, canon in canonical_depths(depth[0]).items():
          for view_name, v in view_variants(view).items():
            out = model.render(
              canon[None].astype(np.float32),
              (albedo * 2.0 - 1.0).astype(np.float32),
              light[None].astype(np.float32),
              v[None].astype(np.float32),
            )
            recon = (out["recon_image"].numpy() + 1.0) / 2.0
            errors[(depth_name, view_name)].append(float(np.abs(recon - image).mean()))
  count = len(errors[(DEPTHS[0], VIEWS[0])])
  print(f"mean L1 image error over {count} renders (± standard error); rows: canonical depth, columns: view")
  print(f"{'':>10}" + "".join(f"{v:>22}" for v in VIEWS))
  for d in DEPTHS:
    cells = [f"{np.mean(errors[(d, v)]):.4f} ± {np.std(errors[(d, v)]) / np.sqrt(count):.4f}" for v in VIEWS]
    print(f"{d:>10}" + "".join(f"{c:>22}" for c in cells))
  for d in DEPTHS:
    wins = np.mean(np.array(errors[(d, "true view")]) < np.array(errors[(d, "tilts negated")]))
    print(f"{d}: the true view beats the negated tilts in {wins:.0%} of the renders")


if __name__ == "__main__":
  main()
