"""Tests for pdr_tf.synthetic: mesh parts, renderer consistency, writers, and the three worlds on tiny sizes."""

import csv
import filecmp
import json
import os

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

import fixtures
from pdr_tf.data import formats
from pdr_tf.render import geometry
from pdr_tf import synthetic
from pdr_tf.synthetic import __main__ as cli
from pdr_tf.synthetic import bbt
from pdr_tf.synthetic import cars
from pdr_tf.synthetic import faces
from pdr_tf.synthetic import meshes
from pdr_tf.synthetic import render

TINY = {
  "cars": {"train_models_per_class": 1, "val_models_per_class": 1, "test_models_per_class": 1, "images_per_model": 2},
  "faces": {"num_identities": 3, "images_per_identity": 2},
  "bbt": {"track_scale": 0.01, "min_frames": 2, "max_frames": 3},
}


@pytest.fixture(scope="module")
def worlds(tmp_path_factory):
  """One tiny world of each kind, generated once for the module."""
  out = {}
  for world, sizes in TINY.items():
    folder = str(tmp_path_factory.mktemp(world))
    out[world] = (folder, synthetic.generate(world, folder, seed=3, progress=False, **sizes))
  return out


def _files(folder):
  return sorted(
    os.path.relpath(os.path.join(root, name), folder) for root, _, names in os.walk(folder) for name in names
  )


# ---------------------------------------------------------------------------------------------- meshes and render


def test_superellipsoid_sphere_has_unit_radial_outward_normals():
  sphere = meshes.with_normals(meshes.superellipsoid((0.5, 0.5, 0.5), (1.0, 1.0), (1.0, 2.0, 3.0), rows=20, cols=30))
  radial = sphere.vertices - np.array([1.0, 2.0, 3.0])
  np.testing.assert_allclose(np.linalg.norm(radial, axis=-1), 0.5, rtol=1e-9)
  np.testing.assert_allclose(np.linalg.norm(sphere.normals, axis=-1), 1.0, rtol=1e-9)
  # Welded seams and poles: every normal, including the poles', is close to the radial direction.
  assert np.min(np.einsum("vi,vi->v", sphere.normals, radial / 0.5)) > 0.97


def test_mirror_keeps_normals_outward_and_merge_offsets_faces():
  box = meshes.superellipsoid((0.1, 0.2, 0.3), (0.2, 0.2), (0.5, 0.0, 0.0), part=4, rows=8, cols=12)
  pair = meshes.with_normals(meshes.symmetric_pair(box))
  assert pair.faces.max() == len(pair.vertices) - 1 and len(pair.faces) == 2 * len(box.faces)
  assert np.all(pair.part == 4)
  left = pair.vertices[:, 0] < 0
  # Outward on both copies: normals point away from each box's centre (+-0.5, 0, 0).
  centre = np.where(left[:, None], [-0.5, 0, 0], [0.5, 0, 0])
  assert np.all(np.einsum("vi,vi->v", pair.normals, pair.vertices - centre) > 0)


def test_superellipsoid_rejects_bad_arguments():
  with pytest.raises(ValueError, match="radii"):
    meshes.superellipsoid((0.1, -0.1, 0.1))
  with pytest.raises(ValueError, match="axis"):
    meshes.superellipsoid((0.1, 0.1, 0.1), axis="w")


def test_euler_from_matrix_inverts_rotation_matrices(rng):
  angles = rng.uniform(-1.4, 1.4, (20, 3))
  rotation = render.rotation_matrices(angles)
  np.testing.assert_allclose(render.euler_from_matrix(rotation), angles, atol=1e-5)
  np.testing.assert_allclose(rotation, geometry.rotation_matrix(angles.astype(np.float32)).numpy(), atol=1e-6)


