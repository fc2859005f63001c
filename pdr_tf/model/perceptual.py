"""Frozen VGG16 relu3_3 features for the perceptual loss, loaded only from a local weights file (never downloaded).

ImageNet weights cannot be downloaded on the training machines, so the network is built only when
`PerceptualFeatures.vgg16_weights_path` names an existing file. Otherwise the layer is disabled (`enabled` is False),
says so once in the log, and the model trains with the perceptual weight set to 0. Keras' own ImageNet file
(`vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5`, legacy HDF5) and Keras 3 `*.weights.h5` files of a VGG16
without its top both load.
"""

import logging
import os
from typing import Optional

import keras
import tensorflow as tf

from pdr_tf.data import formats
from pdr_tf.gin_utils import keras_configurable

_LOG = logging.getLogger(__name__)
_FEATURE_LAYER = "block3_conv3"  # its activation is the ReLU: relu3_3, 16x16x256 at 64x64 input
_INPUT_SHAPE = (formats.IMAGE_SIZE, formats.IMAGE_SIZE, 3)
DISABLED_MESSAGE = (
  "perceptual loss disabled: no VGG16 weights file configured (set PerceptualFeatures.vgg16_weights_path)"
)


@keras_configurable
class PerceptualFeatures(keras.layers.Layer):
  """VGG16 up to relu3_3, frozen; maps [B, 64, 64, 3] images in [-1, 1] to [B, 16, 16, 256] features.

  Attributes:
    enabled: whether a weights file was found and the network built. A disabled layer raises when called.
  """

  def __init__(self, vgg16_weights_path: Optional[str] = None, name: str = "perceptual_features", **kwargs):
    """Args: vgg16_weights_path: local VGG16 (include_top=False) weights file; None or a missing file disables."""
    super().__init__(name=name, trainable=False, **kwargs)
    self.vgg16_weights_path = vgg16_weights_path
    self.vgg = None
    if vgg16_weights_path is None:
      _LOG.warning(DISABLED_MESSAGE)
    elif not os.path.isfile(vgg16_weights_path):
      _LOG.warning("%s: file %s does not exist", DISABLED_MESSAGE, vgg16_weights_path)
    else:
      vgg = keras.applications.VGG16(weights=vgg16_weights_path, include_top=False, input_shape=_INPUT_SHAPE)
      self.vgg = keras.Model(vgg.input, vgg.get_layer(_FEATURE_LAYER).output, name="vgg16_relu3_3")
      self.vgg.trainable = False
      _LOG.info("perceptual loss: VGG16 relu3_3 weights loaded from %s", vgg16_weights_path)

  @property
  def enabled(self) -> bool:
    return self.vgg is not None

  def call(self, images):
    """Args: images: [B, 64, 64, 3] in [-1, 1]. Returns: [B, 16, 16, 256] relu3_3 features (differentiable)."""
    if not self.enabled:
      raise RuntimeError(f"{DISABLED_MESSAGE}; check PerceptualFeatures.enabled before calling it")
    images = tf.convert_to_tensor(images, tf.float32)
    if images.shape.rank != 4 or tuple(images.shape[1:]) != _INPUT_SHAPE:
      raise ValueError(f"PerceptualFeatures images must have shape [B, 64, 64, 3], got {images.shape}")
    # Keras' VGG16 weights expect Caffe preprocessing: 0..255 RGB -> BGR minus the ImageNet channel means.
    pixels = keras.applications.vgg16.preprocess_input(formats.model_to_uint8(images))
    return self.vgg(pixels, training=False)

  def get_config(self):
    return {"vgg16_weights_path": self.vgg16_weights_path, "name": self.name}
