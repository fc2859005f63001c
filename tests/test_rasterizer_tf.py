"""Tests for pdr_tf.render.rasterizer_tf (the pure-TensorFlow "tf" backend): agreement with the TF-Graphics kernel
("tfg") on grid meshes and triangle soups, edge ties, XLA, gradients through the renderer, and the "auto" choice."""

import json

import numpy as np
import pytest
import tensorflow as tf

from pdr_tf.render import geometry
from pdr_tf.render import kernel_build
from pdr_tf.render import rasterizer
from pdr_tf.render import rasterizer_tf
from pdr_tf.render import renderer
from pdr_tf.benchmarks import rasterizer as bench

SIZE = 16
K = geometry.intrinsics_from_fov(SIZE)


def _ids(backend, clip, faces, height, width):
  return rasterizer.get_backend(backend).triangle_ids(tf.constant(clip), tf.constant(faces), height, width).numpy()


def _grid(size=SIZE, batch=2, max_angle=60.0, seed=0):
  """Clip-space grid meshes of smooth depth maps seen from random views (the training renderer's hot path)."""
  clip, faces = bench.scene_clip(bench.grid_scene(batch, size, max_angle, seed), size)
  return clip.numpy(), faces.numpy()


def _soup(rng, batch=2, triangles=40, height=12, width=20, behind=False):
  """Overlapping random triangles in clip space (w = camera z); with `behind`, some corners lie behind the near
  plane or the camera (triangles crossing the near plane, which the kernel bounds by near-plane intersections)."""
  near, far = rasterizer.DEFAULT_NEAR, rasterizer.DEFAULT_FAR
  xy = rng.uniform(-1.3, 1.3, (batch, triangles * 3, 2))
  z = rng.uniform(-0.5, 2.0, (batch, triangles * 3, 1)) if behind else rng.uniform(0.5, 3.0, (batch, triangles * 3, 1))
  z_clip = (far + near) / (far - near) * z - 2 * far * near / (far - near)
  clip = np.concatenate([xy * np.abs(z), z_clip, z], axis=-1).astype(np.float32)
  return clip, np.arange(triangles * 3, dtype=np.int32).reshape(triangles, 3), height, width


def _assert_agree(clip, faces, height, width, min_fraction=0.999, **kwargs):
  want = _ids("tfg", clip, faces, height, width)
  got = rasterizer_tf.triangle_ids(clip, faces, height, width, **kwargs).numpy()
  assert got.shape == want.shape and got.dtype == np.int32
  assert np.mean(got == want) >= min_fraction, f"{np.sum(got != want)} of {got.size} ids differ"
  return want, got


def test_grid_meshes_64_agree_with_kernel_ids_and_depth():
  clip, faces = _grid(size=64, batch=2)
  want, got = _assert_agree(clip, faces, 64, 64)
  assert np.array_equal(got, want)  # bit-exact emulation: not even tie pixels differ here
  assert 0.3 < np.mean(want >= 0) < 1.0  # the views move parts of the mesh off its pixels
  scene = bench.grid_scene(2, 64, 60.0, 0)
  r_tf, r_tfg = renderer.Renderer(64, backend="tf"), renderer.Renderer(64, backend="tfg")
  np.testing.assert_array_equal(
    r_tf.warp_depth(scene["depth"], scene["view"]).numpy(), r_tfg.warp_depth(scene["depth"], scene["view"]).numpy()
  )


