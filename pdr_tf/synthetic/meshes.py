"""Triangle-mesh building blocks for the synthetic worlds: superquadric parts, deformations, merging, normals.

Meshes are plain numpy (float64 vertices, int32 faces) in an object frame chosen by each world. Every face carries a
part id so that paint functions can colour parts differently; vertex normals are averaged within a part only, which
keeps creases between parts sharp and hides parametric seams and poles inside a part.
"""

import dataclasses
from typing import Callable, Sequence

import numpy as np


@dataclasses.dataclass
class Mesh:
  """A triangle mesh with per-face part ids.

  Attributes:
    vertices: [V, 3] float64 positions.
    faces: [F, 3] int32 vertex ids.
    part: [F] int32 part id of each face.
    normals: [V, 3] float64 unit outward normals (recomputed by `with_normals`).
  """

  vertices: np.ndarray
  faces: np.ndarray
  part: np.ndarray
  normals: np.ndarray = None


def _signed_power(x, exponent):
  # Snap round-off (cos(pi/2) = 6e-17) to zero: a small exponent would blow it up into visible asymmetry.
  x = np.where(np.abs(x) < 1e-12, 0.0, x)
  return np.sign(x) * np.abs(x) ** exponent


def _grid_faces_wrapped(rows: int, cols: int) -> np.ndarray:
  """Two triangles per quad of a rows x cols vertex grid whose columns wrap around (longitude)."""
  ids = np.arange(rows * cols, dtype=np.int32).reshape(rows, cols)
  right = np.roll(ids, -1, axis=1)
  tl, tr, bl, br = ids[:-1].ravel(), right[:-1].ravel(), ids[1:].ravel(), right[1:].ravel()
  return np.concatenate([np.stack([tl, tr, br], -1), np.stack([tl, br, bl], -1)]).astype(np.int32)


def compute_normals(vertices: np.ndarray, faces: np.ndarray, part: np.ndarray) -> np.ndarray:
  """Area-weighted vertex normals, averaged over coincident vertices of the same part, oriented outward.

  Each part must be a closed surface wound consistently (as `superellipsoid` and `mirror_x` build them); its
  orientation is then fixed by the sign of the enclosed volume.

  Args:
    vertices: [V, 3] positions.
    faces: [F, 3] vertex ids.
    part: [F] part ids; vertices of different parts are never averaged together.

  Returns:
    [V, 3] unit normals.
  """
  v = np.asarray(vertices, np.float64)
  tri = v[faces]
  face_normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])  # length = 2 x area
  vertex_part = np.zeros(len(v), np.int64)
  vertex_part[faces.ravel()] = np.repeat(part, 3)
  parts = np.unique(part)
  # Divergence theorem: sum over faces of n . x dA = 3 x volume, positive iff the faces are wound outward.
  for p in parts:
    sel = part == p
    if np.sum(np.einsum("fi,fi->f", face_normal[sel], tri[sel].mean(1))) < 0:
      face_normal[sel] *= -1.0
  normals = np.zeros_like(v)
  for k in range(3):
    np.add.at(normals, faces[:, k], face_normal)
  # Weld: coincident vertices (seams, poles) of one part share the sum of their normals.
  key = np.concatenate([np.round(v / 1e-9).astype(np.int64), vertex_part[:, None]], axis=1)
  _, inverse = np.unique(key, axis=0, return_inverse=True)
  inverse = inverse.ravel()
  welded = np.zeros((inverse.max() + 1, 3))
  np.add.at(welded, inverse, normals)
  normals = welded[inverse]
  length = np.linalg.norm(normals, axis=-1, keepdims=True)
  return np.where(length > 0, normals / np.maximum(length, 1e-30), np.array([0.0, 0.0, 1.0]))


def with_normals(mesh: Mesh) -> Mesh:
  """Returns the mesh with freshly computed normals (after all deformations)."""
  return dataclasses.replace(mesh, normals=compute_normals(mesh.vertices, mesh.faces, mesh.part))


