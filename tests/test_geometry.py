"""Tests for pdr_tf.render.geometry: closed forms, finite-difference gradients, shape and dtype errors."""

import math

import numpy as np
import pytest
import tensorflow as tf

from pdr_tf.render import geometry

K64 = geometry.intrinsics_from_fov(64)


def _max_fd_error(fn, args):
  """Largest Jacobian error relative to the Jacobian's scale (normals of depth have entries of order fx)."""
  theoretical, numerical = tf.test.compute_gradient(fn, args, delta=1e-3)
  return max(np.max(np.abs(t - n)) / max(1.0, np.max(np.abs(n))) for t, n in zip(theoretical, numerical))


def test_intrinsics_match_reference():
  fx, fy, cx, cy = geometry.intrinsics_from_fov(64, 10.0).numpy()
  assert fx == pytest.approx(31.5 / math.tan(math.radians(5.0)), rel=1e-6)
  assert fx == pytest.approx(360.05, abs=0.01) and fy == fx
  assert cx == cy == 31.5


@pytest.mark.parametrize("size,fov", [(1, 10.0), (64, 0.0), (64, 180.0)])
def test_intrinsics_reject_bad_arguments(size, fov):
  with pytest.raises(ValueError):
    geometry.intrinsics_from_fov(size, fov)


def test_back_projection_then_projection_returns_pixels(rng):
  depth = rng.uniform(0.9, 1.1, (2, 5, 7)).astype(np.float32)
  points = geometry.depth_to_points(depth, K64)
  np.testing.assert_allclose(points[..., 2], depth, rtol=1e-6)
  uv = geometry.project(points, K64)
  np.testing.assert_allclose(uv, np.broadcast_to(geometry.pixel_grid(5, 7), (2, 5, 7, 2)), atol=1e-3)


def test_grid_faces_cover_every_quad_twice():
  faces = geometry.grid_faces(3, 4)
  assert faces.shape == (2 * 2 * 3, 3) and faces.dtype == np.int32
  assert faces.min() == 0 and faces.max() == 11
  with pytest.raises(ValueError):
    geometry.grid_faces(1, 4)


def test_normals_of_fronto_parallel_plane_point_away_from_camera():
  normals = geometry.normals_from_depth(tf.fill([1, 6, 6], 1.0), K64).numpy()
  np.testing.assert_allclose(normals, np.broadcast_to([0.0, 0.0, 1.0], normals.shape), atol=1e-6)


def test_normals_of_tilted_plane_match_closed_form():
  # Plane z = 1 + a * x (x in camera space). Depth d(u) satisfies d = 1 + a * (u - cx) / fx * d.
  fx, _, cx, _ = K64.numpy()
  a = 0.5
  u = np.arange(8, dtype=np.float32)
  depth_row = 1.0 / (1.0 - a * (u - cx) / fx)
  depth = np.tile(depth_row, (8, 1))[None].astype(np.float32)
  normals = geometry.normals_from_depth(depth, K64).numpy()[0, 1:-1, 1:-1]
  # Tangents (1, 0, a) and (0, 1, 0): cross = (-a, 0, 1) normalized.
  expected = np.array([-a, 0.0, 1.0]) / math.sqrt(1 + a * a)
  np.testing.assert_allclose(normals, np.broadcast_to(expected, normals.shape), atol=1e-3)
  assert np.allclose(geometry.normals_from_depth(depth, K64).numpy()[0, 0], [0, 0, 1])  # border


