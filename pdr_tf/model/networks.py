"""De-renderer networks (Unsup3D architectures, Keras 3): conv encoders, encoder-decoders and the confidence net.

Every network takes [B, 64, 64, 3] float32 images in [-1, 1] and returns a dict of named outputs. Convolutions have no
bias, as in Unsup3D. PyTorch's k4 s2 p1 convolution equals Keras 'same' padding at even sizes, and its k4 s2 p1
transposed convolution equals Keras 'same' (both pad or crop one pixel on each side), so the shapes and parameter counts
match the released PyTorch networks exactly.

Group normalisation follows Unsup3D: 4 channels per group (GroupNorm(16, 64) etc.), i.e. groups = channels // 4, lowered
to the nearest divisor of the channel count for tiny widths, and PyTorch's epsilon 1e-5.

Convolution kernels start as in Unsup3D's PyTorch code by default ("pytorch": U(+-1/sqrt(fan_in)), PyTorch's
kaiming_uniform with a = sqrt(5)), about half the size of Keras' default Glorot-uniform ("glorot") here. The larger
start makes the initial depth twice as noisy and the first optimizer steps turn the predicted view several times
further (docs/training.md).
"""

import functools
from typing import Optional, Sequence

import keras
import tensorflow as tf

from pdr_tf.data import formats
from pdr_tf.gin_utils import keras_configurable

_INPUT_SHAPE = (formats.IMAGE_SIZE, formats.IMAGE_SIZE, 3)
_GN_EPSILON = 1e-5  # PyTorch's GroupNorm default; Keras defaults to 1e-3
_ACTIVATIONS = (None, "tanh", "softplus", "sigmoid")
INITIALIZERS = ("pytorch", "glorot")


def kernel_initializer(name: str):
  """The Keras kernel initializer for INITIALIZERS `name` (or "zeros").

  "pytorch" is U(-1/sqrt(fan_in), 1/sqrt(fan_in)), i.e. VarianceScaling(1/3, fan_in, uniform): PyTorch's default for
  Conv2d and ConvTranspose2d (whose fan_in, like Keras', counts the output channels times the kernel area).
  """
  if name == "pytorch":
    return keras.initializers.VarianceScaling(scale=1.0 / 3.0, mode="fan_in", distribution="uniform")
  if name == "glorot":
    return keras.initializers.GlorotUniform()
  if name == "zeros":
    return keras.initializers.Zeros()
  raise ValueError(f"initializer must be one of {INITIALIZERS}, got {name!r}")