def test_camera_for_crop_matches_the_model_camera_after_crop_and_resize():
  camera = render.Camera.for_crop(formats.SYNCAR_RAW_SIZE, formats.SYNCAR_CROP)
  y0, x0, size, _ = formats.SYNCAR_CROP
  model = geometry.intrinsics_from_fov(formats.IMAGE_SIZE, render.MODEL_FOV_DEGREES).numpy()
  points = np.array([[0.03, -0.02, 1.0], [-0.05, 0.04, 0.95]])
  raw = geometry.project(points.astype(np.float32), np.asarray(camera.intrinsics, np.float32)).numpy()
  # Resizing the crop to IMAGE_SIZE maps raw pixel p to (p - offset + 0.5) * scale - 0.5.
  scale = formats.IMAGE_SIZE / size
  in_model = (raw - [x0, y0] + 0.5) * scale - 0.5
  np.testing.assert_allclose(in_model, geometry.project(points.astype(np.float32), model).numpy(), atol=1e-3)


def test_render_matches_the_model_shading_and_depth():
  """A sphere in the canonical pose: its image equals albedo x (ka + kd max(0, n.l)) with n from its own
  ground-truth depth (the model's normals_from_depth), and its depth is the analytic sphere depth."""
  camera = render.Camera.for_crop(64, (0, 0, 64, 64), supersample=1)
  sphere = meshes.with_normals(meshes.superellipsoid((0.05, 0.05, 0.05), rows=60, cols=90))
  light = np.array([[0.2, 0.7, 0.5, -0.3]])
  view = np.array([[0.0, 0.0, 0.0, 0.01, 0.0, 0.0]])
  image, depth = render.render_views(
    sphere, view, light, lambda p, n, part: np.full((len(p), 3), 0.8), camera, np.zeros(3)
  )
  normals = geometry.normals_from_depth(depth, camera.intrinsics).numpy()
  expected = 0.8 * geometry.lambertian_shading(normals, light.astype(np.float32)).numpy()[0, ..., 0]
  inside = ndimage.binary_erosion(depth[0] > 0, iterations=2)
  assert inside.sum() > 500
  assert np.mean(np.abs(expected - image[0, ..., 0])[inside]) < 0.005
  assert np.all(depth[0][depth[0] == 0] == 0) and np.all(image[0][depth[0] == 0] == 0)
  # Nearest point of a sphere of radius 0.05 centred at (0.01, 0, 1): depth 0.95 at its centre pixel.
  assert depth[0][depth[0] > 0].min() == pytest.approx(0.95, abs=2e-4)


def _model_camera():
  intrinsics = geometry.intrinsics_from_fov(formats.IMAGE_SIZE).numpy()
  return render.Camera(formats.IMAGE_SIZE, tuple(float(k) for k in intrinsics), supersample=1)


@pytest.mark.parametrize("world", ["cars", "faces"])
def test_the_model_renderer_reproduces_the_world_from_its_ground_truth_scene(world):
  """Image formation is the model's: the world's canonical depth and albedo (its object in the canonical pose),
  rendered by `renderer.Renderer` with each image's ground-truth light and view, give the world's image.

  Compared where the surface is seen both in the canonical and in the input view (the rasterized depths agree),
  with a flat grey paint, so that only geometry, shading and the view count. With the light in the input view's
  camera frame (the previous worlds) the shading errors are several times larger.
  """
  from pdr_tf.render import renderer as renderer_lib  # pylint: disable=import-outside-toplevel
  from pdr_tf.render import scene as scene_lib  # pylint: disable=import-outside-toplevel

  rng = np.random.RandomState(0)
  if world == "cars":
    mesh, to_canonical = cars.build_car("police car", rng).mesh, cars.TO_CANONICAL
    views, lights, _ = cars.sample_views(rng, 8)
  else:
    mesh, to_canonical = faces.head_mesh(faces.sample_identity(rng, 30, 0, 0)), None
    views, lights = faces.sample_pose_light(rng, 8)
  grey = lambda p, n, part: np.full(p.shape, 0.7)
  camera = _model_camera()
  images, depth = render.render_views(mesh, views, lights, grey, camera, np.full(3, 0.5), to_canonical=to_canonical)
  albedo, canon_depth = render.render_views(
    mesh, np.zeros((1, 6)), np.array([[1.0, 0.0, 0.0, 0.0]]), grey, camera, np.zeros(3), to_canonical=to_canonical
  )
  canon_depth = np.where(canon_depth[0] > 0, canon_depth[0], 1.15).astype(np.float32)
  model = renderer_lib.Renderer(ranges=scene_lib.SceneRanges(min_depth=0.9, max_depth=1.1), backend="tfg")
  n = len(views)
  out = model.render(
    np.repeat(canon_depth[None], n, 0),
    np.repeat(albedo * 2.0 - 1.0, n, 0).astype(np.float32),
    lights.astype(np.float32),
    views.astype(np.float32),
  )
  recon = (out["recon_image"].numpy() + 1.0) / 2.0
  seen = ndimage.binary_erosion(depth > 0, iterations=1, structure=np.ones((1, 3, 3))) & (
    np.abs(out["recon_depth"].numpy() - depth) < 0.003
  )
  assert seen.sum() > 0.5 * (depth > 0).sum()
  error = np.abs(recon - images).mean(-1)[seen]
  # Shading from the mesh's smooth normals vs. from the 64x64 depth map differs at creases: a few larger errors.
  assert np.median(error) < 0.01 and error.mean() < 0.04, (np.median(error), error.mean())


