"""Tests for pdr_tf.render.renderer: the Unsup3D rendering path end to end."""

import math

import numpy as np
import pytest
import tensorflow as tf

from pdr_tf.render import renderer as renderer_lib
from pdr_tf.render import scene as scene_lib


def _scene(size, batch=2, seed=0):
  rng = np.random.RandomState(seed)
  yy, xx = np.mgrid[0:size, 0:size] / (size - 1) * 2 - 1
  bump = 1.05 - 0.1 * np.exp(-(xx**2 + yy**2) * 3)
  depth = np.repeat(bump[None], batch, 0).astype(np.float32)
  albedo = rng.uniform(-0.8, 0.8, (batch, size, size, 3)).astype(np.float32)
  light = np.tile([[0.5, 0.5, 0.2, -0.1]], (batch, 1)).astype(np.float32)
  return depth, albedo, light


def test_identity_view_reproduces_canonical_image():
  r = renderer_lib.Renderer(image_size=32)
  depth, albedo, light = _scene(32)
  out = r.render(depth, albedo, light, tf.zeros([2, 6]))
  mask = out["mask"].numpy() > 0
  assert mask.mean() > 0.9
  np.testing.assert_allclose(out["recon_image"].numpy()[mask], out["canon_image"].numpy()[mask], atol=1e-4)
  np.testing.assert_allclose(out["recon_depth"].numpy()[mask], depth[mask], atol=1e-5)


def test_output_shapes_and_ranges():
  r = renderer_lib.Renderer(image_size=16)
  depth, albedo, light = _scene(16)
  view = tf.constant([[0.0, 0.3, 0.0, 0.0, 0.0, 0.0]] * 2)
  out = r.render(depth, albedo, light, view)
  assert out["recon_image"].shape == (2, 16, 16, 3) and out["recon_depth"].shape == (2, 16, 16)
  assert out["canon_normal"].shape == (2, 16, 16, 3) and out["canon_shading"].shape == (2, 16, 16, 1)
  assert out["mask"].shape == (2, 16, 16)
  assert set(np.unique(out["mask"].numpy())) <= {0.0, 1.0}
  rd = out["recon_depth"].numpy()
  assert rd.min() >= 0.8 - 1e-6 and rd.max() <= 1.2 + 1e-6


def test_yaw_turns_plane_about_rotation_centre():
  # A fronto-parallel plane through the rotation centre, turned by yaw, has depth 1 at the principal point and
  # depth changing linearly across columns.
  r = renderer_lib.Renderer(image_size=33)
  yaw = math.radians(20)
  recon = r.warp_depth(tf.fill([1, 33, 33], 1.0), tf.constant([[0.0, yaw, 0.0, 0.0, 0.0, 0.0]])).numpy()[0]
  assert recon[16, 16] == pytest.approx(1.0, abs=1e-4)
  row = recon[16, 10:23]
  assert np.all(np.diff(row) < 0) or np.all(np.diff(row) > 0)


def test_background_is_masked_out_when_view_moves_object():
  r = renderer_lib.Renderer(image_size=16)
  depth, albedo, light = _scene(16)
  out = r.render(depth, albedo, light, tf.constant([[0.0, 0.0, 0.0, 0.05, 0.0, 0.0]] * 2))
  mask = out["mask"].numpy()
  assert 0.3 < mask.mean() < 0.9  # part of the frame is uncovered after a translation
  assert np.all(out["recon_depth"].numpy()[mask == 0] == pytest.approx(1.2))


def test_gradients_reach_depth_albedo_light_and_view():
  r = renderer_lib.Renderer(image_size=16)
  depth, albedo, light = _scene(16)
  variables = [
    tf.Variable(depth),
    tf.Variable(albedo),
    tf.Variable(light),
    tf.Variable([[0.05, 0.2, 0.02, 0.01, -0.01, 0.0]] * 2),
  ]
  target = tf.random.stateless_uniform([2, 16, 16, 3], [1, 2], -1, 1)
  with tf.GradientTape() as tape:
    out = r.render(*variables)
    loss = tf.reduce_mean(tf.abs(out["recon_image"] - target) * out["mask"][..., None])
  grads = tape.gradient(loss, variables)
  for name, g in zip(("depth", "albedo", "light", "view"), grads):
    assert g is not None, name
    assert np.all(np.isfinite(g.numpy())), name
    assert np.abs(g.numpy()).max() > 0, name


