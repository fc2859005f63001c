"""Camera and scene geometry for the Unsup3D renderer: pure, batched, differentiable float32 TensorFlow ops.

Conventions (docs/model.md): the camera sits at the origin looking down +z, with x to the right and y down,
so pixel (u, v) = (column, row) and a point (x, y, z) projects to u = fx x / z + cx, v = fy y / z + cy, with pixel
centres at integer coordinates. Intrinsics are the vector (fx, fy, cx, cy) in pixels. Views are [B, 6] vectors
(rx, ry, rz) in radians and (tx, ty, tz) in scene units; lights are [B, 4] vectors (ka, kd, lx, ly) with direction
normalize([lx, ly, 1]).
"""

import math

import numpy as np
import tensorflow as tf

from pdr_tf.data import formats
from pdr_tf.render.tfg import perspective, rotation_matrix_3d

# The model camera (Unsup3D's): the Renderer's defaults, the synthetic worlds' camera and the metrics' intrinsics.
MODEL_FOV_DEGREES = 10.0  # full field of view of the square image
ROTATION_CENTER_DEPTH = 1.0  # views rotate the scene about (0, 0, ROTATION_CENTER_DEPTH)


def _check(tensor, name, rank=None, last_dims=None, dtype=tf.float32):
  """Converts to a tensor and checks rank, trailing dims and dtype statically, with a clear error."""
  if (
    isinstance(tensor, (tf.Tensor, tf.Variable, np.ndarray))
    and tensor.dtype != dtype.as_numpy_dtype
    and tf.as_dtype(tensor.dtype) != dtype
  ):
    raise TypeError(f"{name} must be {dtype.name}, got {tf.as_dtype(tensor.dtype).name}")
  tensor = tf.convert_to_tensor(tensor, dtype=dtype)
  if rank is not None and tensor.shape.rank is not None and tensor.shape.rank != rank:
    raise ValueError(f"{name} must have rank {rank}, got shape {tensor.shape}")
  if last_dims is not None:
    trailing = tensor.shape[-len(last_dims) :]
    for want, got in zip(last_dims, trailing):
      if want is not None and got is not None and want != got:
        raise ValueError(f"{name} must have trailing dimensions {list(last_dims)}, got shape {tensor.shape}")
  return tensor


def check_fov(image_size: int, fov_degrees: float) -> None:
  """Raises ValueError unless a square pinhole camera of this size and field of view exists."""
  if image_size < 2:
    raise ValueError(f"image_size must be at least 2, got {image_size}")
  if not 0.0 < fov_degrees < 180.0:
    raise ValueError(f"fov_degrees must be in (0, 180), got {fov_degrees}")


def intrinsics_from_fov(image_size: int, fov_degrees: float = MODEL_FOV_DEGREES) -> tf.Tensor:
  """Pinhole intrinsics of a square image with the given field of view.

  Args:
    image_size: image side S in pixels.
    fov_degrees: full field of view in degrees.

  Returns:
    [4] float32 (fx, fy, cx, cy) with fx = fy = ((S-1)/2) / tan(fov/2) and cx = cy = (S-1)/2 (pixels).
  """
  check_fov(image_size, fov_degrees)
  centre = (image_size - 1) / 2.0
  focal = centre / math.tan(math.radians(fov_degrees) / 2.0)
  return tf.constant([focal, focal, centre, centre], tf.float32)


def pixel_grid(height: int, width: int) -> tf.Tensor:
  """Returns [H, W, 2] float32 pixel coordinates (u, v) = (column, row)."""
  u, v = tf.meshgrid(tf.range(width, dtype=tf.float32), tf.range(height, dtype=tf.float32))
  return tf.stack([u, v], axis=-1)


def depth_to_points(depth, intrinsics, name="depth_to_points") -> tf.Tensor:
  """Back-projects a depth map to camera-space points.

  Args:
    depth: [B, H, W] depth along +z.
    intrinsics: [4] (fx, fy, cx, cy).

  Returns:
    [B, H, W, 3] points (x, y, z) with z = depth.
  """
  with tf.name_scope(name):
    depth = _check(depth, "depth", rank=3)
    intrinsics = _check(intrinsics, "intrinsics", rank=1, last_dims=(4,))
    shape = tf.shape(depth)
    grid = tf.broadcast_to(pixel_grid(depth.shape[1], depth.shape[2]), tf.concat([shape, [2]], 0))
    focal = tf.broadcast_to(intrinsics[:2], tf.shape(grid))
    principal = tf.broadcast_to(intrinsics[2:], tf.shape(grid))
    return perspective.unproject(grid, depth[..., None], focal, principal)


