"""Renders a mesh in a batch of views with the project's rasterizer, plus the writers for images and ground truth.

Image formation matches the model's renderer (Unsup3D): image = albedo * (ka + kd * max(0, n . l)), l = normalize([lx,
ly, 1]), with n the surface normal *in the canonical frame*, flipped to point away from the camera (the convention of
`geometry.normals_from_depth`): the object is shaded in its canonical pose and the view then moves the shaded surface,
so a light (ka, kd, lx, ly) means the same to the world and to the model. Views move the object, given in its canonical
frame around c = (0, 0, 1), by P' = R (P - c) + c + t with R = Rz Ry Rx (`geometry.transform_points`).
`rasterizer.rasterize` decides which triangle each pixel centre sees; the surface point is then found exactly by
intersecting the pixel's ray with that triangle. Images are rendered at `supersample` times the raw resolution and area-
downsampled; ground-truth depth is taken at the raw resolution's pixel centres, 0 where no object covers the pixel.
"""

import csv
import dataclasses
import hashlib
import io
import os
import zipfile
from typing import Callable, Sequence, Tuple

import numpy as np
import tensorflow as tf
from PIL import Image

from pdr_tf import graph
from pdr_tf.data import formats
from pdr_tf.render import geometry
from pdr_tf.render import rasterizer
from pdr_tf.render import rotations

MODEL_FOV_DEGREES = geometry.MODEL_FOV_DEGREES  # the worlds are seen through the model's camera
ROTATION_CENTER = np.array([0.0, 0.0, geometry.ROTATION_CENTER_DEPTH])
JPEG_QUALITY = 95
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed zip timestamps keep the sidecars byte-identical across runs

