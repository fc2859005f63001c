"""Tests for pdr_tf.model.networks: shapes, ranges, parameter counts, no biases, input checks and gin configuration."""

import gin
import keras
import numpy as np
import pytest
import tensorflow as tf

from pdr_tf.model import networks


def _images(batch=2, seed=0):
  return tf.random.stateless_uniform([batch, 64, 64, 3], seed=[seed, 1], minval=-1.0, maxval=1.0)


def _unsup3d_eddeconv_params(cout, nf=64, zdim=256):
  """Parameter count of Unsup3D's PyTorch EDDeconv, written out layer by layer (conv k*k*cin*cout, GN 2*C)."""
  down = 3 * nf * 16 + nf * 2 * nf * 16 + 2 * nf * 4 * nf * 16 + 4 * nf * 8 * nf * 16 + 8 * nf * zdim * 16
  down_gn = 2 * (nf + 2 * nf + 4 * nf)
  up = (
    zdim * 8 * nf * 16
    + 8 * nf * 8 * nf * 9
    + 8 * nf * 4 * nf * 16
    + 4 * nf * 4 * nf * 9
    + 4 * nf * 2 * nf * 16
    + 2 * nf * 2 * nf * 9
    + 2 * nf * nf * 16
    + nf * nf * 9
  )
  up_gn = 2 * (4 * nf * 2 + 2 * nf * 2 + nf * 2)
  tail = nf * nf * 9 + nf * nf * 25 + 2 * (nf + nf) + nf * cout * 25
  return down + down_gn + up + up_gn + tail


def _unsup3d_encoder_params(cout, nf=32):
  convs = 3 * nf * 16 + nf * 2 * nf * 16 + 2 * nf * 4 * nf * 16 + 4 * nf * 8 * nf * 16 + 8 * nf * 8 * nf * 16
  return convs + 8 * nf * cout  # 1x1 head


def _unsup3d_confnet_params(nf=64, zdim=128):
  down = 3 * nf * 16 + nf * 2 * nf * 16 + 2 * nf * 4 * nf * 16 + 4 * nf * 8 * nf * 16 + 8 * nf * zdim * 16
  down_gn = 2 * (nf + 2 * nf + 4 * nf)
  trunk = zdim * 8 * nf * 16 + 8 * nf * 4 * nf * 16 + 4 * nf * 2 * nf * 16 + 2 * (4 * nf + 2 * nf)
  l1 = 2 * nf * nf * 16 + nf * nf * 16 + 2 * (nf + nf) + nf * 2 * 25
  perc = 2 * nf * 2 * 9
  return down + down_gn + trunk + l1 + perc


def test_paper_size_shapes_ranges_and_parameter_counts():
  images = _images()
  light, view = networks.ConvEncoder(out_dim=4), networks.ConvEncoder(out_dim=6)
  depth, albedo = networks.EncoderDecoder(out_channels=1), networks.EncoderDecoder(out_channels=3, activation="tanh")
  conf = networks.ConfNet()
  for net, out_dim in ((light, 4), (view, 6)):
    out = net(images)
    assert out["output"].shape == (2, out_dim) and out["features"].shape == (2, 256)
    assert np.all(np.abs(out["output"].numpy()) <= 1.0) and np.all(np.abs(out["features"].numpy()) <= 1.0)
    assert net.feature_dim == 256
  out = depth(images)
  assert out["output"].shape == (2, 64, 64, 1) and out["features"].shape == (2, 256)
  assert np.all(out["features"].numpy() >= 0.0)  # ReLU'd bottleneck
  out = albedo(images)
  assert out["output"].shape == (2, 64, 64, 3)
  assert np.all(np.abs(out["output"].numpy()) <= 1.0)
  out = conf(images)
  assert out["conf_l1"].shape == (2, 64, 64, 2) and out["conf_perc"].shape == (2, 16, 16, 2)
  assert np.all(out["conf_l1"].numpy() > 0.0) and np.all(out["conf_perc"].numpy() > 0.0)

  # Exactly the released PyTorch networks' counts (conv weights + GroupNorm affine); depth net about 13.0 M.
  assert depth.count_params() == _unsup3d_eddeconv_params(1) == 12_979_648
  assert 12.5e6 < depth.count_params() < 13.5e6
  assert albedo.count_params() == _unsup3d_eddeconv_params(3)
  assert light.count_params() == _unsup3d_encoder_params(4)
  assert view.count_params() == _unsup3d_encoder_params(6)
  assert conf.count_params() == _unsup3d_confnet_params()


def _tiny_nets():
  return [
    networks.ConvEncoder(out_dim=6, nf=8),
    networks.EncoderDecoder(out_channels=1, nf=8, zdim=16),
    networks.EncoderDecoder(out_channels=3, activation="tanh", nf=8, zdim=16),
    networks.ConfNet(nf=8, zdim=16),
  ]