def project(points, intrinsics, name="project") -> tf.Tensor:
  """Projects camera-space points to pixel coordinates.

  Args:
    points: [..., 3] points with z > 0.
    intrinsics: [4] (fx, fy, cx, cy).

  Returns:
    [..., 2] pixel coordinates (u, v).
  """
  with tf.name_scope(name):
    points = _check(points, "points", last_dims=(3,))
    intrinsics = _check(intrinsics, "intrinsics", rank=1, last_dims=(4,))
    shape = tf.concat([tf.shape(points)[:-1], [2]], 0)
    return perspective.project(points, tf.broadcast_to(intrinsics[:2], shape), tf.broadcast_to(intrinsics[2:], shape))


def grid_faces(height: int, width: int) -> np.ndarray:
  """Triangles of the grid mesh with one vertex per pixel (row-major vertex ids), two per pixel quad.

  Returns:
    [2 (H-1) (W-1), 3] int32 vertex indices; both triangles of a quad wind the same way.
  """
  if height < 2 or width < 2:
    raise ValueError(f"a grid mesh needs at least 2x2 vertices, got {height}x{width}")
  ids = np.arange(height * width, dtype=np.int32).reshape(height, width)
  tl, tr = ids[:-1, :-1].ravel(), ids[:-1, 1:].ravel()
  bl, br = ids[1:, :-1].ravel(), ids[1:, 1:].ravel()
  upper = np.stack([tl, tr, br], axis=-1)
  lower = np.stack([tl, br, bl], axis=-1)
  return np.concatenate([upper, lower], axis=0)


def normals_from_depth(depth, intrinsics, name="normals_from_depth") -> tf.Tensor:
  """Unit surface normals of a depth map by central differences of its 3-D grid (Unsup3D).

  Interior normal = normalize(cross(P[v, u+1] - P[v, u-1], P[v+1, u] - P[v-1, u])), which points away from the
  camera (+z) for a fronto-parallel plane; the one-pixel border is set to (0, 0, 1).

  Args:
    depth: [B, H, W] depth.
    intrinsics: [4] (fx, fy, cx, cy).

  Returns:
    [B, H, W, 3] unit normals.
  """
  with tf.name_scope(name):
    points = depth_to_points(depth, intrinsics)
    tu = points[:, 1:-1, 2:] - points[:, 1:-1, :-2]
    tv = points[:, 2:, 1:-1] - points[:, :-2, 1:-1]
    normal = tf.linalg.cross(tu, tv)
    # Pad with zeros and put (0, 0, 1) on the border by adding z = 1 there.
    normal = tf.pad(normal, [[0, 0], [1, 1], [1, 1], [0, 0]])
    interior = tf.pad(tf.ones_like(tu[..., :1]), [[0, 0], [1, 1], [1, 1], [0, 0]])
    normal += (1.0 - interior) * tf.constant([0.0, 0.0, 1.0])
    # The cross product is tiny (~(2 d / fx)^2 = 3e-5 at S=64): a small epsilon under the root, not an additive one.
    return tf.math.l2_normalize(normal, axis=-1, epsilon=1e-24)


def light_direction(light, name="light_direction") -> tf.Tensor:
  """Returns [B, 3] unit light directions normalize([lx, ly, 1]) from [B, 4] lights (ka, kd, lx, ly)."""
  with tf.name_scope(name):
    light = _check(light, "light", rank=2, last_dims=(4,))
    d = tf.concat([light[:, 2:4], tf.ones_like(light[:, :1])], axis=-1)
    return d / tf.norm(d, axis=-1, keepdims=True)


def lambertian_shading(normals, light, name="lambertian_shading") -> tf.Tensor:
  """Ambient plus Lambertian diffuse shading, ka + kd * max(0, n . l).

  Args:
    normals: [B, H, W, 3] unit normals.
    light: [B, 4] (ka, kd, lx, ly).

  Returns:
    [B, H, W, 1] shading.
  """
  with tf.name_scope(name):
    normals = _check(normals, "normals", rank=4, last_dims=(3,))
    light = _check(light, "light", rank=2, last_dims=(4,))
    direction = light_direction(light)[:, None, None, :]
    diffuse = tf.nn.relu(tf.reduce_sum(normals * direction, axis=-1, keepdims=True))
    return light[:, None, None, 0:1] + light[:, None, None, 1:2] * diffuse