def test_normals_of_sphere_match_closed_form():
  size, radius, centre_z = 32, 0.05, 1.0
  k = geometry.intrinsics_from_fov(size)
  fx, _, cx, _ = k.numpy()
  u, v = np.meshgrid(np.arange(size), np.arange(size))
  rays = np.stack([(u - cx) / fx, (v - cx) / fx, np.ones_like(u, dtype=np.float64)], -1)
  # Ray-sphere intersection |t r - C|^2 = R^2, nearest root.
  b = rays[..., 2] * centre_z
  a = (rays**2).sum(-1)
  disc = b * b - a * (centre_z**2 - radius**2)
  hit = disc > 0
  t = np.where(hit, (b - np.sqrt(np.maximum(disc, 0))) / a, 0)
  depth = np.where(hit, t, centre_z).astype(np.float32)
  normals = geometry.normals_from_depth(depth[None], k).numpy()[0]
  points = rays * t[..., None]
  inward = (np.array([0, 0, centre_z]) - points) / radius  # points away from the camera on the visible side
  inner = hit.copy()
  for dy in (-1, 0, 1):  # keep pixels whose 3x3 neighbourhood is on the sphere
    for dx in (-1, 0, 1):
      inner &= np.roll(np.roll(hit, dy, 0), dx, 1)
  inner[0, :] = inner[-1, :] = inner[:, 0] = inner[:, -1] = False
  cos = (normals[inner] * inward[inner]).sum(-1)
  assert inner.sum() > 100
  assert np.degrees(np.arccos(np.clip(cos, -1, 1))).max() < 5.0


@pytest.mark.parametrize(
  "light,normal,expected",
  [
    ([0.2, 0.5, 0.0, 0.0], [0.0, 0.0, 1.0], 0.7),
    ([0.2, 0.5, 1.0, 0.0], [0.0, 0.0, 1.0], 0.2 + 0.5 / math.sqrt(2)),
    ([0.1, 0.8, 0.0, 0.0], [0.0, 0.0, -1.0], 0.1),  # facing away: diffuse clamps at zero
    ([0.0, 1.0, 0.0, 1.0], [0.0, 1.0, 0.0], 1 / math.sqrt(2)),
  ],
)
def test_lambertian_shading_closed_form(light, normal, expected):
  shading = geometry.lambertian_shading(tf.constant(normal, tf.float32)[None, None, None], tf.constant([light]))
  assert shading.shape == (1, 1, 1, 1)
  assert float(shading[0, 0, 0, 0]) == pytest.approx(expected, abs=1e-6)


def test_shade_albedo_maps_through_unit_range():
  albedo = tf.constant([[[[-1.0, 0.0, 1.0]]]])
  np.testing.assert_allclose(geometry.shade_albedo(albedo, tf.ones([1, 1, 1, 1])), albedo)
  np.testing.assert_allclose(geometry.shade_albedo(albedo, tf.fill([1, 1, 1, 1], 0.5)), [[[[-1.0, -0.5, 0.0]]]])


def test_rotation_matrix_is_rz_ry_rx():
  rx, ry, rz = 0.3, -0.4, 0.7
  c, s = math.cos, math.sin
  mx = np.array([[1, 0, 0], [0, c(rx), -s(rx)], [0, s(rx), c(rx)]])
  my = np.array([[c(ry), 0, s(ry)], [0, 1, 0], [-s(ry), 0, c(ry)]])
  mz = np.array([[c(rz), -s(rz), 0], [s(rz), c(rz), 0], [0, 0, 1]])
  np.testing.assert_allclose(geometry.rotation_matrix(tf.constant([[rx, ry, rz]]))[0], mz @ my @ mx, atol=1e-6)


def test_transform_then_inverse_returns_points(rng):
  points = tf.constant(rng.uniform(-0.1, 0.1, (3, 10, 3)) + [0, 0, 1], tf.float32)
  view = tf.constant(rng.uniform(-0.5, 0.5, (3, 6)), tf.float32)
  moved = geometry.transform_points(points, view, (0.0, 0.0, 1.0))
  assert np.abs(moved - points).max() > 1e-2
  np.testing.assert_allclose(geometry.inverse_transform_points(moved, view, (0.0, 0.0, 1.0)), points, atol=1e-6)


def test_rotation_centre_is_fixed_by_rotation():
  centre = tf.constant([[[0.0, 0.0, 1.0]]])
  view = tf.constant([[0.3, 0.5, -0.2, 0.0, 0.0, 0.0]])
  np.testing.assert_allclose(geometry.transform_points(centre, view, (0.0, 0.0, 1.0)), centre, atol=1e-6)


