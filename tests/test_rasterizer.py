"""Tests for pdr_tf.render.rasterizer (tfg backend): coverage, depth, occlusion, barycentrics, gradients, errors."""

import numpy as np
import pytest
import tensorflow as tf

from pdr_tf.render import geometry
from pdr_tf.render import rasterizer

SIZE = 16
K = geometry.intrinsics_from_fov(SIZE)


def _plane(depth, size=SIZE, batch=1):
  points = geometry.depth_to_points(tf.fill([batch, size, size], depth), geometry.intrinsics_from_fov(size))
  return tf.reshape(points, [batch, -1, 3]), geometry.grid_faces(size, size)


@pytest.mark.parametrize("depth", [0.9, 1.0, 1.37])
def test_fronto_parallel_plane_renders_its_depth(depth):
  vertices, faces = _plane(depth)
  fragments = rasterizer.rasterize(vertices, faces, K, (SIZE, SIZE))
  mask = fragments.mask.numpy()[0]
  # The mesh spans pixel centres 0..S-1 exactly: only border pixels (edge ties) may drop.
  assert mask.mean() >= ((SIZE - 2) / SIZE) ** 2
  assert mask[1:-1, 1:-1].all()
  np.testing.assert_allclose(fragments.depth.numpy()[0][mask > 0], depth, rtol=1e-5)
  assert np.all(fragments.triangle_id.numpy()[0][mask == 0] == -1)


def test_background_depth_and_far_default():
  vertices = tf.constant([[[0.0, 0.0, 1.0], [0.001, 0.0, 1.0], [0.0, 0.001, 1.0]]])
  faces = np.array([[0, 1, 2]], np.int32)
  fragments = rasterizer.rasterize(vertices, faces, K, (SIZE, SIZE))
  assert fragments.depth.numpy().max() == pytest.approx(rasterizer.DEFAULT_FAR)
  fragments = rasterizer.rasterize(vertices, faces, K, (SIZE, SIZE), background_depth=1.2)
  assert fragments.depth.numpy().max() == pytest.approx(1.2)


def test_single_triangle_coverage_and_barycentrics():
  fx, _, cx, _ = K.numpy()
  corners_px = np.array([[2.0, 3.0], [12.0, 4.0], [5.0, 13.0]])  # (u, v)
  z = np.array([1.0, 1.2, 0.9])
  vertices = np.concatenate([(corners_px - cx) / fx * z[:, None], z[:, None]], -1)[None].astype(np.float32)
  faces = np.array([[0, 1, 2]], np.int32)
  fragments = rasterizer.rasterize(vertices, faces, K, (SIZE, SIZE))
  uv = geometry.pixel_grid(SIZE, SIZE).numpy()

  def edge(a, b, p):
    return (b[0] - a[0]) * (p[..., 1] - a[1]) - (b[1] - a[1]) * (p[..., 0] - a[0])

  e = [edge(corners_px[i], corners_px[(i + 1) % 3], uv) for i in range(3)]
  strictly_inside = ((e[0] > 1e-3) & (e[1] > 1e-3) & (e[2] > 1e-3)) | ((e[0] < -1e-3) & (e[1] < -1e-3) & (e[2] < -1e-3))
  strictly_outside = (np.minimum(np.minimum(e[0], e[1]), e[2]) < -1e-3) & (
    np.maximum(np.maximum(e[0], e[1]), e[2]) > 1e-3
  )
  mask = fragments.mask.numpy()[0] > 0
  assert np.all(mask[strictly_inside]) and not np.any(mask[strictly_outside])
  # Perspective-correct barycentrics interpolate the camera-space vertices to the point seen at each pixel.
  points = rasterizer.interpolate(vertices, faces, fragments).numpy()[0]
  np.testing.assert_allclose(geometry.project(points[mask], K), uv[mask], atol=2e-3)
  np.testing.assert_allclose(fragments.barycentrics.numpy()[0][mask].sum(-1), 1.0, atol=1e-5)