# View moves the rasterized depth, whose coverage is piecewise constant: finite differences of the image w.r.t.
# view cross triangle boundaries, so the view gradient is checked for presence and finiteness above instead.
@pytest.mark.parametrize("which", ["albedo", "light"])
def test_render_gradients_match_finite_differences(which):
  r = renderer_lib.Renderer(image_size=8)
  depth, albedo, light = _scene(8, batch=1)
  view = np.array([[0.03, 0.1, 0.0, 0.0, 0.0, 0.0]], np.float32)
  args = {"albedo": albedo[:, 2:4, 2:4], "light": light, "view": view}

  def fn(x):
    x = tf.cast(x, tf.float32)
    a, l, v = albedo, light, view
    if which == "albedo":
      a = tf.tensor_scatter_nd_update(albedo, [[0, i, j] for i in (2, 3) for j in (2, 3)], tf.reshape(x, [4, 3]))
    elif which == "light":
      l = x
    else:
      v = x
    out = r.render(depth, a, l, v)
    return out["recon_image"][:, 2:6, 2:6] * out["mask"][:, 2:6, 2:6, None]

  theoretical, numerical = tf.test.compute_gradient(fn, [tf.constant(args[which], tf.float64)], delta=1e-3)
  scale = max(1.0, np.abs(numerical[0]).max())
  assert np.abs(numerical[0]).max() > 1e-3
  np.testing.assert_allclose(theoretical[0] / scale, numerical[0] / scale, atol=3e-2)


def test_flip_pair_doubles_batch_and_mirrors():
  depth, albedo, light = _scene(8)
  view = np.zeros([2, 6], np.float32)
  d2, a2, l2, v2 = renderer_lib.flip_pair(depth, albedo, light, view)
  assert d2.shape[0] == 4 and a2.shape[0] == 4 and l2.shape[0] == 4 and v2.shape[0] == 4
  np.testing.assert_array_equal(d2[2:], depth[:, :, ::-1])
  np.testing.assert_array_equal(a2[2:], albedo[:, :, ::-1])
  np.testing.assert_array_equal(l2[2:], light)


def test_mirrored_scene_renders_the_mirrored_image():
  # The mirror signs of scene.py: the scene mirrored left to right (maps flipped, lx, ry, rz, tx negated) renders
  # the mirror image of the original, the symmetry the mirror-equivariant light and view heads build on.
  size = 32
  depth, albedo, light = _scene(size, seed=3)
  view = np.array([[0.15, 0.3, -0.2, 0.03, -0.02, 0.0], [-0.1, -0.25, 0.1, -0.04, 0.05, 0.0]], np.float32)
  r = renderer_lib.Renderer(image_size=size)
  original = r.render(depth, albedo, light, view)
  mirrored = r.render(
    depth[:, :, ::-1],
    albedo[:, :, ::-1],
    light * np.float32(scene_lib.LIGHT_MIRROR_SIGNS),
    view * np.float32(scene_lib.VIEW_MIRROR_SIGNS),
  )
  # The masks match exactly; the images up to the mesh's triangulation, which is not mirror-symmetric (the quads'
  # diagonals): with random per-pixel albedo the interpolation differs by 0.001 on average, 0.02 at most.
  np.testing.assert_array_equal(mirrored["mask"].numpy(), original["mask"].numpy()[:, :, ::-1])
  both = mirrored["mask"].numpy() > 0
  assert both.mean() > 0.4
  error = np.abs(mirrored["recon_image"].numpy()[both] - original["recon_image"].numpy()[:, :, ::-1][both])
  assert error.mean() < 3e-3 and error.max() < 0.03, (error.mean(), error.max())
  # Not the identity: without the signs the mirrored maps render something else.
  unsigned = r.render(depth[:, :, ::-1], albedo[:, :, ::-1], light, view)
  assert np.abs(unsigned["recon_image"].numpy()[both] - original["recon_image"].numpy()[:, :, ::-1][both]).mean() > 0.05


def test_invalid_arguments():
  with pytest.raises(ValueError, match="min_depth"):
    renderer_lib.Renderer(ranges=scene_lib.SceneRanges(min_depth=1.2, max_depth=1.1))
  r = renderer_lib.Renderer(image_size=8)
  with pytest.raises(ValueError, match=r"\[B, 8, 8\]"):
    r.warp_depth(tf.ones([1, 9, 9]), tf.zeros([1, 6]))
  with pytest.raises(ValueError):
    r.render(tf.ones([1, 8, 8]), tf.zeros([1, 8, 8, 3]), tf.zeros([1, 3]), tf.zeros([1, 6]))


