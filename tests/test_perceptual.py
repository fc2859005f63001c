"""Tests for pdr_tf.model.perceptual: off without weights (a log line says so), frozen relu3_3 features from files."""

import logging

import gin
import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf
from keras.src.legacy.saving import legacy_h5_format

from pdr_tf.model import perceptual

# Keras' legacy HDF5 writer (used to mimic the ImageNet download) trips a NumPy 2 deprecation inside Keras.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


@pytest.fixture(scope="module")
def random_vgg(tmp_path_factory):
  """A randomly initialised VGG16 without its top, saved as Keras 3 and as legacy (Keras' ImageNet file) HDF5."""
  keras.utils.set_random_seed(0)
  vgg = keras.applications.VGG16(weights=None, include_top=False, input_shape=(64, 64, 3))
  folder = tmp_path_factory.mktemp("vgg")
  path = str(folder / "vgg16_random.weights.h5")
  vgg.save_weights(path)
  legacy = str(folder / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5")
  with h5py.File(legacy, "w") as f:
    legacy_h5_format.save_weights_to_hdf5_group(f, vgg)
  return vgg, path, legacy


def test_disabled_without_weights_logs_once_and_refuses_calls(caplog):
  with caplog.at_level(logging.WARNING, logger="pdr_tf.model.perceptual"):
    features = perceptual.PerceptualFeatures()
  assert not features.enabled
  messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
  assert messages == [
    "perceptual loss disabled: no VGG16 weights file configured (set PerceptualFeatures.vgg16_weights_path)"
  ]
  assert features.weights == []
  with pytest.raises(RuntimeError, match="perceptual loss disabled"):
    features(tf.zeros([1, 64, 64, 3]))


def test_disabled_when_configured_file_is_missing(tmp_path, caplog):
  missing = str(tmp_path / "nope.weights.h5")
  with caplog.at_level(logging.WARNING, logger="pdr_tf.model.perceptual"):
    features = perceptual.PerceptualFeatures(vgg16_weights_path=missing)
  assert not features.enabled
  assert any("perceptual loss disabled" in r.getMessage() and missing in r.getMessage() for r in caplog.records)


def test_local_weights_give_frozen_relu3_3_features(random_vgg):
  vgg, path, _ = random_vgg
  with gin.unlock_config():
    gin.bind_parameter("PerceptualFeatures.vgg16_weights_path", path)
  try:
    features = perceptual.PerceptualFeatures()
  finally:
    gin.clear_config()
  assert features.enabled
  images = tf.random.stateless_uniform([2, 64, 64, 3], seed=[1, 2], minval=-1.0, maxval=1.0)
  out = features(images)
  assert out.shape == (2, 16, 16, 256)
  assert np.all(out.numpy() >= 0.0) and np.any(out.numpy() > 0.0)  # relu3_3
  assert features.trainable_weights == [] and len(features.non_trainable_weights) == 14  # 7 convs x (kernel, bias)
  np.testing.assert_array_equal(
    features.vgg.get_layer("block3_conv3").kernel.numpy(), vgg.get_layer("block3_conv3").kernel.numpy()
  )
  # Caffe preprocessing: [-1, 1] -> 0..255, RGB -> BGR, minus the ImageNet BGR means.
  pixels = ((images.numpy() + 1.0) * 127.5)[..., ::-1] - np.array([103.939, 116.779, 123.68], np.float32)
  reference = keras.Model(vgg.input, vgg.get_layer("block3_conv3").output)(pixels)
  np.testing.assert_allclose(out.numpy(), reference.numpy(), rtol=1e-4, atol=1e-4)
  # Frozen, but differentiable with respect to the images (the perceptual loss trains the de-renderer).
  with tf.GradientTape() as tape:
    tape.watch(images)
    loss = tf.reduce_mean(features(images))
  grad = tape.gradient(loss, images)
  assert np.all(np.isfinite(grad.numpy())) and np.any(grad.numpy() != 0.0)
  with pytest.raises(ValueError, match="64, 64, 3"):
    features(tf.zeros([1, 32, 32, 3]))


def test_legacy_h5_file_like_keras_imagenet_download_loads(random_vgg):
  vgg, _, legacy = random_vgg
  features = perceptual.PerceptualFeatures(vgg16_weights_path=legacy)
  assert features.enabled
  np.testing.assert_array_equal(
    features.vgg.get_layer("block2_conv1").kernel.numpy(), vgg.get_layer("block2_conv1").kernel.numpy()
  )