def test_random_soups_agree_with_kernel(rng):
  for behind in (False, True):
    clip, faces, height, width = _soup(rng, behind=behind)
    want, got = _assert_agree(clip, faces, height, width)
    assert np.array_equal(got, want)
    assert np.mean(want >= 0) > 0.3 and len(np.unique(want)) > 10  # overlapping, occluding triangles
  # Every triangle twice (equal depths: the lower id wins) and degenerate ones (a repeated corner: never drawn).
  clip, faces, height, width = _soup(rng)
  tricky = np.concatenate([faces[::-1], faces, faces[:, [0, 0, 1]]])
  want, got = _assert_agree(clip, tricky, height, width)
  assert np.array_equal(got, want) and want.max() < len(faces)
  # Triangles behind the camera, beyond the far plane or off screen draw nothing.
  clip, faces, height, width = _soup(rng)
  hidden = clip.copy()
  hidden[..., 3] *= -1.0
  assert np.all(rasterizer_tf.triangle_ids(hidden, faces, height, width).numpy() == -1)
  far = clip.copy()
  far[..., 2] = far[..., 3] * 1.5
  assert np.all(rasterizer_tf.triangle_ids(far, faces, height, width).numpy() == -1)
  assert np.all(rasterizer_tf.triangle_ids(clip[:, :0], faces[:0], height, width).numpy() == -1)


def test_chunk_size_does_not_change_ids(rng):
  clip, faces, height, width = _soup(rng)
  want = rasterizer_tf.triangle_ids(clip, faces, height, width).numpy()
  # Chunks of 7 candidates from at most one triangle each: many iterations, triangles split across them.
  np.testing.assert_array_equal(rasterizer_tf.triangle_ids(clip, faces, height, width, chunk=7), want)


def test_identity_view_ties_resolve_as_in_kernel(rng):
  """Unrotated grid: every pixel centre is a mesh vertex, on the edges of up to six triangles with (nearly) equal
  depth, so the kernel's tie rules decide every id."""
  depth = tf.constant(rng.uniform(0.95, 1.05, (2, SIZE, SIZE)), tf.float32)
  points = tf.reshape(geometry.depth_to_points(depth, K), [2, -1, 3])
  clip = rasterizer.clip_space(points, K, (SIZE, SIZE)).numpy()
  want, got = _assert_agree(clip, geometry.grid_faces(SIZE, SIZE), SIZE, SIZE)
  assert np.array_equal(got, want)


def test_pixel_centre_on_shared_edge_goes_to_lower_id_on_equal_depth():
  """Documented tie rule. A fronto-parallel square split along its diagonal, corners on pixel centres: centres
  exactly on the diagonal lie on an edge of *both* triangles (an edge value of 0 counts as inside), both give
  the same depth there, and the kernel keeps the first triangle drawn, i.e. the lower id. Listing the triangles
  the other way round hands the diagonal to the other one, so both cover it."""
  fx, _, cx, _ = K.numpy()
  corners = np.array([[3.0, 3.0], [11.0, 3.0], [11.0, 11.0], [3.0, 11.0]])  # (u, v), pixel centres
  vertices = np.concatenate([(corners - cx) / fx, np.ones((4, 1))], axis=1)[None].astype(np.float32)
  clip = rasterizer.clip_space(vertices, K, (SIZE, SIZE)).numpy()
  for faces in (np.array([[0, 1, 2], [0, 2, 3]], np.int32), np.array([[0, 2, 3], [0, 1, 2]], np.int32)):
    want, got = _assert_agree(clip, faces, SIZE, SIZE)
    assert np.array_equal(got, want)
    diagonal = np.array([got[0, i, i] for i in range(4, 11)])
    assert np.all(diagonal == 0)  # triangle 0 wins every tie on the shared edge
    assert got[0, 4, 8] == (0 if faces[0, 1] == 1 else 1) and got[0, 8, 4] == (1 if faces[0, 1] == 1 else 0)