def test_flip_twice_is_identity(rng):
  image = rng.rand(2, 4, 5, 3).astype(np.float32)
  once = geometry.flip_horizontal(image)
  np.testing.assert_array_equal(once[:, :, 0], image[:, :, -1])
  np.testing.assert_array_equal(geometry.flip_horizontal(once), image)
  with pytest.raises(ValueError):
    geometry.flip_horizontal(tf.zeros([4, 5]))


def test_bilinear_sample_values():
  image = tf.reshape(tf.range(12, dtype=tf.float32), [1, 3, 4, 1])
  coords = tf.constant([[[[0.0, 0.0], [1.0, 2.0], [0.5, 0.0], [0.5, 0.5], [-2.0, 0.0], [3.0, 2.0]]]])
  out = geometry.bilinear_sample(image, coords).numpy().ravel()
  np.testing.assert_allclose(out, [0.0, 9.0, 0.5, 2.5, 0.0, 11.0], atol=1e-6)


def test_light_direction_is_unit():
  d = geometry.light_direction(tf.constant([[0.0, 0.0, 3.0, 4.0]])).numpy()
  np.testing.assert_allclose(d, [[3 / math.sqrt(26), 4 / math.sqrt(26), 1 / math.sqrt(26)]], atol=1e-6)


@pytest.mark.parametrize(
  "fn,shapes",
  [
    (lambda d: geometry.normals_from_depth(d, K64), [(1, 5, 5)]),
    (lambda n, l: geometry.lambertian_shading(n, l), [(1, 2, 2, 3), (1, 4)]),
    (lambda p, v: geometry.transform_points(p, v, (0.0, 0.0, 1.0)), [(1, 4, 3), (1, 6)]),
    (lambda p, v: geometry.inverse_transform_points(p, v, (0.0, 0.0, 1.0)), [(1, 4, 3), (1, 6)]),
    (lambda a, s: geometry.shade_albedo(a, s), [(1, 2, 2, 3), (1, 2, 2, 1)]),
    (lambda d: geometry.depth_to_points(d, K64), [(1, 3, 3)]),
  ],
)
def test_gradients_match_finite_differences(fn, shapes, rng):
  args = []
  for shape in shapes:
    value = rng.uniform(0.2, 0.8, shape)
    if shape == (1, 5, 5) or shape == (1, 3, 3):
      value = value * 0.2 + 0.9
    args.append(tf.constant(value, tf.float64))

  def wrapped(*xs):
    return fn(*[tf.cast(x, tf.float32) for x in xs])

  assert _max_fd_error(wrapped, args) < 2e-2


def test_bilinear_sample_gradients_match_finite_differences(rng):
  image = tf.constant(rng.rand(1, 4, 4, 2), tf.float64)
  coords = tf.constant([[[[1.3, 1.7], [0.2, 2.4]]]], tf.float64)
  fn = lambda i, c: geometry.bilinear_sample(tf.cast(i, tf.float32), tf.cast(c, tf.float32))
  assert _max_fd_error(fn, [image, coords]) < 2e-2


def test_invalid_shapes_and_dtypes_raise():
  with pytest.raises(ValueError, match="rank 3"):
    geometry.depth_to_points(tf.zeros([4, 4]), K64)
  with pytest.raises(TypeError, match="float32"):
    geometry.depth_to_points(tf.zeros([1, 4, 4], tf.float64), K64)
  with pytest.raises(ValueError, match="trailing"):
    geometry.lambertian_shading(tf.zeros([1, 2, 2, 3]), tf.zeros([1, 3]))
  with pytest.raises(ValueError, match="trailing"):
    geometry.transform_points(tf.zeros([1, 4, 3]), tf.zeros([1, 5]), (0.0, 0.0, 1.0))
  with pytest.raises(ValueError):
    geometry.bilinear_sample(tf.zeros([1, 4, 4, 1]), tf.zeros([1, 4, 4, 3]))