def shade_albedo(albedo, shading, name="shade_albedo") -> tf.Tensor:
  """Canonical image from albedo and shading: ((albedo + 1) / 2 * shading) * 2 - 1.

  Args:
    albedo: [B, H, W, 3] in [-1, 1].
    shading: [B, H, W, 1].

  Returns:
    [B, H, W, 3] image in the [-1, 1] convention (may exceed it when shading > 1).
  """
  with tf.name_scope(name):
    albedo = _check(albedo, "albedo", rank=4, last_dims=(3,))
    return formats.unit_to_model(formats.model_to_unit(albedo) * shading)


def rotation_matrix(angles, name="rotation_matrix") -> tf.Tensor:
  """R = Rz(rz) Ry(ry) Rx(rx) for [B, 3] angles (rx, ry, rz) in radians; returns [B, 3, 3]."""
  with tf.name_scope(name):
    angles = _check(angles, "angles", last_dims=(3,))
    return rotation_matrix_3d.from_euler(angles)


def _view_parts(view):
  view = _check(view, "view", rank=2, last_dims=(6,))
  return rotation_matrix(view[:, :3]), view[:, None, 3:6]


def transform_points(points, view, rotation_center, name="transform_points") -> tf.Tensor:
  """Applies the Unsup3D view: P' = R (P - c) + c + t.

  Args:
    points: [B, N, 3] camera-space points.
    view: [B, 6] (rx, ry, rz, tx, ty, tz).
    rotation_center: [3] rotation centre c, e.g. (0, 0, 1).

  Returns:
    [B, N, 3] transformed points.
  """
  with tf.name_scope(name):
    points = _check(points, "points", rank=3, last_dims=(3,))
    rot, trans = _view_parts(view)
    c = tf.convert_to_tensor(rotation_center, tf.float32)
    return tf.linalg.matmul(points - c, rot, transpose_b=True) + c + trans


def inverse_transform_points(points, view, rotation_center, name="inverse_transform_points") -> tf.Tensor:
  """Exact inverse of `transform_points`: P = R^T (P' - t - c) + c. Shapes as there."""
  with tf.name_scope(name):
    points = _check(points, "points", rank=3, last_dims=(3,))
    rot, trans = _view_parts(view)
    c = tf.convert_to_tensor(rotation_center, tf.float32)
    return tf.linalg.matmul(points - trans - c, rot) + c


def flip_horizontal(image, name="flip_horizontal") -> tf.Tensor:
  """Mirrors [B, H, W] or [B, H, W, C] maps left to right."""
  with tf.name_scope(name):
    image = tf.convert_to_tensor(image)
    if image.shape.rank not in (3, 4):
      raise ValueError(f"flip_horizontal expects [B, H, W] or [B, H, W, C], got shape {image.shape}")
    return tf.reverse(image, axis=[2])


def bilinear_sample(image, coords, name="bilinear_sample") -> tf.Tensor:
  """Samples an image bilinearly at pixel coordinates, with zeros outside (grid_sample, align_corners=True).

  Args:
    image: [B, H, W, C] image.
    coords: [B, Ho, Wo, 2] pixel coordinates (u, v) = (column, row); pixel centres are integers.

  Returns:
    [B, Ho, Wo, C] samples; differentiable w.r.t. image and coords.
  """
  with tf.name_scope(name):
    image = _check(image, "image", rank=4)
    coords = _check(coords, "coords", rank=4, last_dims=(2,))
    height, width = tf.shape(image)[1], tf.shape(image)[2]
    u, v = coords[..., 0], coords[..., 1]
    u0, v0 = tf.floor(u), tf.floor(v)
    du, dv = (u - u0)[..., None], (v - v0)[..., None]
    u0, v0 = tf.cast(u0, tf.int32), tf.cast(v0, tf.int32)
    batch = tf.broadcast_to(tf.range(tf.shape(image)[0])[:, None, None], tf.shape(u0))

    def tap(vv, uu):
      inside = (uu >= 0) & (uu < width) & (vv >= 0) & (vv < height)
      idx = tf.stack([batch, tf.clip_by_value(vv, 0, height - 1), tf.clip_by_value(uu, 0, width - 1)], axis=-1)
      return tf.gather_nd(image, idx) * tf.cast(inside, image.dtype)[..., None]

    return (
      (1 - du) * (1 - dv) * tap(v0, u0)
      + du * (1 - dv) * tap(v0, u0 + 1)
      + (1 - du) * dv * tap(v0 + 1, u0)
      + du * dv * tap(v0 + 1, u0 + 1)
    )