def test_backend_under_jit_compile_and_without_xla(rng):
  clip, faces, height, width = _soup(rng)
  want = _ids("tfg", clip, faces, height, width)
  inner = tf.function(
    lambda c: rasterizer_tf.triangle_ids(c, faces, height, width, jit_compile=False), jit_compile=True
  )
  np.testing.assert_array_equal(inner(tf.constant(clip)).numpy(), want)
  np.testing.assert_array_equal(rasterizer_tf.triangle_ids(clip, faces, height, width, jit_compile=False).numpy(), want)
  # The whole rasterize() with the "tf" backend compiles with XLA and gives the kernel's fragments.
  vertices = tf.constant(rng.uniform([-0.05, -0.05, 0.9], [0.05, 0.05, 1.1], (2, 30, 3)), tf.float32)
  tri = np.arange(30, dtype=np.int32).reshape(10, 3)

  def fragments(v):
    f = rasterizer.rasterize(v, tri, K, (SIZE, SIZE), backend="tf")
    return f.triangle_id, f.depth

  (ids, depth), ref = (
    tf.function(fragments, jit_compile=True)(vertices),
    rasterizer.rasterize(vertices, tri, K, (SIZE, SIZE), backend="tfg"),
  )
  np.testing.assert_array_equal(ids.numpy(), ref.triangle_id.numpy())
  np.testing.assert_allclose(depth.numpy(), ref.depth.numpy(), rtol=1e-6)


def test_triangle_ids_are_traced_once_per_shape_and_called_from_every_graph(rng):
  """Each graph that rasterizes calls one traced function instead of tracing the loop again (about a second of
  Python per call site); under a gradient tape the depth keeps its gradient (the ids go in as data). Shown without
  XLA (the debug preset's and the exports' path); the compiled ids go through the same function cache."""
  clip, faces, height, width = _soup(rng)
  vertices = tf.Variable(rng.uniform([-0.05, -0.05, 0.9], [0.05, 0.05, 1.1], (2, 30, 3)).astype(np.float32))
  tri = np.arange(30, dtype=np.int32).reshape(10, 3)
  rasterizer_tf._function.cache_clear()
  try:
    graphs = [
      tf.function(lambda c: rasterizer_tf.triangle_ids(c, faces, height, width, jit_compile=False) + 0)
      for _ in range(3)
    ]
    want = _ids("tfg", clip, faces, height, width)
    for traced in graphs:
      np.testing.assert_array_equal(traced(tf.constant(clip)).numpy(), want)
    function = rasterizer_tf._function(height, width, rasterizer_tf.DEFAULT_CHUNK, False)
    assert function.experimental_get_tracing_count() == 1

    with tf.GradientTape() as tape:
      depth = rasterizer.rasterize(vertices, tri, K, (SIZE, SIZE), backend="tf", jit_compile=False).depth
      loss = tf.reduce_sum(tf.where(depth < rasterizer.DEFAULT_FAR, depth, 0.0))
    assert float(tf.reduce_sum(tf.abs(tape.gradient(loss, vertices)))) > 0  # the depth's own path
  finally:
    rasterizer_tf._function.cache_clear()


def test_renderer_outputs_and_gradients_match_kernel_backend():
  scene = {k: tf.constant(v) for k, v in bench.grid_scene(2, SIZE, 30.0, seed=3).items()}
  target = tf.constant(np.random.RandomState(4).uniform(-1, 1, (2, SIZE, SIZE, 3)), tf.float32)
  results = {}
  for backend in ("tf", "tfg"):
    r = renderer.Renderer(SIZE, backend=backend)
    with tf.GradientTape() as tape:
      tape.watch(list(scene.values()))
      out = r.render(scene["depth"], scene["albedo"], scene["light"], scene["view"])
      loss = tf.reduce_mean(tf.abs(out["recon_image"] - target) * out["mask"][..., None]) + tf.reduce_mean(
        out["recon_depth"]
      )
    results[backend] = (out, tape.gradient(loss, list(scene.values())))
  (out_tf, grads_tf), (out_tfg, grads_tfg) = results["tf"], results["tfg"]
  for name in ("recon_depth", "recon_image", "mask"):
    np.testing.assert_allclose(out_tf[name].numpy(), out_tfg[name].numpy(), rtol=1e-6, atol=1e-6)
  for g_tf, g_tfg in zip(grads_tf, grads_tfg):
    assert np.abs(g_tfg.numpy()).max() > 0
    np.testing.assert_allclose(g_tf.numpy(), g_tfg.numpy(), rtol=1e-5, atol=1e-7)
  # The whole step compiled with XLA (only the "tf" backend can be): same gradients up to float reassociation.
  r = renderer.Renderer(SIZE, backend="tf")

  @tf.function(jit_compile=True)
  def step(depth, albedo, light, view):
    with tf.GradientTape() as tape:
      tape.watch([depth, albedo, light, view])
      out = r.render(depth, albedo, light, view)
      loss = tf.reduce_mean(tf.abs(out["recon_image"] - target) * out["mask"][..., None]) + tf.reduce_mean(
        out["recon_depth"]
      )
    return tape.gradient(loss, [depth, albedo, light, view])

  for g_xla, g_tfg in zip(step(*scene.values()), grads_tfg):
    np.testing.assert_allclose(g_xla.numpy(), g_tfg.numpy(), rtol=1e-3, atol=1e-5)