def test_tiny_sizes_shapes_and_no_biases():
  images = _images(batch=3)
  enc, depth, albedo, conf = _tiny_nets()
  out = enc(images)
  assert out["output"].shape == (3, 6) and out["features"].shape == (3, 64)
  out = depth(images)
  assert out["output"].shape == (3, 64, 64, 1) and out["features"].shape == (3, 16) and depth.feature_dim == 16
  out = albedo(images)
  assert out["output"].shape == (3, 64, 64, 3) and np.all(np.abs(out["output"].numpy()) <= 1.0)
  out = conf(images)
  assert out["conf_l1"].shape == (3, 64, 64, 2) and out["conf_perc"].shape == (3, 16, 16, 2)
  for net in (enc, depth, albedo, conf):
    convs = [
      l
      for l in net._flatten_layers(include_self=False, recursive=True)
      if isinstance(l, (keras.layers.Conv2D, keras.layers.Conv2DTranspose))
    ]
    assert convs and all(not l.use_bias and l.bias is None for l in convs)
    # Only conv kernels and GroupNorm gamma/beta carry weights.
    assert all(len(w.shape) == 4 or "gamma" in w.path or "beta" in w.path for w in net.weights)


def test_group_count():
  assert networks.group_count(64) == 16 and networks.group_count(128) == 32  # Unsup3D: 4 channels per group
  assert networks.group_count(8) == 2 and networks.group_count(3) == 1
  assert networks.group_count(14) == 2  # 14 // 4 = 3 does not divide 14: the nearest lower divisor


def test_encoder_features_are_tanh_of_last_conv_and_head_sees_relu():
  enc = networks.ConvEncoder(out_dim=4, nf=4)
  images = _images()
  out = enc(images)
  x = images
  for i in range(4):
    x = tf.nn.relu(getattr(enc, f"down{i}").layer(x))
  pre = enc.last(x)
  np.testing.assert_allclose(out["features"].numpy(), np.tanh(pre.numpy()).reshape(2, -1), atol=1e-6)
  head = enc.head(tf.nn.relu(pre))
  np.testing.assert_allclose(out["output"].numpy(), np.tanh(head.numpy()).reshape(2, -1), atol=1e-6)


def test_tf_checkpoint_saves_and_restores_every_weight(tmp_path):
  images = _images()
  for make in (
    lambda: networks.ConvEncoder(out_dim=6, nf=4),
    lambda: networks.ConvEncoder(out_dim=4, nf=4, head_bias=[0.0, 0.0, 0.0, -0.5]),
    lambda: networks.EncoderDecoder(nf=4, zdim=8),
    lambda: networks.ConfNet(nf=4, zdim=8),
  ):
    source, target = make(), make()
    expected, _ = source(images), target(images)
    path = tf.train.Checkpoint(net=source).write(str(tmp_path / source.name))
    saved = [name for name, _ in tf.train.list_variables(path) if name.startswith("net/")]
    assert len(saved) == len(source.weights)  # Keras 3 drops layers held in lists from TF checkpoints
    tf.train.Checkpoint(net=target).read(path).assert_existing_objects_matched()
    got = target(images)
    for key in expected:
      np.testing.assert_array_equal(got[key].numpy(), expected[key].numpy())


@pytest.mark.parametrize("shape", [(2, 32, 32, 3), (2, 64, 64, 1), (2, 64, 48, 3), (64, 64, 3)])
def test_wrong_input_size_raises(shape):
  for net in _tiny_nets():
    with pytest.raises(ValueError, match="64, 64, 3"):
      net(tf.zeros(shape))


def test_bad_constructor_arguments_raise():
  with pytest.raises(ValueError, match="nf"):
    networks.ConvEncoder(nf=0)
  with pytest.raises(ValueError, match="head_bias needs out_dim = 4 values"):
    networks.ConvEncoder(out_dim=4, head_bias=[0.0, 0.1])
  with pytest.raises(ValueError, match="activation"):
    networks.EncoderDecoder(activation="relu6")
  with pytest.raises(ValueError, match="zdim"):
    networks.ConfNet(zdim=-1)
  with pytest.raises(ValueError, match="output_size"):
    networks.EncoderDecoder(output_size=4)


@pytest.mark.parametrize("size, decoder_blocks", [(64, 8), (32, 8), (16, 6), (8, 4)])
def test_coarse_maps_stop_the_decoder_at_their_size_and_come_out_at_64(size, decoder_blocks):
  net = networks.EncoderDecoder(out_channels=1, nf=8, zdim=16, output_size=size)
  out = net(tf.random.uniform([2, 64, 64, 3], -1.0, 1.0))["output"]
  assert out.shape == (2, 64, 64, 1) and net.num_dec == decoder_blocks


def test_gin_configures_widths_and_gradients_flow():
  with gin.unlock_config():
    gin.parse_config("ConvEncoder.nf = 4\nalbedo/EncoderDecoder.zdim = 8\nalbedo/EncoderDecoder.nf = 4")
  try:
    enc = networks.ConvEncoder(out_dim=6)
    with gin.config_scope("albedo"):
      albedo = networks.EncoderDecoder(out_channels=3, activation="tanh")
  finally:
    gin.clear_config()
  assert enc.nf == 4 and albedo.zdim == 8 and albedo.nf == 4
  images = _images()
  with tf.GradientTape() as tape:
    out = albedo(images)
    loss = tf.reduce_mean(out["output"] ** 2) + tf.reduce_mean(enc(images)["features"])
  grads = tape.gradient(loss, albedo.trainable_weights)
  assert all(g is not None and np.all(np.isfinite(g.numpy())) for g in grads)