def test_ground_shading_is_the_model_renderers_shading_of_a_flat_depth_map():
  from pdr_tf.render import renderer as renderer_lib  # pylint: disable=import-outside-toplevel
  from pdr_tf.render import scene as scene_lib  # pylint: disable=import-outside-toplevel

  _, lights, _ = cars.sample_views(np.random.RandomState(1), 6)
  model = renderer_lib.Renderer(ranges=scene_lib.SceneRanges(min_depth=0.9, max_depth=1.1), backend="tfg")
  out = model.render(
    np.ones((6, 64, 64), np.float32),
    np.ones((6, 64, 64, 3), np.float32),
    lights.astype(np.float32),
    np.zeros((6, 6), np.float32),
  )
  shading = np.asarray(out["canon_shading"]).reshape(6, -1)[:, 64 * 32 + 32]
  np.testing.assert_allclose(shading, render.ground_shading(lights), atol=1e-5)


def test_cars_background_is_the_ground_lit_like_the_car():
  """The model lights every pixel, so a background brighter than ka + kd cos could not be reproduced: the cars
  world's plain background is the ground's grey albedo times the ground's shading under the image's light."""
  car = cars.build_car("jeep", np.random.RandomState(0))
  _, lights, greys = cars.sample_views(np.random.RandomState(3), 4)
  images, _, _, _ = cars.render_model(car, np.random.RandomState(3), 4)
  expected = np.clip(greys * render.ground_shading(lights), 0.0, 1.0)
  np.testing.assert_allclose(images[:, 0, 0, :], np.repeat(expected[:, None], 3, 1), atol=1e-6)


def test_lit_background_shades_a_colour_or_an_image_like_a_plane_facing_the_camera():
  lights = np.array([[0.3, 0.5, 0.0, 0.0], [0.6, 0.7, 0.8, -0.4], [0.2, 0.9, 0.0, 0.0]])
  shading = render.ground_shading(lights)
  colour = render.lit_background(np.array([0.5, 0.6, 1.0]), lights)
  assert colour.shape == (3, 1, 1, 3)
  np.testing.assert_allclose(colour[:, 0, 0], np.minimum(np.outer(shading, [0.5, 0.6, 1.0]), 1.0))
  assert colour[0, 0, 0, 2] == pytest.approx(0.8) and colour[1, 0, 0, 2] == 1.0  # clipped where albedo x shading > 1
  image = np.random.RandomState(0).uniform(0.0, 1.0, (1, 4, 4, 3))
  lit = render.lit_background(image, lights)
  assert lit.shape == (3, 4, 4, 3)
  np.testing.assert_allclose(lit, np.clip(image * shading[:, None, None, None], 0.0, 1.0))


def test_faces_backdrop_is_lit_like_the_face():
  """One backdrop per identity, shaded by each image's light as a plane facing the camera: a background whose
  brightness ignored the light could only be reproduced by an albedo that changes with the light."""
  code = faces.sample_identity(np.random.RandomState(0), 30, 1, 2)
  images, _, _, lights = faces.render_identity(code, np.random.RandomState(5), 3)
  replay = np.random.RandomState(5)
  faces.sample_pose_light(replay, 3)
  backdrop = render.gradient_background(replay, 1, faces.CAMERA.size * faces.CAMERA.supersample)
  expected = render.downsample(render.lit_background(backdrop, lights), faces.CAMERA.supersample)
  np.testing.assert_allclose(images[:, :4, :4], expected[:, :4, :4], atol=1e-6)
  assert np.ptp(images[:, 0, 0].mean(-1)) > 0.01  # the lights differ, and so do the backgrounds


