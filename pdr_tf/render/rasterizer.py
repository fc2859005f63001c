"""Triangle rasterization behind one function with a backend seam, plus differentiable attribute interpolation.

A backend only decides *which* triangle covers each pixel centre (nearest along +z). Everything differentiable is
computed here, the same for every backend: perspective-correct barycentrics are recomputed from the covering
triangle's clip-space vertices with TF-Graphics' `barycentrics` module, so any interpolated attribute carries
gradients to the vertex positions; depth is the covering triangle's plane met by the pixel-centre ray (the same
value, computed more cheaply).

This module owns the seam: a small record per backend (`Backend`: name, triangle-id function, whether it is made of
standard ops that XLA compiles and TF Serving runs, whether it is available here) and the "auto" choice. Backends
do not know each other or this module.

Backends:
  "tfg"  TF-Graphics' C++ CPU kernel, compiled at first use from the installed wheel's sources (`kernel_build`).
  "tf"   pure TensorFlow (`rasterizer_tf`), the same triangle ids, XLA-compilable, runs on CPU, GPU and TPU.
"""

import dataclasses
from typing import Callable, Dict

import tensorflow as tf

from pdr_tf.render import geometry
from pdr_tf.render import kernel_build
from pdr_tf.render import rasterizer_tf
from pdr_tf.render.tfg import barycentrics as tfg_barycentrics

DEFAULT_NEAR = 0.1
DEFAULT_FAR = 100.0


@dataclasses.dataclass
class Fragments:
  """Per-pixel rasterization results for a batch of images.

  Attributes:
    triangle_id: [B, H, W] int32 id of the nearest covering triangle, -1 where no triangle covers the pixel centre.
    barycentrics: [B, H, W, 3] float32 perspective-correct barycentrics (zeros on background); differentiable.
    mask: [B, H, W] float32, 1 where covered.
    depth: [B, H, W] float32 camera-space z of the surface, `background_depth` where not covered; differentiable.
  """

  triangle_id: tf.Tensor
  barycentrics: tf.Tensor
  mask: tf.Tensor
  depth: tf.Tensor


def clip_space(vertices, intrinsics, image_size, near=DEFAULT_NEAR, far=DEFAULT_FAR, name="clip_space"):
  """Camera-space points to the clip space of the rasterization kernels, with pixel centres matching `project`.

  The kernels put pixel i's centre at NDC (2 i + 1) / W - 1 and do not flip y; with u = fx x / z + cx this gives
  x_clip = (2 fx x + (2 cx + 1 - W) z) / W, likewise for y, w = z and a standard near/far depth mapping.

  Args:
    vertices: [B, V, 3] camera-space points.
    intrinsics: [4] (fx, fy, cx, cy) in pixels.
    image_size: (height, width) in pixels.
    near, far: clipping distances along +z.

  Returns:
    [B, V, 4] clip-space vertices (x, y, z, w).
  """
  with tf.name_scope(name):
    vertices = geometry._check(vertices, "vertices", rank=3, last_dims=(3,))  # pylint: disable=protected-access
    fx, fy, cx, cy = tf.unstack(tf.convert_to_tensor(intrinsics, tf.float32))
    height, width = image_size
    x, y, z = tf.unstack(vertices, axis=-1)
    x_clip = (2.0 * fx * x + (2.0 * cx + 1.0 - width) * z) / width
    y_clip = (2.0 * fy * y + (2.0 * cy + 1.0 - height) * z) / height
    z_clip = (far + near) / (far - near) * z - 2.0 * far * near / (far - near)
    return tf.stack([x_clip, y_clip, z_clip, z], axis=-1)


def _tfg_triangle_ids(clip, faces, height, width, jit_compile=True):
  """TF-Graphics kernel backend: [B, H, W] int32 triangle ids, -1 on background (a custom op: never compiled)."""
  del jit_compile
  ops = kernel_build.load_kernel()

  def one(clip_b):
    _, ids, z_buffer = ops.rasterize_triangles(
      clip_b, faces, image_width=width, image_height=height, num_layers=1, face_culling_mode=0
    )
    return tf.where(tf.equal(z_buffer[0], 1.0), -tf.ones_like(ids[0]), ids[0])

  return tf.map_fn(one, tf.stop_gradient(clip), fn_output_signature=tf.TensorSpec([height, width], tf.int32))


