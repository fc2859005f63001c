"""The de-renderer: one network per physical property, the Unsup3D renderer, and named outputs.

`DeRenderer` predicts canonical depth, albedo, light, view (and optionally confidence maps) from a [B, 64, 64, 3]
image in [-1, 1], renders the scene and its horizontal mirror, and returns a dict. Its per-property features are
the physically disentangled representations (PDRs): the depth and albedo bottlenecks and the light and view
encoders' last conv features.
"""

import math
from typing import Dict

import keras
import tensorflow as tf

from pdr_tf.data import formats
from pdr_tf.model import networks
from pdr_tf.render import geometry
from pdr_tf.render import renderer as renderer_lib
from pdr_tf.render import scene
from pdr_tf.gin_utils import keras_configurable

FEATURE_KEYS = scene.PROPERTIES


def _float32(outputs):
  """Network outputs in float32: under a mixed-precision policy the networks compute in float16 or bfloat16, while
  the renderer, the losses and the exported features stay float32."""
  return tf.nest.map_structure(lambda t: tf.cast(t, tf.float32), outputs)


def mirror_equivariant(net, images, mirror_signs, training=False) -> Dict[str, tf.Tensor]:
  """A light / view encoder made equivariant under the left-right mirror.

  Args:
    net: a `networks.ConvEncoder` (returns {"output", "features"}).
    images: [B, S, S, 3] in [-1, 1].
    mirror_signs: how each raw output changes under the mirror (`scene.LIGHT_MIRROR_SIGNS`, `VIEW_MIRROR_SIGNS`).
    training: forwarded to `net`.

  Returns:
    {"output": (f(x) + s * f(mirror x)) / 2 [B, D], "features": f(x)'s features [B, F]}, float32.
  """
  batch = tf.shape(images)[0]
  both = _float32(net(tf.concat([images, geometry.flip_horizontal(images)], 0), training=training))
  direct, mirrored = both["output"][:batch], both["output"][batch:]
  return {
    "output": (direct + tf.constant(mirror_signs, tf.float32) * mirrored) / 2.0,
    "features": both["features"][:batch],
  }