def test_surface_hits_give_barycentrics_that_reproduce_the_pixel_ray():
  vertices = np.array([[[-0.1, -0.1, 1.0], [0.1, -0.1, 1.2], [0.0, 0.1, 0.9]]])
  faces_ = np.array([[0, 1, 2]], np.int32)
  ids = np.array([[[0, -1]]])
  intrinsics = (100.0, 100.0, 0.0, 0.0)
  covered, bary, depth = render.surface_hits(vertices, faces_, ids, intrinsics)
  point = bary[0] @ vertices[0]
  assert covered.tolist() == [[[True, False]]]
  np.testing.assert_allclose(bary.sum(-1), 1.0)
  np.testing.assert_allclose(point[:2] / point[2], [0.0, 0.0], atol=1e-12)  # on the ray of pixel (0, 0)
  assert depth[0] == pytest.approx(point[2])


def test_ground_truth_sidecar_is_deterministic_and_has_the_format_keys(tmp_path):
  depth = np.random.RandomState(0).rand(8, 8).astype(np.float32)
  paths = []
  for name in ("a", "b"):
    paths.append(render.save_ground_truth(str(tmp_path / f"{name}.png"), depth, [0.1, 0.2, 0.3, 0.4], np.arange(6)))
  assert paths[0].endswith("a" + formats.GT_SUFFIX)
  assert filecmp.cmp(paths[0], paths[1], shallow=False)
  with np.load(paths[0]) as gt:
    assert sorted(gt.files) == sorted(formats.GT_KEYS)
    np.testing.assert_array_equal(gt["depth"], depth)
    assert gt["light"].dtype == np.float32 and gt["light"].shape == (formats.GT_LIGHT_DIM,)
    assert gt["view"].shape == (formats.GT_VIEW_DIM,)
  with pytest.raises(ValueError, match="light"):
    render.save_ground_truth(str(tmp_path / "c.png"), depth, [0.1, 0.2], np.arange(6))


def test_car_geometry_and_paint_are_left_right_symmetric():
  for class_name in formats.CAR_CLASSES:
    car = cars.build_car(class_name, render.seeded_random(0, "test", class_name))
    v = car.mesh.vertices
    mirrored = v * [-1, 1, 1]
    # Every vertex has a mirror twin (up to float rounding).
    key = {tuple(np.round(p, 9)) for p in v}
    assert all(tuple(np.round(p, 9)) in key for p in mirrored[::7]), class_name
    albedo = car.paint(v, car.mesh.normals, car.mesh.part[np.zeros(len(v), int)])
    albedo_mirror = car.paint(mirrored, car.mesh.normals * [-1, 1, 1], car.mesh.part[np.zeros(len(v), int)])
    np.testing.assert_allclose(albedo, albedo_mirror, err_msg=class_name)


def test_canonical_car_render_is_mirror_symmetric():
  car = cars.build_car("police car", render.seeded_random(0, "test", "sym"))
  image, depth = render.render_views(
    car.mesh,
    np.zeros((1, 6)),
    np.array([[0.4, 0.6, 0.0, 0.5]]),
    car.paint,
    cars.CAMERA,
    np.ones(3),
    to_canonical=cars.TO_CANONICAL,
  )
  assert cars.CAMERA.intrinsics[2] == (cars.CAMERA.size - 1) / 2  # the principal point is the image's centre column
  assert np.mean(np.abs(image[0] - image[0, :, ::-1])) < 0.01
  assert np.mean((depth[0] > 0) != (depth[0, :, ::-1] > 0)) < 0.005


# ----------------------------------------------------------------------------------------------------- the worlds