# paint(points [N, 3], normals [N, 3], part [N]) -> albedo [N, 3] in [0, 1], all in the object frame.
PaintFn = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def seeded_random(seed: int, world: str, *keys) -> np.random.RandomState:
  """A RandomState that depends only on (seed, world, keys), so every item is reproducible on its own."""
  text = "/".join(str(k) for k in (seed, world) + keys)
  return np.random.RandomState(int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little"))


@dataclasses.dataclass(frozen=True)
class Camera:
  """Pinhole camera of the raw square images.

  Attributes:
    size: raw image side in pixels.
    intrinsics: (fx, fy, cx, cy) in raw pixels.
    supersample: render at this many times the raw resolution, then average blocks (anti-aliasing).
  """

  size: int
  intrinsics: Tuple[float, float, float, float]
  supersample: int = 2

  @classmethod
  def for_crop(cls, size: int, crop: Sequence[float], supersample: int = 2) -> "Camera":
    """The raw camera whose crop (y0, x0, h, w), resized to the model's IMAGE_SIZE, is the model's camera.

    The model camera has a MODEL_FOV_DEGREES field of view on IMAGE_SIZE pixels; resizing h raw pixels to IMAGE_SIZE
    (half-pixel centres) scales the focal length by h / IMAGE_SIZE and puts the principal point at the crop centre.
    """
    y0, x0, height, width = (float(c) for c in crop)
    if height != width or y0 < 0 or x0 < 0 or y0 + height > size or x0 + width > size:
      raise ValueError(f"crop {crop} must be a square inside the {size}x{size} image")
    model_focal = float(geometry.intrinsics_from_fov(formats.IMAGE_SIZE, MODEL_FOV_DEGREES)[0])
    focal = model_focal * height / formats.IMAGE_SIZE
    return cls(size, (float(focal), float(focal), x0 + width / 2.0 - 0.5, y0 + height / 2.0 - 0.5), supersample)

  @classmethod
  def for_center_crop(cls, size: int, fraction: float, supersample: int = 2) -> "Camera":
    """`for_crop` with the central square of `fraction` of the side (the face datasets' crop)."""
    if not 0.0 < fraction <= 1.0:
      raise ValueError(f"crop fraction must be in (0, 1], got {fraction}")
    margin = size * (1.0 - fraction) / 2.0
    return cls.for_crop(size, (margin, margin, size - 2 * margin, size - 2 * margin), supersample)

  def scaled_intrinsics(self) -> np.ndarray:
    """[4] intrinsics of the supersampled image (pixel centres at integers in both)."""
    s = self.supersample
    fx, fy, cx, cy = self.intrinsics
    return np.array([s * fx, s * fy, s * (cx + 0.5) - 0.5, s * (cy + 0.5) - 0.5], np.float32)


def rotation_matrices(angles: np.ndarray) -> np.ndarray:
  """[B, 3, 3] float64 R = Rz Ry Rx of [B, 3] angles (rx, ry, rz) radians, from `geometry.rotation_matrix`."""
  return geometry.rotation_matrix(np.asarray(angles, np.float32).reshape(-1, 3)).numpy().astype(np.float64)


def euler_from_matrix(rotation: np.ndarray) -> np.ndarray:
  """Inverse of `rotation_matrices`: [..., 3, 3] rotations to [..., 3] angles (rx, ry, rz), ry in [-pi/2, pi/2]."""
  r = np.asarray(rotation, np.float64)
  rx = np.arctan2(r[..., 2, 1], r[..., 2, 2])
  ry = np.arcsin(np.clip(-r[..., 2, 0], -1.0, 1.0))
  rz = np.arctan2(r[..., 1, 0], r[..., 0, 0])
  return np.stack([rx, ry, rz], -1)


def axis_rotation(axis: str, angle: float) -> np.ndarray:
  """[3, 3] right-handed rotation by `angle` radians about the x, y or z axis."""
  index = {"x": 0, "y": 1, "z": 2}[axis]
  angles = np.zeros((1, 3))
  angles[0, index] = angle
  return rotation_matrices(angles)[0]


_RASTER_FUNCTIONS = {}


def _bucket(count: int) -> int:
  """The padded size of `count` vertices or faces: the next power of two, at least 256."""
  return max(256, 1 << (int(count) - 1).bit_length())


def _raster_function(high: int, low: int):
  """A compiled visibility pass for one pair of image sizes (supersampled, raw); traced once for any mesh and batch.

  Only triangle ids are returned: TensorFlow prunes the rasterizer's dense barycentric computation, which costs
  about three times the kernel; `surface_hits` recovers the exact surface points for the covered pixels instead.
  """
  if (high, low) not in _RASTER_FUNCTIONS:

    @graph.function(
      input_signature=[
        tf.TensorSpec([None, 3]),
        tf.TensorSpec([None, 6]),
        tf.TensorSpec([None, 3], tf.int32),
        tf.TensorSpec([4]),
        tf.TensorSpec([4]),
      ]
    )
    def run(canonical, views, faces, intrinsics_high, intrinsics_low):
      batch = tf.shape(views)[0]
      canonical = tf.broadcast_to(canonical[None], tf.concat([[batch], tf.shape(canonical)], 0))
      vertices = geometry.transform_points(canonical, views, ROTATION_CENTER)
      ids_high = rasterizer.rasterize(vertices, faces, intrinsics_high, (high, high)).triangle_id
      ids_low = rasterizer.rasterize(vertices, faces, intrinsics_low, (low, low)).triangle_id
      return vertices, ids_high, ids_low

    _RASTER_FUNCTIONS[(high, low)] = run
  return _RASTER_FUNCTIONS[(high, low)]


def surface_hits(vertices: np.ndarray, faces: np.ndarray, triangle_id: np.ndarray, intrinsics):
  """Exact surface points of the covered pixels: each pixel-centre ray intersected with its covering triangle.

  Args:
    vertices: [B, V, 3] camera-space vertices.
    faces: [F, 3] vertex ids.
    triangle_id: [B, H, W] covering triangle per pixel, -1 on background (from `rasterizer.rasterize`).
    intrinsics: (fx, fy, cx, cy) of that image.

  Returns:
    covered [B, H, W] bool; barycentrics [N, 3] float32 (perspective-correct) and depth [N] (camera z of the hit)
    of the N covered pixels in the order of `np.nonzero(covered)`.
  """
  covered = triangle_id >= 0
  b, row, col = np.nonzero(covered)
  fx, fy, cx, cy = (float(k) for k in intrinsics)
  corners = faces[triangle_id[covered]]  # [N, 3]
  # Per-coordinate float32 arrays (the rasterizer's precision): the cheapest layout for these per-pixel sums.
  coords = [np.asarray(vertices[..., axis], np.float32) for axis in range(3)]
  p0, p1, p2 = ([c[b, corners[:, k]] for c in coords] for k in range(3))
  ray = [((col - cx) / fx).astype(np.float32), ((row - cy) / fy).astype(np.float32), np.ones(len(b), np.float32)]

  def cross(x, y):
    return [x[1] * y[2] - x[2] * y[1], x[2] * y[0] - x[0] * y[2], x[0] * y[1] - x[1] * y[0]]

  def dot(x, y):
    return x[0] * y[0] + x[1] * y[1] + x[2] * y[2]

  # Moller-Trumbore with the ray origin at the camera centre.
  e1, e2, origin = [p1[i] - p0[i] for i in range(3)], [p2[i] - p0[i] for i in range(3)], [-p0[i] for i in range(3)]
  p = cross(ray, e2)
  det = dot(e1, p)
  det = np.where(np.abs(det) > 1e-20, det, np.float32(1e-20))  # edge-on triangles rarely win a pixel; stay finite
  q = cross(origin, e1)
  u, v, depth = dot(origin, p) / det, dot(ray, q) / det, dot(e2, q) / det
  return covered, np.stack([1.0 - u - v, u, v], -1), depth


def downsample(image: np.ndarray, factor: int) -> np.ndarray:
  """Area-averages [..., H*f, W*f, C] to [..., H, W, C]."""
  total = 0.0
  for dy in range(factor):
    for dx in range(factor):
      total = total + image[..., dy::factor, dx::factor, :]
  return total / (factor * factor)


def sample_lights(rng, count, ambient_range, diffuse_range, direction_range) -> np.ndarray:
  """[count, 4] lights (ka, kd, lx, ly): ka, kd uniform in their ranges, lx, ly uniform in +-direction_range (drawn
  in that order: a world's images depend on the order of its random draws)."""
  return np.stack(
    [
      rng.uniform(*ambient_range, count),
      rng.uniform(*diffuse_range, count),
      rng.uniform(-direction_range, direction_range, count),
      rng.uniform(-direction_range, direction_range, count),
    ],
    -1,
  )


def light_directions(lights: np.ndarray) -> np.ndarray:
  """[B, 3] unit light directions normalize([lx, ly, 1]) (canonical frame) of [B, 4] lights (ka, kd, lx, ly)."""
  return rotations.light_direction(np.asarray(lights, np.float64).reshape(-1, 4)[:, 2:4])


def ground_shading(lights: np.ndarray) -> np.ndarray:
  """[B] shading ka + kd max(0, n.l) of a plane facing the canonical camera (a top view's ground) under [B, 4] lights
  (ka, kd, lx, ly; direction normalize([lx, ly, 1]) in the canonical frame), as the model's renderer shades it: the
  cosine is the direction's z component."""
  lights = np.asarray(lights, np.float64).reshape(-1, 4)
  return lights[:, 0] + lights[:, 1] * light_directions(lights)[:, 2]


def lit_background(albedo, lights: np.ndarray) -> np.ndarray:
  """[B, H, W, 3] background of B images: an albedo (a colour, or [1 or B, H, W, 3] images in [0, 1]) lit as a plane
  facing the canonical camera by each image's light (`ground_shading`), clipped to [0, 1].

  In a photograph the light that shades the object shades what stands behind it too; the model forms every pixel,
  background included, as albedo x (ka + kd max(0, n.l)), so a background lit this way is one that a single
  light-independent albedo reproduces (docs/synthetic.md).
  """
  shading = ground_shading(lights)[:, None, None, None]
  albedo = np.asarray(albedo, np.float64)
  albedo = albedo.reshape((1, 1, 1, 3)) if albedo.ndim == 1 else albedo
  return np.clip(albedo * shading, 0.0, 1.0)


def render_views(
  mesh,
  views: np.ndarray,
  lights: np.ndarray,
  paint: PaintFn,
  camera: Camera,
  background,
  to_canonical: np.ndarray = None,
):
  """Renders one mesh in a batch of views and lights.

  Args:
    mesh: a `meshes.Mesh` with normals, in its object frame.
    views: [B, 6] (rx, ry, rz radians, tx, ty, tz): ground-truth views, relative to the canonical frame.
    lights: [B, 4] (ka, kd, lx, ly).
    paint: albedo as a function of object-frame position, normal and part id.
    camera: the raw camera.
    background: RGB in [0, 1], broadcastable to [B, H*s, W*s, 3] (a colour or supersampled images).
    to_canonical: [3, 3] rotation taking the object frame to the canonical frame (object origin -> (0, 0, 1));
      default identity.

  Returns:
    images [B, H, W, 3] float32 in [0, 1] and depth [B, H, W] float32 (0 where no object), H = W = camera.size.
  """
  views = np.asarray(views, np.float64).reshape(-1, 6)
  lights = np.asarray(lights, np.float64).reshape(-1, 4)
  if len(views) != len(lights):
    raise ValueError(f"views and lights must have the same batch size, got {len(views)} and {len(lights)}")
  if mesh.normals is None:
    raise ValueError("mesh has no normals: call meshes.with_normals after the last deformation")
  to_canonical = np.eye(3) if to_canonical is None else np.asarray(to_canonical, np.float64)
  batch, s = len(views), camera.supersample
  high = camera.size * s
  canonical = mesh.vertices @ to_canonical.T + ROTATION_CENTER
  # Meshes differ in size; padded to a few bucket sizes, the rasterizer (XLA-compiled per shape) compiles a few
  # times per world instead of once per mesh. Padding faces repeat vertex 0 (degenerate: never drawn), so every id
  # is a real face's.
  padded_vertices = np.concatenate(
    [canonical, np.repeat(canonical[:1], _bucket(len(canonical)) - len(canonical), axis=0)]
  )
  padded_faces = np.concatenate(
    [mesh.faces, np.zeros((_bucket(len(mesh.faces)) - len(mesh.faces), 3), mesh.faces.dtype)]
  ).astype(np.int32)
  vertices, ids_high, ids_low = (
    t.numpy()
    for t in _raster_function(high, camera.size)(
      padded_vertices.astype(np.float32),
      views.astype(np.float32),
      padded_faces,
      camera.scaled_intrinsics(),
      np.asarray(camera.intrinsics, np.float32),
    )
  )
  vertices = vertices[:, : len(canonical)]
  covered, bary, _ = surface_hits(vertices, mesh.faces, ids_high, camera.scaled_intrinsics())
  triangle_id = ids_high[covered]
  attributes = np.concatenate([mesh.vertices, mesh.normals], -1).astype(np.float32)
  values = np.einsum("nk,nki->ni", bary, attributes[mesh.faces[triangle_id]])
  points, normals = values[:, :3], values[:, 3:]
  normals /= np.maximum(np.linalg.norm(normals, axis=-1, keepdims=True), 1e-12)
  albedo = paint(points, normals, mesh.part[triangle_id])
  # Shading happens in the canonical frame, as in the model (Unsup3D): the canonical normal is the object normal taken
  # to the canonical frame and flipped to point away from the camera (normals_from_depth); the view then moves the
  # shaded surface. n_canon . l = -(C n) . l = -n . (C^T l), so each light is taken into the object frame instead.
  light_in_object = -(light_directions(lights) @ to_canonical).astype(np.float32)
  b_idx = np.nonzero(covered)[0]
  diffuse = np.maximum(np.einsum("ni,ni->n", normals, light_in_object[b_idx]), 0.0)
  shading = lights[b_idx, 0] + lights[b_idx, 1] * diffuse
  image = np.array(np.broadcast_to(background, (batch, high, high, 3)), np.float32)
  image[covered] = np.clip(albedo * shading[:, None], 0.0, 1.0)
  covered_low, _, hit_depth = surface_hits(vertices, mesh.faces, ids_low, camera.intrinsics)
  depth = np.zeros(ids_low.shape, np.float32)
  depth[covered_low] = hit_depth
  return downsample(image, s).astype(np.float32), depth


def to_uint8(image: np.ndarray) -> np.ndarray:
  """[..., 3] float image in [0, 1] -> uint8."""
  return np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)