@keras_configurable
class DeRenderer(keras.Model):
  """Unsup3D-style de-renderer with per-property encoders.

  Args:
    nf: base width of the depth and albedo encoder-decoders (paper 64).
    depth_size: resolution the depth network predicts at (64: Unsup3D; 32, 16 or 8: a coarser map, upsampled).
    initializer: convolution kernel initializer, `networks.INITIALIZERS` ("pytorch": Unsup3D's).
    flat_depth_init: start the depth network's output convolution at zero, i.e. from flat canonical depth.
    convex_prior: amplitude (scene units) of a centred convex bump added to the raw depth (`scene.convex_prior`);
      0 for none (Unsup3D).
    mirror_equivariant: predict light and view as the mirror-equivariant part of the encoders' outputs, so that
      the mirrored image gets the mirrored light and view (`scene.LIGHT_MIRROR_SIGNS`, `VIEW_MIRROR_SIGNS`); the
      side components (lx; ry, rz, tx) then average to zero over an image and its mirror, and no constant side
      light or yaw can be shared by every image (docs/training.md). Costs a second pass of both encoders.
    initial_ly: the vertical light component every image gets before training (0: Unsup3D's bias-free light
      head, a frontal light at the start). Non-zero gives the light head a trainable bias that starts there
      (negative: lit from above, image y pointing down); the side light lx still starts at zero.
    zdim: their bottleneck width, the depth and albedo feature size (paper 256).
    encoder_nf: base width of the light and view encoders (paper 32; features are 8 * encoder_nf wide).
    use_confidence: predict confidence maps (faces) or not (cars).
    conf_zdim: bottleneck of the confidence network (paper 128).
    renderer: a `renderer.Renderer` (default: a gin-configured one with these `ranges`).
    ranges: a `scene.SceneRanges` (default: the renderer's, else the gin-configured one); the renderer's depth
      range must be the same.
  """

  def __init__(
    self,
    nf=64,
    zdim=256,
    encoder_nf=32,
    use_confidence=False,
    conf_zdim=128,
    depth_size=formats.IMAGE_SIZE,
    initializer="pytorch",
    flat_depth_init=False,
    convex_prior=0.0,
    convex_prior_radius=0.4,
    convex_prior_aspect=1.0,
    mirror_equivariant=False,
    initial_ly=0.0,
    renderer=None,
    ranges=None,
    name="de_renderer",
    **kwargs,
  ):
    # The model itself stays float32 (its inputs, the renderer and the outputs); under a mixed-precision global
    # policy only the property networks built below compute in float16 / bfloat16.
    kwargs.setdefault("dtype", "float32")
    super().__init__(name=name, **kwargs)
    self.nf, self.zdim, self.encoder_nf = nf, zdim, encoder_nf
    self.use_confidence, self.conf_zdim = use_confidence, conf_zdim
    self.depth_size, self.initializer, self.flat_depth_init = depth_size, initializer, flat_depth_init
    self.convex_prior = float(convex_prior)
    self.mirror_equivariant = bool(mirror_equivariant)
    self.initial_ly = float(initial_ly)
    if not -1.0 < self.initial_ly < 1.0:
      raise ValueError(f"initial_ly must lie in (-1, 1), the range of the light's ly; got {initial_ly}")
    self.convex_prior_radius, self.convex_prior_aspect = float(convex_prior_radius), float(convex_prior_aspect)
    if ranges is None:
      ranges = renderer.ranges if renderer is not None else scene.SceneRanges()
    self.ranges = ranges
    self.renderer = renderer if renderer is not None else renderer_lib.Renderer(ranges=ranges)
    if (self.renderer.min_depth, self.renderer.max_depth) != (ranges.min_depth, ranges.max_depth):
      raise ValueError(
        f"the renderer's depth range ({self.renderer.min_depth}, {self.renderer.max_depth}) differs from the "
        f"model's SceneRanges ({ranges.min_depth}, {ranges.max_depth}); build the Renderer with ranges=the same"
      )
    init = {"initializer": initializer}
    self.depth_net = networks.EncoderDecoder(
      out_channels=1,
      activation=None,
      nf=nf,
      zdim=zdim,
      output_size=depth_size,
      name="depth_net",
      output_initializer="zeros" if flat_depth_init else None,
      **init,
    )
    self.albedo_net = networks.EncoderDecoder(
      out_channels=3, activation="tanh", nf=nf, zdim=zdim, name="albedo_net", **init
    )
    light_bias = None if self.initial_ly == 0.0 else [0.0, 0.0, 0.0, math.atanh(self.initial_ly)]  # raw ka, kd, lx, ly
    self.light_net = networks.ConvEncoder(out_dim=4, nf=encoder_nf, head_bias=light_bias, name="light_net", **init)
    self.view_net = networks.ConvEncoder(out_dim=6, nf=encoder_nf, name="view_net", **init)
    self.conf_net = networks.ConfNet(nf=nf, zdim=conf_zdim, name="conf_net", **init) if use_confidence else None

  @property
  def image_size(self) -> int:
    return self.renderer.image_size

  def predict_scene(self, images, training=False) -> Dict[str, tf.Tensor]:
    """Runs the four property networks.

    Args:
      images: [B, 64, 64, 3] in [-1, 1].

    Returns:
      dict: depth [B,S,S] canonical depth; depth_before_border [B,S,S] the same before the border columns are
      pinned (for the smoothness loss); albedo [B,S,S,3] in [-1,1]; light [B,4]; view [B,6];
      features {depth, albedo, light, view} -> [B, D]; and conf_l1 [B,S,S,2], conf_perc [B,S/4,S/4,2] when
      confidence is on.
    """
    depth = _float32(self.depth_net(images, training=training))
    albedo = _float32(self.albedo_net(images, training=training))
    light = self._encode_scene_vector(self.light_net, images, scene.LIGHT_MIRROR_SIGNS, training)
    view = self._encode_scene_vector(self.view_net, images, scene.VIEW_MIRROR_SIGNS, training)
    depth_before_border = self._depth_before_border(depth["output"])
    out = {
      "depth": scene.with_border(depth_before_border, self.ranges),
      "depth_before_border": depth_before_border,
      "albedo": albedo["output"],
      "light": scene.light_from_raw(light["output"], self.ranges),
      "view": scene.view_from_raw(view["output"], self.ranges),
      "features": {
        "depth": depth["features"],
        "albedo": albedo["features"],
        "light": light["features"],
        "view": view["features"],
      },
    }
    if self.conf_net is not None:
      out.update(_float32(self.conf_net(images, training=training)))
    return out

  def _depth_before_border(self, raw_output) -> tf.Tensor:
    """[B, S, S] canonical depth from the depth network's [B, S, S, 1] raw output (plus the convex prior), before the
    border columns are pinned."""
    raw_depth = raw_output[..., 0]
    if self.convex_prior > 0:
      raw_depth += scene.convex_prior(
        self.image_size, self.convex_prior, self.ranges, self.convex_prior_radius, self.convex_prior_aspect
      )
    return scene.depth_from_raw(raw_depth, self.ranges, border=False)

  def predict_depth(self, images, training=False) -> tf.Tensor:
    """The depth network alone: [B, S, S] canonical depth, border pinned, for [B, S, S, 3] images in [-1, 1]."""
    depth = self._depth_before_border(_float32(self.depth_net(images, training=training))["output"])
    return scene.with_border(depth, self.ranges)

  def predict_view(self, images, training=False) -> tf.Tensor:
    """The view encoder alone: [B, 6] (rx, ry, rz radians, tx, ty, tz) for [B, S, S, 3] images in [-1, 1]."""
    view = self._encode_scene_vector(self.view_net, images, scene.VIEW_MIRROR_SIGNS, training)
    return scene.view_from_raw(view["output"], self.ranges)

  def predict_light(self, images, training=False) -> tf.Tensor:
    """The light encoder alone: [B, 4] (ka, kd, lx, ly) for [B, S, S, 3] images in [-1, 1]."""
    light = self._encode_scene_vector(self.light_net, images, scene.LIGHT_MIRROR_SIGNS, training)
    return scene.light_from_raw(light["output"], self.ranges)

  def predict_albedo(self, images, training=False) -> tf.Tensor:
    """The albedo network alone: [B, S, S, 3] canonical albedo in [-1, 1] for [B, S, S, 3] images in [-1, 1]."""
    return _float32(self.albedo_net(images, training=training))["output"]

  def _encode_scene_vector(self, net, images, mirror_signs, training):
    """Runs a light / view encoder, through `mirror_equivariant` when the model is."""
    if not self.mirror_equivariant:
      return _float32(net(images, training=training))
    return mirror_equivariant(net, images, mirror_signs, training)

  def encode(self, images, training=False) -> Dict[str, tf.Tensor]:
    """PDR features: {"depth", "albedo", "light", "view"} -> [B, D] for [B, 64, 64, 3] images in [-1, 1]."""
    depth = self.depth_net(images, training=training)["features"]
    albedo = self.albedo_net(images, training=training)["features"]
    light = self.light_net(images, training=training)["features"]
    view = self.view_net(images, training=training)["features"]
    return _float32({"depth": depth, "albedo": albedo, "light": light, "view": view})

  def call(self, images, training=False, renderer=None):
    """Predicts the scene and renders it and its mirror (with `renderer` instead of the model's when given).

    Returns:
      `predict_scene`'s dict plus canon_normal, canon_shading, canon_diffuse, canon_image, recon_depth,
      recon_image, mask (each for the original), recon_image_flip, mask_flip (the mirrored scene) and
      mask_both = mask * mask_flip (no gradient).
    """
    images = tf.convert_to_tensor(images, tf.float32)
    out = self.predict_scene(images, training=training)
    batch = tf.shape(images)[0]
    rendered = (renderer or self.renderer).render(
      *renderer_lib.flip_pair(out["depth"], out["albedo"], out["light"], out["view"])
    )
    for key in ("canon_normal", "canon_shading", "canon_diffuse", "canon_image", "recon_depth", "recon_image", "mask"):
      out[key] = rendered[key][:batch]
    out["recon_image_flip"] = rendered["recon_image"][batch:]
    out["mask_flip"] = rendered["mask"][batch:]
    out["mask_both"] = tf.stop_gradient(out["mask"] * out["mask_flip"])
    return out

  def de_render(self, images, training=False, renderer=None) -> Dict[str, tf.Tensor]:
    """Scene parameters and the reconstruction, without the mirrored render (for serving and evaluation).

    `renderer`: render with this one instead of the model's (e.g. `self.renderer.portable()` for exports).

    Returns:
      depth [B,S,S], albedo [B,S,S,3], light [B,4], view [B,6], recon_image [B,S,S,3], recon_depth [B,S,S],
      mask [B,S,S].
    """
    out = self.predict_scene(images, training=training)
    rendered = (renderer or self.renderer).render(out["depth"], out["albedo"], out["light"], out["view"])
    return {
      "depth": out["depth"],
      "albedo": out["albedo"],
      "light": out["light"],
      "view": out["view"],
      "recon_image": rendered["recon_image"],
      "recon_depth": rendered["recon_depth"],
      "mask": rendered["mask"],
    }

  def render(self, depth, albedo, light, view) -> Dict[str, tf.Tensor]:
    """Renders given scene parameters with this model's renderer (for LOOCC and visualisation)."""
    return self.renderer.render(depth, albedo, light, view)

  def build_for_inference(self) -> None:
    """Creates every variable by running the networks on a dummy batch, in the order a call creates them. The
    renderer holds no variables, so nothing is rendered (an eager render would trace, or compile, a rasterizer for
    a batch that is never used again)."""
    self.predict_scene(tf.zeros([1, self.image_size, self.image_size, 3]))
    self.built = True

  def get_config(self):
    return {
      "nf": self.nf,
      "zdim": self.zdim,
      "encoder_nf": self.encoder_nf,
      "use_confidence": self.use_confidence,
      "conf_zdim": self.conf_zdim,
      "depth_size": self.depth_size,
      "initializer": self.initializer,
      "flat_depth_init": self.flat_depth_init,
      "convex_prior": self.convex_prior,
      "convex_prior_radius": self.convex_prior_radius,
      "convex_prior_aspect": self.convex_prior_aspect,
      "mirror_equivariant": self.mirror_equivariant,
      "initial_ly": self.initial_ly,
      "name": self.name,
    }