def test_auto_backend_is_pure_tf_everywhere(monkeypatch):
  """ "auto" never needs the C++ kernel: the same choice with or without a GPU, with or without a compiler."""
  assert rasterizer.resolve_backend("auto") == "tf"
  real = tf.config.list_logical_devices
  monkeypatch.setattr(tf.config, "list_logical_devices", lambda kind=None: ["/GPU:0"] if kind == "GPU" else real(kind))
  assert rasterizer.resolve_backend("auto") == "tf"
  monkeypatch.setattr(kernel_build, "load_kernel", lambda: pytest.fail("auto must not build the kernel"))
  assert rasterizer.resolve_backend("tfg") == "tfg" and "tf" in rasterizer.backends()
  vertices = tf.constant([[[0.0, 0.0, 1.0], [0.02, 0.0, 1.0], [0.0, 0.02, 1.0]]])
  fragments = rasterizer.rasterize(vertices, np.array([[0, 1, 2]], np.int32), K, (SIZE, SIZE), backend="auto")
  assert fragments.mask.numpy().sum() > 0


def test_backend_records():
  tf_backend, tfg_backend = rasterizer.get_backend("tf"), rasterizer.get_backend("tfg")
  assert tf_backend.xla and not tfg_backend.xla and tf_backend.triangle_ids is rasterizer_tf.triangle_ids
  assert rasterizer.supports_xla("tf") and not rasterizer.supports_xla("tfg")
  with pytest.raises(ValueError, match="Unknown rasterizer backend 'nope'"):
    rasterizer.get_backend("nope")
  renderer_auto = renderer.Renderer(8, backend="auto")
  assert renderer_auto.rasterizer_backend.name == rasterizer.resolve_backend("auto")


def test_bad_arguments():
  clip, faces = np.zeros((1, 3, 4), np.float32), np.array([[0, 1, 2]], np.int32)
  with pytest.raises(ValueError, match="chunk"):
    rasterizer_tf.triangle_ids(clip, faces, 4, 4, chunk=0)
  with pytest.raises(ValueError, match="height and width"):
    rasterizer_tf.triangle_ids(clip, faces, 0, 4)
  with pytest.raises(ValueError, match=r"\[B, V, 4\]"):
    rasterizer_tf.triangle_ids(clip[..., :3], faces, 4, 4)
  with pytest.raises(ValueError, match=r"\[F, 3\]"):
    rasterizer_tf.triangle_ids(clip, faces[:, :2], 4, 4)


def test_pixel_centres_match_kernel_formula():
  # Pixel i's centre is at NDC (2 i + 1) / W - 1, truncated to 16.16 fixed point.
  np.testing.assert_array_equal(rasterizer_tf.pixel_centres_fixed(4), [-49152, -16384, 16384, 49152])