def test_cars_world_layout_and_metadata(worlds):
  folder, summary = worlds["cars"]
  ids_by_split = {}
  for split in formats.SYNCAR_SPLITS:
    names = sorted(n for n in os.listdir(os.path.join(folder, split)) if n.endswith(".png"))
    assert len(names) == 5 * 2, split
    matches = [formats.SYNCAR_FILENAME.match(n) for n in names]
    assert all(matches), names
    ids_by_split[split] = {m["model_id"] for m in matches}
    for n in names:
      assert os.path.isfile(os.path.join(folder, split, n[:-4] + formats.GT_SUFFIX))
      with Image.open(os.path.join(folder, split, n)) as im:
        assert im.size == (formats.SYNCAR_RAW_SIZE,) * 2 and im.mode == "RGB"
  assert not ids_by_split["train"] & ids_by_split["test"] and not ids_by_split["train"] & ids_by_split["val"]
  with open(os.path.join(folder, formats.SHAPENET_METADATA_FILENAME), newline="", encoding="utf-8") as f:
    rows = list(csv.DictReader(f))
  assert tuple(rows[0]) == formats.SHAPENET_METADATA_COLUMNS and len(rows) == 15
  classes = []
  for row in rows:
    assert row["fullId"].startswith(formats.SHAPENET_FULLID_PREFIX) and row["wnsynset"] == formats.SHAPENET_CAR_SYNSET
    lemmas = row["wnlemmas"].split(",")
    matched = [c for c in formats.CAR_CLASSES if set(formats.CAR_CLASS_LEMMAS[c]) & set(lemmas)]
    assert len(matched) == 1, row["wnlemmas"]
    classes.append(matched[0])
    assert row["up"] == "0,0,1"
  assert sorted(classes) == sorted(formats.CAR_CLASSES * 3)
  assert {r["fullId"][len(formats.SHAPENET_FULLID_PREFIX) :] for r in rows} == set.union(*ids_by_split.values())
  assert summary["images"]["test"] == {c: 2 for c in formats.CAR_CLASSES} and summary["num_images"] == 30
  assert synthetic.is_complete(folder)


def test_ground_truth_matches_the_images(worlds):
  """Depth is positive exactly where the object is (the image differs from the plain background there), sits in
  the canonical depth range, and light/view are the right shapes."""
  folder, _ = worlds["cars"]
  with open(os.path.join(folder, render.LABELS_FILENAME), newline="", encoding="utf-8") as f:
    rows = list(csv.DictReader(f))
  assert len(rows) == 30
  for row in rows[:10]:
    path = os.path.join(folder, row["image"])
    image = np.asarray(Image.open(path), np.float32) / 255.0
    with np.load(render.ground_truth_path(path)) as gt:
      depth, light, view = gt["depth"], gt["light"], gt["view"]
    mask = depth > 0
    assert depth.shape == image.shape[:2]
    assert 0.85 < depth[mask].min() and depth[mask].max() < 1.15
    background = np.median(image[~mask], axis=0)
    differs = np.abs(image - background).max(-1) > 0.02
    core = ndimage.binary_erosion(mask, iterations=2)
    # White cars on a light background can match it in places; outside the mask nothing but background.
    assert np.mean(differs[core]) > 0.6 and np.mean(differs[~ndimage.binary_dilation(mask, iterations=2)]) < 0.01
    assert cars.AMBIENT_RANGE[0] <= light[0] <= cars.AMBIENT_RANGE[1] and abs(view[1]) < np.pi / 2


def test_cars_are_framed_in_the_syncar_crop(worlds):
  folder, _ = worlds["cars"]
  y0, x0, h, w = formats.SYNCAR_CROP
  for path in _files(folder):
    if not path.endswith(formats.GT_SUFFIX):
      continue
    with np.load(os.path.join(folder, path)) as gt:
      mask = gt["depth"] > 0
    crop = mask[y0 : y0 + h, x0 : x0 + w]
    assert mask.sum() == pytest.approx(crop.sum(), rel=0.02), path  # (almost) all of the car inside the crop
    assert 0.12 < crop.mean() < 0.7, path
    rows, cols = np.nonzero(crop)
    assert abs(rows.mean() - h / 2) < 0.15 * h and abs(cols.mean() - w / 2) < 0.15 * w, path