def superellipsoid(
  radii: Sequence[float],
  exponents=(1.0, 1.0),
  center=(0.0, 0.0, 0.0),
  part: int = 0,
  rows: int = 24,
  cols: int = 32,
  axis: str = "z",
) -> Mesh:
  """A superellipsoid |x/a|^(2/e2) + |y/b|^(2/e2))^(e2/e1) + |z/c|^(2/e1) = 1 as a latitude-longitude grid.

  Args:
    radii: (a, b, c) half extents along x, y, z (scene units).
    exponents: (e1, e2): e1 shapes the profile along `axis` (small = flat caps), e2 the cross-section around it
      (1 = round, small = square). (1, 1) is an ellipsoid; (0.2, 0.2) a rounded box; (0.1, 1) a cylinder.
    center: (x, y, z) centre.
    part: part id of every face.
    rows, cols: latitude and longitude resolution.
    axis: the polar axis, "x", "y" or "z" (e.g. "x" for a wheel lying along the car's width).

  Returns:
    A Mesh (no normals yet).
  """
  if min(radii) <= 0 or min(exponents) <= 0:
    raise ValueError(f"superellipsoid radii and exponents must be positive, got {radii}, {exponents}")
  if axis not in ("x", "y", "z"):
    raise ValueError(f"axis must be 'x', 'y' or 'z', got {axis!r}")
  e1, e2 = exponents
  eta = np.linspace(-np.pi / 2, np.pi / 2, rows)
  omega = np.linspace(-np.pi, np.pi, cols, endpoint=False)
  eta, omega = np.meshgrid(eta, omega, indexing="ij")
  ce, se = _signed_power(np.cos(eta), e1), _signed_power(np.sin(eta), e1)
  u = ce * _signed_power(np.cos(omega), e2)
  w = ce * _signed_power(np.sin(omega), e2)
  pole = se
  order = {"z": (0, 1, 2), "x": (1, 2, 0), "y": (2, 0, 1)}[axis]  # where (u, w, pole) go
  unit = np.zeros(eta.shape + (3,))
  for value, index in zip((u, w, pole), order):
    unit[..., index] = value
  vertices = unit.reshape(-1, 3) * np.asarray(radii, np.float64) + np.asarray(center, np.float64)
  faces = _grid_faces_wrapped(rows, cols)
  return Mesh(vertices, faces, np.full(len(faces), part, np.int32))


def deform(mesh: Mesh, fn: Callable[[np.ndarray], np.ndarray]) -> Mesh:
  """Moves the vertices with fn([V, 3] copy) -> [V, 3]; drops the normals (recompute with `with_normals`)."""
  return Mesh(fn(mesh.vertices.copy()), mesh.faces, mesh.part, None)


def merge(meshes: Sequence[Mesh]) -> Mesh:
  """Concatenates meshes into one (vertex ids offset; part ids kept)."""
  if not meshes:
    raise ValueError("merge needs at least one mesh")
  offsets = np.cumsum([0] + [len(m.vertices) for m in meshes[:-1]])
  vertices = np.concatenate([m.vertices for m in meshes])
  faces = np.concatenate([m.faces + o for m, o in zip(meshes, offsets)]).astype(np.int32)
  part = np.concatenate([m.part for m in meshes]).astype(np.int32)
  normals = None
  if all(m.normals is not None for m in meshes):
    normals = np.concatenate([m.normals for m in meshes])
  return Mesh(vertices, faces, part, normals)


def mirror_x(mesh: Mesh) -> Mesh:
  """The mirror image through the plane x = 0 (winding reversed so normals stay outward)."""
  vertices = mesh.vertices * np.array([-1.0, 1.0, 1.0])
  normals = None if mesh.normals is None else mesh.normals * np.array([-1.0, 1.0, 1.0])
  return Mesh(vertices, mesh.faces[:, ::-1].copy(), mesh.part.copy(), normals)


def symmetric_pair(mesh: Mesh) -> Mesh:
  """The mesh plus its mirror through x = 0, e.g. the left and right wheels."""
  return merge([mesh, mirror_x(mesh)])


def bounding_box(mesh: Mesh):
  """Returns ([3] min, [3] max) of the vertices."""
  return mesh.vertices.min(0), mesh.vertices.max(0)


def recenter(mesh: Mesh) -> Mesh:
  """Translates the mesh so that its bounding-box centre is the origin."""
  low, high = bounding_box(mesh)
  return dataclasses.replace(mesh, vertices=mesh.vertices - (low + high) / 2.0)


def smoothstep(edge0, edge1, x):
  """Hermite step from 0 (x <= edge0) to 1 (x >= edge1), elementwise; used by deformations and paint."""
  t = np.clip((np.asarray(x, np.float64) - edge0) / (edge1 - edge0), 0.0, 1.0)
  return t * t * (3.0 - 2.0 * t)