def save_image(path: str, image: np.ndarray) -> None:
  """Writes a [H, W, 3] float [0, 1] image as PNG or JPEG (quality JPEG_QUALITY), chosen by the extension."""
  pil = Image.fromarray(to_uint8(image), "RGB")
  if path.endswith(".png"):
    pil.save(path, format="PNG")
  elif path.endswith(".jpg"):
    pil.save(path, format="JPEG", quality=JPEG_QUALITY)
  else:
    raise ValueError(f"unsupported image extension in {path!r}: use .png or .jpg")


def ground_truth_path(image_path: str) -> str:
  """The sidecar path of an image: its path without the extension plus formats.GT_SUFFIX."""
  stem, _ = image_path.rsplit(".", 1)
  return stem + formats.GT_SUFFIX


def save_ground_truth(image_path: str, depth: np.ndarray, light: np.ndarray, view: np.ndarray) -> str:
  """Writes the ground truth beside an image as an .npz readable by np.load, byte-identical for equal inputs.

  Args:
    image_path: the image it describes.
    depth: [H, W] depth in the input view, 0 where no object.
    light: [4] (ka, kd, lx, ly).
    view: [6] (rx, ry, rz radians, tx, ty, tz).

  Returns:
    The sidecar path.
  """
  arrays = dict(
    zip(formats.GT_KEYS, (np.asarray(depth, np.float32), np.asarray(light, np.float32), np.asarray(view, np.float32)))
  )
  if arrays["light"].shape != (formats.GT_LIGHT_DIM,) or arrays["view"].shape != (formats.GT_VIEW_DIM,):
    raise ValueError(
      f"light must be [{formats.GT_LIGHT_DIM}] and view [{formats.GT_VIEW_DIM}], "
      f"got {arrays['light'].shape} and {arrays['view'].shape}"
    )
  if arrays["depth"].ndim != 2:
    raise ValueError(f"depth must be [H, W], got {arrays['depth'].shape}")
  path = ground_truth_path(image_path)
  # np.savez stamps the current time into the zip; write the same layout with a fixed date instead.
  with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
    for key, array in arrays.items():
      buffer = io.BytesIO()
      np.lib.format.write_array(buffer, array, allow_pickle=False)
      info = zipfile.ZipInfo(key + ".npy", date_time=_ZIP_DATE)
      info.compress_type = zipfile.ZIP_DEFLATED
      info.external_attr = 0o644 << 16
      archive.writestr(info, buffer.getvalue())
  return path