@dataclasses.dataclass(frozen=True)
class Backend:
  """A rasterizer backend: which triangle covers each pixel centre.

  Attributes:
    name: the `Renderer.backend` value that selects it.
    triangle_ids: fn(clip [B, V, 4], faces [F, 3] int32, height, width, jit_compile) -> [B, H, W] int32 ids, -1 on
      background. `jit_compile` asks an XLA-capable backend to compile itself (inside an XLA-compiled caller it is
      inlined either way); False gives plain ops, for servers without an XLA JIT.
    xla: made of standard TensorFlow ops only, so callers may compile it with XLA and stock TF Serving runs it.
    available: whether it can run on this machine (e.g. the kernel needs a C++ compiler at first use).
  """

  name: str
  triangle_ids: Callable
  xla: bool = False
  available: Callable[[], bool] = lambda: True


_BACKENDS: Dict[str, Backend] = {}

# "auto" is the pure-TF backend everywhere: the default install needs no C++ compiler and every platform runs the
# same ops. Measured with `python -m pdr_tf.bench --quick` on the 2-core CI CPU (docs/performance.md): the quick
# preset's training step with `tf` and the rendering path compiled (`Renderer.jit_compile`, which only `tf` allows)
# takes 0.82-1.08x the kernel's on smooth scenes and 1.01-1.10x on the bench's edge-on scenes (two runs), since `tf`
# tests row spans rather than boxes. The kernel, "tfg", stays available by name.
PORTABLE_BACKEND = "tf"  # standard ops only: what exports trace, so stock TF Serving runs them


def register_backend(name: str, triangle_ids_fn: Callable, xla: bool = False, available=None) -> Backend:
  """Adds (or replaces) a backend; see `Backend` for the function's contract. Returns its record."""
  record = Backend(name, triangle_ids_fn, bool(xla), available or (lambda: True))
  _BACKENDS[name] = record
  return record


def backends():
  """Names of the registered backends."""
  return tuple(sorted(_BACKENDS))


def resolve_backend(name: str) -> str:
  """Returns `name`, or for "auto" `PORTABLE_BACKEND` (the pure-TF rasterizer, on every device)."""
  return PORTABLE_BACKEND if name == "auto" else name


def get_backend(name: str) -> Backend:
  """The record of backend `name` ("auto" resolved); ValueError naming the registered ones when unknown."""
  resolved = resolve_backend(name)
  if resolved not in _BACKENDS:
    raise ValueError(f"Unknown rasterizer backend {name!r}; available: {', '.join(backends())} or 'auto'")
  return _BACKENDS[resolved]


def supports_xla(backend: str) -> bool:
  """Whether `backend` (or what "auto" resolves to) compiles under XLA; the "tfg" kernel is a custom op and does not."""
  return get_backend(backend).xla


register_backend("tfg", _tfg_triangle_ids, xla=False, available=lambda: kernel_build.kernel_available())
register_backend(PORTABLE_BACKEND, rasterizer_tf.triangle_ids, xla=True)


def _perspective_barycentrics(clip, faces, triangle_id, height, width):
  """[B, H, W, 3] differentiable barycentrics of each pixel centre in its triangle, zero on background.

  Uses TF-Graphics' 2-D homogeneous scan-conversion matrices (perspective-correct), evaluated only for each
  pixel's own triangle: the per-pixel triangles are laid out as one flat mesh so no per-image loop is needed.
  """
  px, py = tfg_barycentrics.normalized_pixel_coordinates(width, height)
  vertex_ids = tf.gather(faces, tf.maximum(triangle_id, 0))  # [B, H, W, 3]
  corners = tf.gather(clip, vertex_ids, batch_dims=1)  # [B, H, W, 3, 4]
  flat = tf.reshape(corners, [-1, 4])
  pixel_triangles = tf.reshape(tf.range(tf.shape(flat)[0], dtype=tf.int32), [-1, 3])
  matrices = tfg_barycentrics.compute_triangle_matrices(flat, pixel_triangles)  # [3, 3, B*H*W]
  matrices = tf.reshape(matrices, tf.concat([[3, 3], tf.shape(triangle_id)], 0))  # [3, 3, B, H, W]
  bary = matrices[:, 0] * px + matrices[:, 1] * py + matrices[:, 2]  # [3, B, H, W]
  bary = tf.math.divide_no_nan(bary, tf.reduce_sum(bary, axis=0))
  bary = tf.transpose(bary, [1, 2, 3, 0])
  return bary * tf.cast(triangle_id >= 0, tf.float32)[..., None]


def interpolate(attributes, faces, fragments: Fragments, name="interpolate") -> tf.Tensor:
  """Interpolates per-vertex attributes at each pixel with the fragments' barycentrics.

  Args:
    attributes: [B, V, C] per-vertex values.
    faces: [F, 3] int32 vertex ids.
    fragments: rasterization of the same mesh.

  Returns:
    [B, H, W, C] interpolated values, zeros on background.
  """
  with tf.name_scope(name):
    attributes = tf.convert_to_tensor(attributes, tf.float32)
    faces = tf.convert_to_tensor(faces, tf.int32)
    vertex_ids = tf.gather(faces, tf.maximum(fragments.triangle_id, 0))  # [B, H, W, 3]
    values = tf.gather(attributes, vertex_ids, batch_dims=1)  # [B, H, W, 3, C]
    return tf.reduce_sum(values * fragments.barycentrics[..., None], axis=-2)