def test_jit_compile_renders_the_same_outputs_and_gradients():
  scene = [tf.constant(x) for x in _scene(16, batch=2, seed=5)] + [tf.constant([[0.1, -0.2, 0.05, 0.01, 0, 0]] * 2)]
  eager, compiled = renderer_lib.Renderer(16, backend="tf"), renderer_lib.Renderer(16, backend="tf", jit_compile=True)
  assert compiled.compiled and not eager.compiled
  results = []
  for r in (eager, compiled):
    with tf.GradientTape() as tape:
      tape.watch(list(scene))
      out = r.render(*scene)
      loss = tf.reduce_mean(out["recon_image"] ** 2) + tf.reduce_mean(out["recon_depth"])
    results.append((out, tape.gradient(loss, list(scene))))
  (out_a, grads_a), (out_b, grads_b) = results
  for key in ("recon_depth", "recon_image", "mask", "canon_image"):
    np.testing.assert_allclose(out_a[key].numpy(), out_b[key].numpy(), rtol=1e-5, atol=1e-5)
  for g_a, g_b in zip(grads_a, grads_b):
    np.testing.assert_allclose(g_a.numpy(), g_b.numpy(), rtol=1e-3, atol=1e-5)


def test_jit_compile_is_skipped_for_the_kernel_backend_and_by_inline_and_portable_copies():
  assert not renderer_lib.Renderer(16, backend="tfg", jit_compile=True).compiled  # a custom op: no XLA
  r = renderer_lib.Renderer(16, backend="tfg", jit_compile=True, fov=12.0)
  inline, portable = r.inline(), r.portable()
  assert not inline.compiled and not inline.compile_rasterizer and inline.backend == "tfg"
  assert not portable.compiled and not portable.compile_rasterizer and portable.backend == "tf"
  for copy in (inline, portable):
    assert (copy.fov, copy.ranges, copy.image_size) == (r.fov, r.ranges, r.image_size)
  portable.render(*_scene(16, batch=1), tf.zeros([1, 6]))
  assert r.jit_compile and r.backend == "tfg"  # the original is unchanged


def test_portable_renderer_traces_standard_ops_only():
  r = renderer_lib.Renderer(16, backend="tfg", jit_compile=True).portable()
  scene = [tf.constant(x) for x in _scene(16, batch=1)] + [tf.zeros([1, 6])]
  graph = tf.function(r.render).get_concrete_function(*scene).graph
  op_types = {op.type for op in graph.get_operations()}
  assert "RasterizeTriangles" not in op_types and all(hasattr(tf.raw_ops, t) for t in op_types)
  compiled = [op.name for op in graph.get_operations() if op.node_def.attr["_XlaMustCompile"].b]
  assert not compiled, compiled


@pytest.mark.parametrize("jit_compile", [False, True])
def test_relight_equals_render_with_the_new_light(jit_compile):
  r = renderer_lib.Renderer(16, backend="tf", jit_compile=jit_compile)
  depth, albedo, light = (tf.constant(x) for x in _scene(16, batch=2, seed=2))
  view = tf.constant([[0.1, -0.2, 0.05, 0.01, 0, 0]] * 2)
  new_light = light + tf.constant([[0.2, -0.1, 0.3, 0.2]])
  recon_depth = r.render(depth, albedo, light, view)["recon_depth"]
  np.testing.assert_allclose(
    r.relight(depth, albedo, new_light, view, recon_depth),
    r.render(depth, albedo, new_light, view)["recon_image"],
    atol=1e-5,
  )


def test_view_mesh_is_the_canonical_grid_moved_into_the_view():
  """Identity view: the canonical depth's points, z = depth; a translation moves every vertex by it."""
  r = renderer_lib.Renderer(image_size=16)
  depth, _, _ = _scene(16)
  points = r.view_mesh(depth, tf.zeros([2, 6])).numpy()
  assert points.shape == (2, 16 * 16, 3)
  np.testing.assert_allclose(points[..., 2], depth.reshape(2, -1), rtol=1e-6)
  shift = np.array([[0, 0, 0, 0.01, -0.02, 0.03]] * 2, np.float32)
  moved = r.view_mesh(depth, shift).numpy()
  np.testing.assert_allclose(moved - points, np.broadcast_to(shift[:, None, 3:], points.shape), atol=1e-6)
