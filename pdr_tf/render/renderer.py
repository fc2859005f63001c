"""The Unsup3D differentiable renderer: canonical depth, albedo, light and view in, reconstructed image out.

docs/model.md. The canonical depth map becomes a grid mesh (one vertex per pixel), is moved by the view
and its depth is rasterized in the input view (`recon_depth`). Each input-view pixel is then back-projected with that
depth, moved back by the inverse view and projected into the canonical frame, where the shaded canonical image is
sampled bilinearly. Only depth is rasterized, never the image; gradients reach depth, albedo, light and view.
"""

import functools
from typing import Dict

import gin
import tensorflow as tf

from pdr_tf import config_checks
from pdr_tf import graph
from pdr_tf.data import formats
from pdr_tf.render import geometry
from pdr_tf.render import rasterizer
from pdr_tf.render import scene


@gin.configurable
class Renderer:
  """Binds the renderer's constants; every method is a pure function of its tensor arguments.

  A Renderer never changes after construction: `variant`, `portable` and `inline` build new ones (for exports and
  for callers that compile everything themselves) instead of switching modes.

  Args:
    image_size: side S of the square images (pixels).
    fov: field of view in degrees.
    rotation_center_depth: the view rotates about (0, 0, rotation_center_depth).
    ranges: a `scene.SceneRanges` (default: the gin-configured one), the one home of the canonical depth range
      [min_depth, max_depth]; reconstructed depth is clamped to [min_depth - margin, max_depth + margin] and
      pixels at the far clamp are invalid.
    margin: clamp margin (Unsup3D: 0.1).
    backend: rasterizer backend, see `rasterizer.backends()`, or "auto" (the default: the pure-TF "tf" backend;
      resolved once, at first use).
    jit_compile: run `render` (forward and backward) compiled with XLA when the backend allows it (the pure-TF
      "tf" backend; the "tfg" kernel is a custom op and always runs uncompiled). On the 2-core CPU the rendering
      path then runs ~2x faster than with the kernel (docs/performance.md); each new batch size compiles once.
    compile_rasterizer: let an XLA-capable backend compile its own triangle ids when `render` itself is not
      compiled (False: plain ops, for exports to servers without an XLA JIT).
  """

  def __init__(
    self,
    image_size=formats.IMAGE_SIZE,
    fov=geometry.MODEL_FOV_DEGREES,
    rotation_center_depth=geometry.ROTATION_CENTER_DEPTH,
    ranges=None,
    margin=0.1,
    backend="auto",
    jit_compile=False,
    compile_rasterizer=True,
  ):
    # What `variant` copies: the arguments as given (ranges resolved), so that a copy is this renderer exactly.
    self._arguments = dict(
      image_size=image_size,
      fov=fov,
      rotation_center_depth=rotation_center_depth,
      ranges=ranges if ranges is not None else scene.SceneRanges(),
      margin=margin,
      backend=backend,
      jit_compile=jit_compile,
      compile_rasterizer=compile_rasterizer,
    )
    config_checks.choice("Renderer.backend", backend, rasterizer.backends() + ("auto",))
    config_checks.integer("Renderer.image_size", image_size, 2)
    config_checks.boolean("Renderer.jit_compile", jit_compile)
    config_checks.boolean("Renderer.compile_rasterizer", compile_rasterizer)
    self.image_size = int(image_size)
    geometry.check_fov(self.image_size, fov)
    self.fov = float(fov)
    self.rotation_center = (0.0, 0.0, float(rotation_center_depth))
    self.ranges = self._arguments["ranges"]
    self.margin = float(margin)
    self.backend = backend
    self.jit_compile = bool(jit_compile)
    self.compile_rasterizer = bool(compile_rasterizer)
    self._compiled_render = graph.function(self._render, jit_compile=True)
    self._compiled_relight = graph.function(self._relight, jit_compile=True)

  @property
  def min_depth(self) -> float:
    return float(self.ranges.min_depth)

  @property
  def max_depth(self) -> float:
    return float(self.ranges.max_depth)

  def variant(self, **changes) -> "Renderer":
    """A new Renderer with the same constants except `changes` (any constructor argument)."""
    return Renderer(**{**self._arguments, **changes})

  def portable(self) -> "Renderer":
    """The same renderer made of standard TensorFlow ops only, with no XLA: the pure-TF "tf" rasterizer (the same
    triangle ids as the "tfg" kernel), uncompiled. For exports: stock TF Serving has neither the kernel's custom
    op nor, on CPU, an XLA JIT."""
    return self.variant(backend=rasterizer.PORTABLE_BACKEND, jit_compile=False, compile_rasterizer=False)

  def inline(self) -> "Renderer":
    """The same renderer with no XLA of its own (the rasterizer's included), for tracing inside a caller that
    compiles the whole computation (the gradient of a nested XLA function does not compile)."""
    return self.variant(jit_compile=False, compile_rasterizer=False)

  # The mesh, the camera and the backend are settled on first use: constructing a Renderer must not start the TF
  # runtime, because multi-worker collectives can be configured only before it starts and `train` checks the
  # configuration first.
  @functools.cached_property
  def intrinsics(self) -> tf.Tensor:
    with tf.init_scope():  # an eager constant even when first used while tracing a tf.function
      return geometry.intrinsics_from_fov(self.image_size, self.fov)

  @functools.cached_property
  def faces(self) -> tf.Tensor:
    with tf.init_scope():
      return tf.constant(geometry.grid_faces(self.image_size, self.image_size))

  @functools.cached_property
  def rasterizer_backend(self) -> rasterizer.Backend:
    """The backend record `backend` stands for here ("auto" resolved once)."""
    return rasterizer.get_backend(self.backend)

  @property
  def compiled(self) -> bool:
    """Whether `render` runs under XLA (jit_compile asked for and an XLA-capable backend)."""
    return self.jit_compile and self.rasterizer_backend.xla

  @property
  def far_depth(self) -> float:
    """Depth at and beyond which a reconstructed pixel is invalid."""
    return self.max_depth + self.margin

  def _check_depth(self, depth):
    depth = geometry._check(depth, "depth", rank=3)  # pylint: disable=protected-access
    if depth.shape[1] != self.image_size or depth.shape[2] != self.image_size:
      raise ValueError(f"depth must be [B, {self.image_size}, {self.image_size}], got {depth.shape}")
    return depth

  def view_mesh(self, canon_depth, view) -> tf.Tensor:
    """[B, S*S, 3] camera-space vertices of the canonical depth's grid mesh (faces: `self.faces`) moved into the
    input view: what `warp_depth` rasterizes."""
    batch = tf.shape(canon_depth)[0]
    points = tf.reshape(geometry.depth_to_points(canon_depth, self.intrinsics), [batch, -1, 3])
    return geometry.transform_points(points, view, self.rotation_center)

  def warp_depth(self, canon_depth, view) -> tf.Tensor:
    """Rasterizes the depth of the view-transformed canonical mesh in the input view.

    Args:
      canon_depth: [B, S, S] canonical depth.
      view: [B, 6] (rx, ry, rz radians, tx, ty, tz).

    Returns:
      [B, S, S] reconstructed depth clamped to [min_depth - margin, max_depth + margin].
    """
    fragments = rasterizer.rasterize(
      self.view_mesh(self._check_depth(canon_depth), view),
      self.faces,
      self.intrinsics,
      (self.image_size, self.image_size),
      backend=self.rasterizer_backend,
      background_depth=self.far_depth,
      jit_compile=self.compile_rasterizer,
    )
    return tf.clip_by_value(fragments.depth, self.min_depth - self.margin, self.far_depth)

  def inverse_warp_grid(self, recon_depth, view) -> tf.Tensor:
    """Pixel coordinates in the canonical frame of every input-view pixel.

    Args:
      recon_depth: [B, S, S] depth in the input view.
      view: [B, 6] view.

    Returns:
      [B, S, S, 2] canonical pixel coordinates (u, v) to sample the canonical image at.
    """
    recon_depth = self._check_depth(recon_depth)
    batch = tf.shape(recon_depth)[0]
    points = tf.reshape(geometry.depth_to_points(recon_depth, self.intrinsics), [batch, -1, 3])
    points = geometry.inverse_transform_points(points, view, self.rotation_center)
    return tf.reshape(geometry.project(points, self.intrinsics), [batch, self.image_size, self.image_size, 2])

  def valid_mask(self, recon_depth) -> tf.Tensor:
    """[B, S, S] float mask of pixels the object covers (recon_depth below the far clamp); no gradient."""
    return tf.stop_gradient(tf.cast(recon_depth < self.far_depth - 1e-4, tf.float32))

  def shade(self, canon_depth, canon_albedo, light) -> Dict[str, tf.Tensor]:
    """Shades the canonical frame.

    Args:
      canon_depth: [B, S, S] depth.
      canon_albedo: [B, S, S, 3] albedo in [-1, 1].
      light: [B, 4] (ka, kd, lx, ly).

    Returns:
      dict with normal [B,S,S,3], shading [B,S,S,1], diffuse [B,S,S,1] (max(0, n.l)), image [B,S,S,3] in [-1,1].
    """
    normal = geometry.normals_from_depth(self._check_depth(canon_depth), self.intrinsics)
    shading = geometry.lambertian_shading(normal, light)
    diffuse = tf.nn.relu(tf.reduce_sum(normal * geometry.light_direction(light)[:, None, None], -1, keepdims=True))
    return {
      "normal": normal,
      "shading": shading,
      "diffuse": diffuse,
      "image": geometry.shade_albedo(canon_albedo, shading),
    }

  def render(self, canon_depth, canon_albedo, light, view) -> Dict[str, tf.Tensor]:
    """The full Unsup3D rendering path.

    Args:
      canon_depth: [B, S, S] canonical depth in [min_depth, max_depth].
      canon_albedo: [B, S, S, 3] albedo in [-1, 1].
      light: [B, 4] (ka, kd, lx, ly).
      view: [B, 6] (rx, ry, rz radians, tx, ty, tz).

    Returns:
      dict: canon_normal, canon_shading, canon_diffuse, canon_image (canonical frame); recon_depth [B,S,S],
      recon_image [B,S,S,3] (input view, in [-1,1] where valid), mask [B,S,S] (valid pixels, no gradient).
    """
    if self.compiled:
      return self._compiled_render(canon_depth, canon_albedo, light, view)
    return self._render(canon_depth, canon_albedo, light, view)

  def _render(self, canon_depth, canon_albedo, light, view) -> Dict[str, tf.Tensor]:
    shaded = self.shade(canon_depth, canon_albedo, light)
    recon_depth = self.warp_depth(canon_depth, view)
    grid = self.inverse_warp_grid(recon_depth, view)
    recon_image = geometry.bilinear_sample(shaded["image"], grid)
    return {
      "canon_normal": shaded["normal"],
      "canon_shading": shaded["shading"],
      "canon_diffuse": shaded["diffuse"],
      "canon_image": shaded["image"],
      "recon_depth": recon_depth,
      "recon_image": recon_image,
      "mask": self.valid_mask(recon_depth),
    }

  def relight(self, canon_depth, canon_albedo, light, view, recon_depth) -> tf.Tensor:
    """`render(...)["recon_image"]` for a scene whose geometry was already rendered: `recon_depth` is
    `render`'s output for the same canon_depth and view, so only shading and sampling run (no rasterization).

    Args:
      canon_depth, canon_albedo, light, view: as in `render`.
      recon_depth: [B, S, S] `render(canon_depth, ..., view)["recon_depth"]`.

    Returns:
      [B, S, S, 3] the reconstructed image under `light`; `render`'s mask for the same geometry still applies.
    """
    if self.compiled:
      return self._compiled_relight(canon_depth, canon_albedo, light, view, recon_depth)
    return self._relight(canon_depth, canon_albedo, light, view, recon_depth)

  def _relight(self, canon_depth, canon_albedo, light, view, recon_depth) -> tf.Tensor:
    image = self.shade(canon_depth, canon_albedo, light)["image"]
    return geometry.bilinear_sample(image, self.inverse_warp_grid(recon_depth, view))


def flip_pair(canon_depth, canon_albedo, light, view):
  """Stacks the scene with its horizontal mirror (Unsup3D symmetry): depth and albedo flipped, light and view
  repeated, giving a 2B batch (originals first)."""
  return (
    tf.concat([canon_depth, geometry.flip_horizontal(canon_depth)], 0),
    tf.concat([canon_albedo, geometry.flip_horizontal(canon_albedo)], 0),
    tf.concat([light, light], 0),
    tf.concat([view, view], 0),
  )