def test_faces_world_layout(worlds):
  folder, summary = worlds["faces"]
  names = sorted(n for n in os.listdir(os.path.join(folder, faces.IMAGES_DIRNAME)) if n.endswith(".jpg"))
  assert len(names) == 6 and summary["num_images"] == 6 and summary["num_identities"] == 3
  matches = [formats.UTKFACE_FILENAME.match(n) for n in names]
  assert all(matches), names
  assert len({m["timestamp"] for m in matches}) == 6
  margin = int(formats.UTKFACE_RAW_SIZE * (1 - formats.FACE_CENTER_CROP) / 2)
  for n in names:
    path = os.path.join(folder, faces.IMAGES_DIRNAME, n)
    with Image.open(path) as im:
      assert im.size == (formats.UTKFACE_RAW_SIZE,) * 2 and im.format == "JPEG"
    with np.load(render.ground_truth_path(path)) as gt:
      mask = gt["depth"] > 0
    centre = mask[margin:-margin, margin:-margin]
    assert 0.3 < centre.mean() < 0.9
    cols = np.nonzero(mask[:, :])[1]
    assert abs(cols.mean() - formats.UTKFACE_RAW_SIZE / 2) < 20
  with open(os.path.join(folder, render.LABELS_FILENAME), newline="", encoding="utf-8") as f:
    identities = [row["label"] for row in csv.DictReader(f)]
  assert sorted(identities) == ["0", "0", "1", "1", "2", "2"]


def test_dataset_root_names_the_beam_input_folder(worlds):
  folder, summary = worlds["faces"]
  root = synthetic.dataset_root("faces", folder)
  assert root == os.path.join(folder, faces.IMAGES_DIRNAME) and summary["dataset_root"] == faces.IMAGES_DIRNAME
  assert all(formats.UTKFACE_FILENAME.match(n) or n.endswith(formats.GT_SUFFIX) for n in os.listdir(root))
  for world in ("cars", "bbt"):
    assert synthetic.dataset_root(world, worlds[world][0]) == os.path.normpath(worlds[world][0])
    assert worlds[world][1]["dataset_root"] == "."


def test_center_crop_camera_puts_the_model_view_in_the_middle():
  camera = render.Camera.for_center_crop(200, 0.8)
  assert camera == render.Camera.for_crop(200, (20, 20, 160, 160))
  assert camera.intrinsics[2:] == (99.5, 99.5)
  with pytest.raises(ValueError, match="fraction"):
    render.Camera.for_center_crop(200, 1.5)


def test_bbt_world_layout(worlds):
  folder, summary = worlds["bbt"]
  with open(os.path.join(folder, formats.BBT_LABELS_FILENAME), encoding="utf-8") as f:
    lines = f.read().splitlines()
  assert lines[0] == formats.BBT_LABELS_HEADER
  labels = dict(line.split() for line in lines[1:])
  expected = {"leonard": 3, "sheldon": 2, "penny": 1, "howard": 1, "raj": 1}
  assert summary["tracks"] == expected
  assert sorted(labels.values()) == sorted(n for n, k in expected.items() for _ in range(k))
  tracks = os.path.join(folder, formats.BBT_TRACKS_DIRNAME)
  assert sorted(os.listdir(tracks)) == sorted(labels)
  for track in labels:
    frames = sorted(n for n in os.listdir(os.path.join(tracks, track)) if n.endswith(".jpg"))
    assert 2 <= len(frames) <= 3 and all(formats.BBT_FRAME_FILENAME.match(n) for n in frames)
    numbers = [int(n[:-4]) for n in frames]
    assert numbers == list(range(numbers[0], numbers[0] + len(frames)))  # consecutive episode frames
    assert all(os.path.isfile(os.path.join(tracks, track, n[:-4] + formats.GT_SUFFIX)) for n in frames)
    with Image.open(os.path.join(tracks, track, frames[0])) as im:
      assert im.size == (bbt.FRAME_SIZE,) * 2