def test_nearer_surface_occludes_farther_one():
  near_v, faces = _plane(0.95)
  far_v, _ = _plane(1.05)
  both = tf.concat([far_v, near_v], axis=1)  # far listed first: order must not matter
  all_faces = np.concatenate([faces, faces + SIZE * SIZE])
  fragments = rasterizer.rasterize(both, all_faces, K, (SIZE, SIZE))
  mask = fragments.mask.numpy()[0] > 0
  np.testing.assert_allclose(fragments.depth.numpy()[0][mask], 0.95, rtol=1e-5)
  assert np.all(fragments.triangle_id.numpy()[0][mask] >= len(faces))


def test_batch_items_are_independent():
  v1, faces = _plane(0.95)
  v2, _ = _plane(1.05)
  fragments = rasterizer.rasterize(tf.concat([v1, v2], 0), faces, K, (SIZE, SIZE))
  depth = fragments.depth.numpy()
  assert np.allclose(depth[0][depth[0] < 2], 0.95) and np.allclose(depth[1][depth[1] < 2], 1.05)


def test_depth_gradient_matches_finite_differences():
  vertices, faces = _plane(1.0, size=4)
  k = geometry.intrinsics_from_fov(4)
  # Tilt the mesh so depth varies across pixels; gradient is w.r.t. vertex z (coverage fixed for small deltas).
  base = vertices.numpy()
  base[..., 2] += np.linspace(-0.02, 0.02, base.shape[1])

  def render_depth(z):
    v = tf.concat([tf.constant(base[..., :2]), tf.cast(z, tf.float32)[..., None]], -1)
    fragments = rasterizer.rasterize(v, faces, k, (4, 4))
    return fragments.depth * fragments.mask

  theoretical, numerical = tf.test.compute_gradient(render_depth, [tf.constant(base[..., 2], tf.float64)], delta=1e-4)
  assert np.abs(theoretical[0]).max() > 0.1
  np.testing.assert_allclose(theoretical[0], numerical[0], atol=5e-2)


def test_unknown_backend_and_bad_inputs():
  vertices, faces = _plane(1.0)
  with pytest.raises(ValueError, match="Unknown rasterizer backend"):
    rasterizer.rasterize(vertices, faces, K, (SIZE, SIZE), backend="nope")
  with pytest.raises(TypeError, match="integer"):
    rasterizer.rasterize(vertices, faces.astype(np.float32), K, (SIZE, SIZE))
  with pytest.raises(ValueError, match=r"\[F, 3\]"):
    rasterizer.rasterize(vertices, faces[:, :2], K, (SIZE, SIZE))
  with pytest.raises(ValueError):
    rasterizer.rasterize(vertices[0], faces, K, (SIZE, SIZE))
  assert "tfg" in rasterizer.backends()


@pytest.mark.parametrize("backend", ["tfg", "tf"])
def test_plane_depth_equals_perspective_correct_interpolation_of_z(backend):
  """Depth is computed as the ray-plane intersection; it must equal the corners' z interpolated with the
  perspective-correct barycentrics, on tilted, rotated random meshes."""
  rng = np.random.RandomState(7)
  depth = tf.constant(1.0 + 0.05 * rng.uniform(-1, 1, (2, SIZE, SIZE)), tf.float32)
  view = tf.constant(np.concatenate([rng.uniform(-0.4, 0.4, (2, 3)), np.zeros((2, 3))], 1), tf.float32)
  points = tf.reshape(geometry.depth_to_points(depth, K), [2, -1, 3])
  points = geometry.transform_points(points, view, (0.0, 0.0, 1.0))
  faces = geometry.grid_faces(SIZE, SIZE)
  fragments = rasterizer.rasterize(points, faces, K, (SIZE, SIZE), backend=backend)
  interpolated = rasterizer.interpolate(points[..., 2:3], faces, fragments)[..., 0]
  covered = fragments.mask.numpy() > 0
  assert covered.mean() > 0.5
  np.testing.assert_allclose(fragments.depth.numpy()[covered], interpolated.numpy()[covered], rtol=1e-5, atol=1e-5)
  assert np.all(fragments.depth.numpy()[~covered] == rasterizer.DEFAULT_FAR)