def gradient_background(
  rng: np.random.RandomState, batch: int, size: int, base_range=(0.3, 0.8), tint: float = 0.12, slope: float = 0.15
) -> np.ndarray:
  """[batch, size, size, 3] mildly varied backgrounds: one random colour per call with a gentle vertical gradient.

  The same background is repeated over the batch (e.g. the frames of one track).
  """
  base = rng.uniform(*base_range) + rng.uniform(-tint, tint, size=3)
  direction = rng.uniform(-slope, slope)
  ramp = np.linspace(-0.5, 0.5, size)[:, None, None] * direction
  image = np.clip(base[None, None] + ramp, 0.0, 1.0)
  return np.broadcast_to(image, (batch, size, size, 3))


LABELS_FILENAME = formats.SYNTHETIC_LABELS_FILENAME
LABELS_COLUMNS = ("image", "split", "label", "object_id")


def write_labels(output_dir: str, rows) -> None:
  """Writes <out>/LABELS_FILENAME (ground_truth.csv): one row per image (path relative to <out>, split, class or
  identity, object id), the label ground truth that the datasets' own formats do not carry (e.g. face identities)."""
  with open(os.path.join(output_dir, LABELS_FILENAME), "w", newline="", encoding="utf-8") as f:
    writer = csv.DictWriter(f, fieldnames=LABELS_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