def test_bbt_tracks_change_smoothly():
  views, lights = bbt.sample_track(render.seeded_random(0, "test"), 16)
  assert views.shape == (16, 6) and lights.shape == (16, 4)
  assert np.max(np.abs(np.diff(views[:, :3], axis=0))) < np.radians(6)
  assert np.max(np.abs(np.diff(lights, axis=0))) < 0.1
  assert np.ptp(views[:, 1]) > 0 and np.ptp(lights[:, 2]) > 0


@pytest.mark.parametrize("world", sorted(TINY))
def test_generation_is_deterministic(world, worlds, tmp_path):
  folder, _ = worlds[world]
  again = synthetic.generate(world, str(tmp_path), seed=3, progress=False, **TINY[world])
  assert again == json.load(open(os.path.join(folder, synthetic.SUMMARY_FILENAME), encoding="utf-8"))
  assert _files(folder) == _files(str(tmp_path))
  _, mismatch, errors = filecmp.cmpfiles(folder, str(tmp_path), _files(folder), shallow=False)
  assert not mismatch and not errors


def test_other_seed_gives_other_images(tmp_path):
  a = synthetic.generate("bbt", str(tmp_path / "a"), seed=0, progress=False, **TINY["bbt"])
  b = synthetic.generate("bbt", str(tmp_path / "b"), seed=1, progress=False, **TINY["bbt"])
  assert a["tracks"] == b["tracks"]
  image_a, image_b = (
    np.asarray(
      Image.open(os.path.join(tmp_path / k, next(p for p in _files(str(tmp_path / k)) if p.endswith(".jpg")))),
      np.float64,
    )
    for k in ("a", "b")
  )
  assert np.mean(np.abs(image_a - image_b)) > 5


def test_summary_is_last_and_partial_worlds_are_detected_and_replaced(tmp_path):
  folder = str(tmp_path)
  summary = synthetic.generate("bbt", folder, seed=0, progress=False, **TINY["bbt"])
  newest = max(_files(folder), key=lambda p: os.stat(os.path.join(folder, p)).st_mtime_ns)
  assert newest == synthetic.SUMMARY_FILENAME
  assert summary["version"] == synthetic.VERSION and synthetic.is_complete(folder)
  frame = next(p for p in _files(folder) if p.endswith(".jpg"))
  os.remove(os.path.join(folder, frame))
  assert not synthetic.is_complete(folder)
  # Simulate an interrupted rewrite: the marker is there, the summary is gone; generate() recovers.
  open(os.path.join(folder, synthetic.IN_PROGRESS_FILENAME), "w").close()
  os.remove(os.path.join(folder, synthetic.SUMMARY_FILENAME))
  assert not synthetic.is_complete(folder)
  synthetic.generate("bbt", folder, seed=0, progress=False, **TINY["bbt"])
  assert synthetic.is_complete(folder) and not os.path.exists(os.path.join(folder, synthetic.IN_PROGRESS_FILENAME))
  assert not synthetic.is_complete(str(tmp_path / "missing"))


def test_generate_rejects_bad_requests(tmp_path):
  with pytest.raises(ValueError, match="unknown synthetic world"):
    synthetic.generate("trees", str(tmp_path / "a"))
  with pytest.raises(ValueError, match="num_identities"):
    synthetic.generate("cars", str(tmp_path / "b"), num_identities=3)
  with pytest.raises(ValueError, match="images_per_model"):
    synthetic.generate("cars", str(tmp_path / "c"), images_per_model=0)
  for scale in (0, float("inf"), float("nan")):
    with pytest.raises(ValueError, match="track_scale must be positive and finite"):
      synthetic.generate("bbt", str(tmp_path / "d"), track_scale=scale)
  with pytest.raises(ValueError, match="min_frames"):
    synthetic.generate("bbt", str(tmp_path / "d"), min_frames=5, max_frames=4)
  with pytest.raises(ValueError, match="num_identities"):
    synthetic.generate("faces", str(tmp_path / "d"), num_identities=2.5)
  assert not (tmp_path / "c").exists() and not (tmp_path / "d").exists()  # refused before touching the disk
  foreign = tmp_path / "foreign"
  (foreign / "train").mkdir(parents=True)
  with pytest.raises(ValueError, match="no synthetic world wrote"):
    synthetic.generate("cars", str(foreign))
  assert (foreign / "train").is_dir()  # untouched
  photos = tmp_path / "photos"  # e.g. real UTKFace images where the raw world would go
  photos.mkdir()
  (photos / "25_0_0_20170116174525125.jpg").write_bytes(b"a real photo")
  with pytest.raises(ValueError, match=r"holds 1 entries .*25_0_0_20170116174525125.jpg.* and no synthetic world"):
    synthetic.generate("cars", str(photos))
  assert os.listdir(photos) == ["25_0_0_20170116174525125.jpg"]
  a_file = tmp_path / "notes.txt"
  a_file.write_text("mine")
  with pytest.raises(ValueError, match="is a file, not a folder"):
    synthetic.generate("cars", str(a_file))
  assert a_file.read_text() == "mine"
  synthetic.generate("bbt", str(tmp_path / "e"), progress=False, track_scale=0.01, min_frames=1, max_frames=1)
  with pytest.raises(ValueError, match="already holds a synthetic 'bbt' world"):
    synthetic.generate("faces", str(tmp_path / "e"))