def group_count(channels: int, channels_per_group: int = 4) -> int:
  """Number of GroupNorm groups for `channels`: channels // 4, at least 1, and a divisor of `channels`."""
  if channels < 1:
    raise ValueError(f"channels must be positive, got {channels}")
  groups = max(1, channels // channels_per_group)
  while channels % groups:  # only for odd tiny widths; the paper widths are multiples of 4
    groups -= 1
  return groups


def _check_image(images, network: str) -> tf.Tensor:
  """Checks that `images` is [B, 64, 64, 3] with static spatial and channel sizes."""
  images = tf.convert_to_tensor(images)
  if images.shape.rank != 4 or tuple(images.shape[1:]) != _INPUT_SHAPE:
    raise ValueError(
      f"{network} input images must have shape [B, {_INPUT_SHAPE[0]}, {_INPUT_SHAPE[1]}, "
      f"{_INPUT_SHAPE[2]}] (static), got {images.shape}"
    )
  if not images.dtype.is_floating:
    raise TypeError(f"{network} input images must be floating point in [-1, 1], got {images.dtype.name}")
  return images


def _check_widths(**widths) -> None:
  for name, value in widths.items():
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
      raise ValueError(f"{name} must be a positive int, got {value!r}")


def _conv(filters, kernel, strides=1, padding="same", name=None, init="pytorch", transpose=False, bias=None):
  """A bias-free (transposed) convolution with the chosen kernel initializer, as Unsup3D's layers; with `bias` (one
  value per filter) a trainable bias that starts at those values."""
  layer = keras.layers.Conv2DTranspose if transpose else keras.layers.Conv2D
  extra = {} if bias is None else {"bias_initializer": keras.initializers.Constant(list(bias))}
  return layer(
    filters,
    kernel,
    strides=strides,
    padding=padding,
    use_bias=bias is not None,
    name=name,
    kernel_initializer=kernel_initializer(init),
    **extra,
  )


def _deconv(filters, kernel, strides=1, padding="same", name=None, init="pytorch"):
  return _conv(filters, kernel, strides, padding, name, init, transpose=True)


def _norm(channels, name=None):
  return keras.layers.GroupNormalization(groups=group_count(channels), epsilon=_GN_EPSILON, name=name)


def _flatten_1x1(x: tf.Tensor) -> tf.Tensor:
  """[B, 1, 1, C] -> [B, C]."""
  return tf.reshape(x, [-1, x.shape[-1]])


_BLOCK_ACTIVATIONS = {
  None: tf.identity,
  "relu": tf.nn.relu,
  "leaky_relu": lambda x: tf.nn.leaky_relu(x, alpha=0.2),
}


class _Block(keras.layers.Layer):
  """A (transposed) convolution, an optional GroupNorm and an activation."""

  def __init__(self, layer, norm: bool = False, activation: Optional[str] = "relu", **kwargs):
    super().__init__(**kwargs)
    self.layer = layer
    self.norm = _norm(layer.filters, name="gn") if norm else None
    self.activation = activation

  def call(self, x):
    x = self.layer(x)
    if self.norm is not None:
      x = self.norm(x)
    return _BLOCK_ACTIVATIONS[self.activation](x)


# Layers are held as named attributes, never in Python lists or dicts: Keras 3 hides layers kept in lists from
# tf.train.Checkpoint, which would silently save none of their weights.
def _add_blocks(owner, prefix: str, blocks) -> int:
  for i, block in enumerate(blocks):
    setattr(owner, f"{prefix}{i}", block)
  return len(blocks)


def _run_blocks(owner, prefix: str, count: int, x):
  for i in range(count):
    x = getattr(owner, f"{prefix}{i}")(x)
  return x


@keras_configurable
class ConvEncoder(keras.Model):
  """Light / view encoder: 5 convs (k4; s2 x4 then s1 'valid') 3->nf->2nf->4nf->8nf->8nf, ReLU, a 1x1 tanh head.

  Call returns {"output": [B, out_dim] in [-1, 1], "features": [B, 8 nf]}: the features are tanh of the last conv's
  pre-activation (the PDR release), the head sees ReLU of it (Unsup3D).
  """

  def __init__(
    self,
    out_dim: int = 4,
    nf: int = 32,
    initializer: str = "pytorch",
    head_bias: Optional[Sequence[float]] = None,
    name: Optional[str] = None,
    **kwargs,
  ):
    """Args: out_dim: head outputs (light 4, view 6); nf: base width (paper 32, features 8 nf = 256 wide);
    initializer: one of INITIALIZERS; head_bias: None (Unsup3D: a bias-free head) or out_dim starting values of a
    trainable head bias, before the tanh."""
    super().__init__(name=name, **kwargs)
    _check_widths(out_dim=out_dim, nf=nf)
    if head_bias is not None and len(head_bias) != out_dim:
      raise ValueError(f"{name}: head_bias needs out_dim = {out_dim} values, got {list(head_bias)}")
    self.out_dim, self.nf, self.initializer = out_dim, nf, initializer
    self.head_bias = None if head_bias is None else [float(b) for b in head_bias]
    conv = functools.partial(_conv, init=initializer)
    widths = (nf, 2 * nf, 4 * nf, 8 * nf)
    self.num_down = _add_blocks(
      self, "down", [_Block(conv(w, 4, strides=2, name="conv"), name=f"down{i}") for i, w in enumerate(widths)]
    )  # 64 -> 4
    self.last = conv(8 * nf, 4, padding="valid", name="last")  # 4 -> 1
    self.head = conv(out_dim, 1, name="head", bias=self.head_bias)

  @property
  def feature_dim(self) -> int:
    return 8 * self.nf

  def call(self, images, training=None):
    pre = self.last(_run_blocks(self, "down", self.num_down, _check_image(images, self.name)))
    return {"output": _flatten_1x1(tf.tanh(self.head(tf.nn.relu(pre)))), "features": _flatten_1x1(tf.tanh(pre))}

  def get_config(self):
    return {
      "out_dim": self.out_dim,
      "nf": self.nf,
      "initializer": self.initializer,
      "head_bias": self.head_bias,
      "name": self.name,
    }


def _encoder_blocks(nf: int, zdim: int, init: str):
  """Unsup3D's shared downsampling trunk: 64x64 -> 1x1 bottleneck of width zdim (ReLU)."""
  conv = functools.partial(_conv, init=init)
  blocks = [
    _Block(conv(w, 4, strides=2, name="conv"), norm=i < 3, activation="leaky_relu", name=f"enc{i}")
    for i, w in enumerate((nf, 2 * nf, 4 * nf, 8 * nf))
  ]  # no GroupNorm on the 4th conv
  return blocks + [_Block(conv(zdim, 4, padding="valid", name="conv"), name="enc4")]  # 4 -> 1


OUTPUT_SIZES = (formats.IMAGE_SIZE, 32, 16, 8)  # EncoderDecoder.output_size: the resolution its map is predicted at


@keras_configurable
class EncoderDecoder(keras.Model):
  """Depth / albedo network: Unsup3D's EDDeconv (encoder to a 1x1 bottleneck, decoder back to 64x64).

  With `output_size` 32, 16 or 8 the decoder stops early, its last three convolutions run at that size and the map is
  upsampled bilinearly to 64x64: a smoother, cheaper map with the same bottleneck (a CPU preset's coarse depth).

  Call returns {"output": [B, 64, 64, out_channels], "features": [B, zdim]} (features = the ReLU'd bottleneck).
  """

  def __init__(
    self,
    out_channels: int = 1,
    activation: Optional[str] = None,
    nf: int = 64,
    zdim: int = 256,
    output_size: int = formats.IMAGE_SIZE,
    initializer: str = "pytorch",
    output_initializer: Optional[str] = None,
    name: Optional[str] = None,
    **kwargs,
  ):
    """Args: out_channels: depth 1, albedo 3; activation: None (depth) or "tanh" (albedo); nf, zdim: widths;
    output_size: one of OUTPUT_SIZES (64: Unsup3D); initializer: one of INITIALIZERS; output_initializer: the
    output convolution's, "zeros" to start from a constant map (None: `initializer`)."""
    super().__init__(name=name, **kwargs)
    _check_widths(out_channels=out_channels, nf=nf, zdim=zdim)
    if activation not in _ACTIVATIONS:
      raise ValueError(f"activation must be one of {_ACTIVATIONS}, got {activation!r}")
    if output_size not in OUTPUT_SIZES:
      raise ValueError(f"output_size must be one of {OUTPUT_SIZES}, got {output_size!r}")
    self.out_channels, self.activation, self.nf, self.zdim = out_channels, activation, nf, zdim
    self.output_size, self.initializer, self.output_initializer = output_size, initializer, output_initializer
    conv, deconv = functools.partial(_conv, init=initializer), functools.partial(_deconv, init=initializer)
    self.num_enc = _add_blocks(self, "enc", _encoder_blocks(nf, zdim, initializer))
    # Every decoder block ends in ReLU; comments give the spatial size after each.
    decoder = [
      _Block(deconv(8 * nf, 4, padding="valid", name="deconv"), name="dec0"),  # 1 -> 4
      _Block(conv(8 * nf, 3, name="conv"), name="dec1"),
      _Block(deconv(4 * nf, 4, strides=2, name="deconv"), norm=True, name="dec2"),  # 4 -> 8
      _Block(conv(4 * nf, 3, name="conv"), norm=True, name="dec3"),
      _Block(deconv(2 * nf, 4, strides=2, name="deconv"), norm=True, name="dec4"),  # 8 -> 16
      _Block(conv(2 * nf, 3, name="conv"), norm=True, name="dec5"),
      _Block(deconv(nf, 4, strides=2, name="deconv"), norm=True, name="dec6"),  # 16 -> 32
      _Block(conv(nf, 3, name="conv"), norm=True, name="dec7"),
    ]
    # Two blocks per doubling from 4x4: 8 -> 4 blocks, 16 -> 6, 32 and 64 -> all 8.
    self.num_dec = _add_blocks(self, "dec", decoder[: 2 * (min(output_size, 32) // 4).bit_length()])
    # 64: Unsup3D's nearest 32 -> 64 upsampling before the tail; smaller: the tail at that size, then bilinear.
    self.upsample = (
      keras.layers.UpSampling2D(2, interpolation="nearest", name="upsample")
      if output_size == formats.IMAGE_SIZE
      else None
    )
    self.num_tail = _add_blocks(
      self,
      "tail",
      [
        _Block(conv(nf, 3, name="conv"), norm=True, name="tail0"),
        _Block(conv(nf, 5, name="conv"), norm=True, name="tail1"),
      ],
    )
    self.out_conv = _conv(out_channels, 5, name="out", init=output_initializer or initializer)

  @property
  def feature_dim(self) -> int:
    return self.zdim

  def call(self, images, training=None):
    z = _run_blocks(self, "enc", self.num_enc, _check_image(images, self.name))
    x = _run_blocks(self, "dec", self.num_dec, z)
    if self.upsample is not None:
      x = self.upsample(x)
    x = self.out_conv(_run_blocks(self, "tail", self.num_tail, x))
    if self.output_size != _INPUT_SHAPE[0]:
      x = tf.image.resize(x, _INPUT_SHAPE[:2], method="bilinear")
    if self.activation is not None:
      x = keras.activations.get(self.activation)(x)
    return {"output": x, "features": _flatten_1x1(z)}

  def get_config(self):
    return {
      "out_channels": self.out_channels,
      "activation": self.activation,
      "nf": self.nf,
      "zdim": self.zdim,
      "output_size": self.output_size,
      "initializer": self.initializer,
      "output_initializer": self.output_initializer,
      "name": self.name,
    }


@keras_configurable
class ConfNet(keras.Model):
  """Confidence network (Unsup3D's ConfNet): softplus sigma maps for the photometric and perceptual losses.

  Call returns {"conf_l1": [B, 64, 64, 2], "conf_perc": [B, 16, 16, 2]}; channel 0 is for the original
  reconstruction, channel 1 for the flipped one. All values are positive.
  """

  def __init__(self, nf: int = 64, zdim: int = 128, initializer: str = "pytorch", name: Optional[str] = None, **kwargs):
    super().__init__(name=name, **kwargs)
    _check_widths(nf=nf, zdim=zdim)
    self.nf, self.zdim, self.initializer = nf, zdim, initializer
    conv, deconv = functools.partial(_conv, init=initializer), functools.partial(_deconv, init=initializer)
    self.num_enc = _add_blocks(self, "enc", _encoder_blocks(nf, zdim, initializer))
    self.num_dec = _add_blocks(
      self,
      "dec",
      [
        _Block(deconv(8 * nf, 4, padding="valid", name="deconv"), name="dec0"),  # 1 -> 4
        _Block(deconv(4 * nf, 4, strides=2, name="deconv"), norm=True, name="dec1"),  # 4 -> 8
        _Block(deconv(2 * nf, 4, strides=2, name="deconv"), norm=True, name="dec2"),  # 8 -> 16
      ],
    )
    self.num_l1 = _add_blocks(
      self,
      "l1_",
      [
        _Block(deconv(nf, 4, strides=2, name="deconv"), norm=True, name="l1_0"),  # 16 -> 32
        _Block(deconv(nf, 4, strides=2, name="deconv"), norm=True, name="l1_1"),  # 32 -> 64
      ],
    )
    self.l1_out = conv(2, 5, name="l1_out")
    self.perc_out = conv(2, 3, name="perc_out")

  def call(self, images, training=None):
    x = _run_blocks(self, "dec", self.num_dec, _run_blocks(self, "enc", self.num_enc, _check_image(images, self.name)))
    y = _run_blocks(self, "l1_", self.num_l1, x)
    return {"conf_l1": tf.nn.softplus(self.l1_out(y)), "conf_perc": tf.nn.softplus(self.perc_out(x))}

  def get_config(self):
    return {"nf": self.nf, "zdim": self.zdim, "initializer": self.initializer, "name": self.name}