def test_benchmark_entry_point_writes_json(tmp_path):
  scene = bench.grid_scene(batch=3, size=8, max_angle=10.0, seed=1)
  assert scene["depth"].shape == (3, 8, 8) and scene["depth"].min() >= 0.9 and scene["depth"].max() <= 1.1
  assert np.all(scene["depth"][:, :, :2] == 1.04) and np.abs(np.degrees(scene["view"][:, :3])).max() <= 10.0
  names = [c[0] for c in bench.configurations()]
  assert "tf xla forward_backward" in names and "tfg forward" in names and "tfg xla ids" not in names
  out = tmp_path / "bench.json"
  assert bench.main(["--batch", "2", "--size", "8", "--repeats", "1", "--backends", "tfg", "--json", str(out)]) == 0
  report = json.loads(out.read_text())
  assert [r["name"] for r in report["results"]] == ["tfg ids", "tfg forward", "tfg forward_backward"]
  assert all(r["median_ms"] > 0 for r in report["results"]) and report["auto_backend"] in ("tf", "tfg")


def _edge_on(batch=2, size=64, seed=1):
  clip, faces = bench.scene_clip(bench.edge_on_scene(batch, size, seed), size)
  return clip.numpy(), faces.numpy()


def test_edge_on_scenes_agree_with_kernel_and_test_spans_not_boxes():
  clip, faces = _edge_on()
  want, got = _assert_agree(clip, faces, 64, 64)
  assert np.array_equal(got, want)
  box, span = rasterizer_tf.candidate_counts(clip, faces, 64, 64)
  assert span < 0.3 * box, (box, span)  # measured: 793,243 against 103,163 per image
  smooth_box, smooth_span = rasterizer_tf.candidate_counts(*_grid(size=64), 64, 64)
  assert smooth_span <= smooth_box


def test_slivers_of_every_orientation_agree_with_kernel(rng):
  """Long thin triangles (two corners close together, one far) at every angle and thinness, down to those below the
  span threshold (smallest angle's sine < 1e-3), which keep their whole box."""
  near, far = rasterizer.DEFAULT_NEAR, rasterizer.DEFAULT_FAR
  triangles, height, width = 300, 24, 32
  base = rng.uniform(-1.0, 1.0, (triangles, 2))
  angle = rng.uniform(0, 2 * np.pi, triangles)
  length = rng.uniform(0.3, 2.5, triangles)
  thickness = 10.0 ** rng.uniform(-5, -1, triangles)
  direction = np.stack([np.cos(angle), np.sin(angle)], -1)
  normal = np.stack([-np.sin(angle), np.cos(angle)], -1)
  xy = np.stack([base, base + thickness[:, None] * normal, base + length[:, None] * direction], 1).reshape(1, -1, 2)
  z = rng.uniform(0.5, 3.0, (1, triangles * 3, 1))
  z_clip = (far + near) / (far - near) * z - 2 * far * near / (far - near)
  clip = np.concatenate([xy * z, z_clip, z], axis=-1).astype(np.float32)
  faces = np.arange(triangles * 3, dtype=np.int32).reshape(triangles, 3)
  want, got = _assert_agree(clip, faces, height, width)
  assert np.array_equal(got, want) and len(np.unique(want)) > 50


@pytest.mark.parametrize("threshold", [0, 10**9])
def test_dense_and_sparse_windows_give_the_same_ids(rng, monkeypatch, threshold):
  """The loop's window is picked per scene (`is_sparse`); either window on any scene gives the kernel's ids. The
  edge-on scene is sparse and the grid mesh dense, so the other tests run both windows on their own scenes too."""
  edge_on, grid = _edge_on(), _grid(size=64)
  assert rasterizer_tf.is_sparse(*edge_on, 64, 64) and not rasterizer_tf.is_sparse(*grid, 64, 64)
  monkeypatch.setattr(rasterizer_tf, "_SPARSE_CANDIDATES_PER_INSTANCE", threshold)  # 0: always sparse; else dense
  rasterizer_tf._function.cache_clear()
  try:
    for clip, faces in (edge_on, grid):
      want, got = _assert_agree(clip, faces, 64, 64)
      np.testing.assert_array_equal(got, want)
    clip, faces, height, width = _soup(rng)
    want, got = _assert_agree(clip, faces, height, width)
    np.testing.assert_array_equal(got, want)
  finally:
    rasterizer_tf._function.cache_clear()  # later tests compile with the shipped threshold