def test_cli_writes_a_world_and_checks_flags(tmp_path, capsys, caplog):
  out = str(tmp_path / "w")
  assert (
    cli.main(
      [
        "--world",
        "bbt",
        "--output_dir",
        out,
        "--track_scale",
        "0.01",
        "--min_frames",
        "1",
        "--max_frames",
        "1",
        "--no_progress",
        "--seed",
        "5",
      ]
    )
    == 0
  )
  assert synthetic.is_complete(out) and synthetic.read_summary(out)["seed"] == 5
  with pytest.raises(SystemExit):
    cli.main(["--world", "cars", "--output_dir", out, "--num_identities", "3"])
  assert "applies to the faces world" in capsys.readouterr().err
  with pytest.raises(SystemExit) as exit_info:
    cli.main(["--help"])
  assert exit_info.value.code == 0
  text = capsys.readouterr().out
  for name in ("--train_models_per_class", "--images_per_model", "--num_identities", "--track_scale"):
    assert name in text
  # A refused folder exits 1, as train's and evaluate's refusals of a data folder; sizes a world cannot take, 2.
  assert cli.main(["--world", "faces", "--output_dir", out, "--num_identities", "1"]) == 1  # a bbt world is there
  assert "already holds a synthetic 'bbt' world" in caplog.text
  assert cli.main(["--world", "faces", "--output_dir", str(tmp_path / "new"), "--num_identities", "0"]) == 2
  assert not (tmp_path / "new").exists()
  blocker = tmp_path / "a_file"
  blocker.write_text("the user's")  # an --output_dir under a file: exit 1 naming it, not a traceback
  assert cli.main(["--world", "faces", "--output_dir", str(blocker / "world"), "--num_identities", "1"]) == 1
  assert blocker.read_text() == "the user's"


def test_worlds_render_without_a_cpp_compiler(tmp_path):
  """The worlds rasterize with the default (pure-TF) backend: with no compiler on PATH and an empty kernel cache,
  generation never tries to build the C++ kernel (the quick start provisions the cars world this way)."""
  import subprocess  # pylint: disable=import-outside-toplevel
  import sys  # pylint: disable=import-outside-toplevel

  (tmp_path / "bin").mkdir()
  env = {k: v for k, v in os.environ.items() if k != "CXX"}
  env.update(PATH=str(tmp_path / "bin"), PDR_TF_CACHE_DIR=str(tmp_path / "cache"))
  args = ["--world", "cars", "--output_dir", str(tmp_path / "w"), "--no_progress", "--images_per_model", "1"]
  args += ["--train_models_per_class", "1", "--val_models_per_class", "1", "--test_models_per_class", "1"]
  result = subprocess.run(
    [sys.executable, "-m", "pdr_tf.synthetic", *args],
    env=env,
    capture_output=True,
    text=True,
    timeout=fixtures.HANG_GUARD_S,
  )
  assert result.returncode == 0, result.stderr[-3000:]
  assert "kernel" not in result.stderr.lower() and not (tmp_path / "cache").exists()
  assert synthetic.is_complete(str(tmp_path / "w"))