def rasterize(
  vertices,
  faces,
  intrinsics,
  image_size,
  backend="auto",
  near=DEFAULT_NEAR,
  far=DEFAULT_FAR,
  background_depth=None,
  jit_compile=True,
  name="rasterize",
) -> Fragments:
  """Rasterizes a batch of triangle meshes given in camera space (x right, y down, z forward).

  Args:
    vertices: [B, V, 3] float32 camera-space vertices.
    faces: [F, 3] int32 vertex ids shared by the batch (either winding; no culling).
    intrinsics: [4] (fx, fy, cx, cy) in pixels.
    image_size: (height, width) in pixels.
    backend: one of `backends()`, "auto" (see `resolve_backend`), or a `Backend` record.
    near, far: clipping distances; geometry outside is not drawn.
    background_depth: depth written where no triangle covers a pixel (default `far`).
    jit_compile: let an XLA-capable backend compile its triangle ids (False: plain ops, for exports).

  Returns:
    Fragments; `depth` and `barycentrics` are differentiable w.r.t. `vertices`.
  """
  with tf.name_scope(name):
    record = backend if isinstance(backend, Backend) else get_backend(backend)
    height, width = (int(s) for s in image_size)
    if height < 1 or width < 1:
      raise ValueError(f"image_size must be positive, got {image_size}")
    faces = tf.convert_to_tensor(faces)
    if faces.dtype not in (tf.int32, tf.int64):
      raise TypeError(f"faces must be an integer tensor, got {faces.dtype.name}")
    faces = tf.cast(faces, tf.int32)
    if faces.shape.rank != 2 or faces.shape[-1] != 3:
      raise ValueError(f"faces must have shape [F, 3], got {faces.shape}")
    clip = clip_space(vertices, intrinsics, (height, width), near, far)
    triangle_id = record.triangle_ids(clip, faces, height, width, jit_compile=jit_compile)
    bary = _perspective_barycentrics(clip, faces, triangle_id, height, width)
    background = far if background_depth is None else background_depth
    depth = _plane_depth(vertices, faces, triangle_id, intrinsics, background)
    return Fragments(
      triangle_id=triangle_id, barycentrics=bary, mask=tf.cast(triangle_id >= 0, tf.float32), depth=depth
    )


def _plane_depth(vertices, faces, triangle_id, intrinsics, background):
  """[B, H, W] camera-space z where each pixel centre's ray meets its covering triangle's plane; `background` where
  none covers it. Differentiable w.r.t. `vertices`.

  The same value as perspective-correct interpolation of the corners' z (the plane through the corners, seen along
  the ray through the pixel centre (x/z, y/z) = ((u - cx) / fx, (v - cy) / fy)): z = (n . p0) / (n . ray) with
  n = (p1 - p0) x (p2 - p0). One gather of the corners and a cross product instead of the barycentric matrices and a
  second gather, so the depth warp and its gradient cost about half as much.
  """
  height, width = triangle_id.shape[1], triangle_id.shape[2]
  fx, fy, cx, cy = tf.unstack(tf.convert_to_tensor(intrinsics, tf.float32))
  corners = tf.gather(
    tf.convert_to_tensor(vertices, tf.float32), tf.gather(faces, tf.maximum(triangle_id, 0)), batch_dims=1
  )  # [B, H, W, 3, 3]
  p0, p1, p2 = tf.unstack(corners, axis=-2)
  normal = tf.linalg.cross(p1 - p0, p2 - p0)
  ray_x = (tf.range(width, dtype=tf.float32) - cx) / fx
  ray_y = (tf.range(height, dtype=tf.float32) - cy) / fy
  ray = tf.stack(
    [
      tf.broadcast_to(ray_x[None, :], [height, width]),
      tf.broadcast_to(ray_y[:, None], [height, width]),
      tf.ones([height, width]),
    ],
    axis=-1,
  )  # [H, W, 3]
  covered = triangle_id >= 0
  denominator = tf.where(covered, tf.reduce_sum(normal * ray, -1), tf.ones_like(normal[..., 0]))
  z = tf.math.divide_no_nan(tf.reduce_sum(normal * p0, -1), denominator)
  return tf.where(covered, z, tf.cast(background, tf.float32))
