"""Tests for pdr_tf.baselines.vqvae: quantizer math, model shapes, training, embeddings and save/load."""

import gin
import numpy as np
import pytest
import tensorflow as tf

from pdr_tf.baselines import vqvae

TINY = dict(hidden=16, res_hidden=8, num_res_blocks=1, embedding_dim=8, num_embeddings=16)


def coloured_squares(n, seed=0):
  """[n, 64, 64, 3] images in [-1, 1]: one random-colour square on a black background each."""
  rng = np.random.default_rng(seed)
  images = np.full((n, 64, 64, 3), -1.0, np.float32)
  for i in range(n):
    side = rng.integers(12, 28)
    y, x = rng.integers(0, 64 - side, 2)
    images[i, y : y + side, x : x + side] = rng.uniform(-1, 1, 3)
  return images


def tiny_model(seed=0):
  tf.keras.utils.set_random_seed(seed)
  model = vqvae.VQVAE(**TINY)
  model(tf.zeros([1, 64, 64, 3]))
  return model


# ---------------------------------------------------------------------------------------------------------------
# VectorQuantizer


def test_quantizer_picks_nearest_codebook_row():
  layer = vqvae.VectorQuantizer(num_embeddings=5, embedding_dim=3)
  z = tf.random.stateless_normal([2, 4, 4, 3], seed=[1, 2]) * 0.3
  out = layer(z)
  codebook = layer.codebook.numpy()
  flat = z.numpy().reshape(-1, 3)
  expected = np.argmin(((flat[:, None, :] - codebook[None]) ** 2).sum(-1), axis=1).reshape(2, 4, 4)
  np.testing.assert_array_equal(out["indices"].numpy(), expected)
  # The straight-through output carries the codebook rows' values (up to float round-off of z + (e - z)).
  np.testing.assert_allclose(out["quantized"].numpy(), codebook[expected], atol=1e-6)
  np.testing.assert_array_equal(layer.lookup(out["indices"]).numpy(), codebook[expected])


def test_quantizer_losses_per_example_and_perplexity():
  layer = vqvae.VectorQuantizer(num_embeddings=4, embedding_dim=2, commitment_cost=0.25)
  layer.build((None, 2))
  layer.codebook.assign(np.array([[0, 0], [1, 0], [0, 1], [1, 1]], np.float32))
  # Example 0 sits exactly on codes 0 and 3; example 1 is 0.1 off codes 1 and 2 in one coordinate.
  z = tf.constant([[[0.0, 0.0], [1.0, 1.0]], [[1.1, 0.0], [0.0, 0.9]]])
  out = layer(z)
  np.testing.assert_array_equal(out["indices"].numpy(), [[0, 3], [1, 2]])
  np.testing.assert_allclose(out["codebook_loss"].numpy(), [0.0, 0.01 / 2], rtol=1e-5)  # mean over 2 pos x 2 ch
  np.testing.assert_allclose(out["commitment_loss"].numpy(), [0.0, 0.005], rtol=1e-5)
  np.testing.assert_allclose(out["vq_loss"].numpy(), [0.0, 0.005 * 1.25], rtol=1e-5)
  np.testing.assert_allclose(float(out["perplexity"]), 4.0, rtol=1e-5)  # all four codes used equally


def test_quantizer_straight_through_gradient_is_identity():
  layer = vqvae.VectorQuantizer(num_embeddings=8, embedding_dim=4)
  z = tf.Variable(tf.random.stateless_normal([2, 3, 3, 4], seed=[3, 4]))
  weights = tf.random.stateless_normal([2, 3, 3, 4], seed=[5, 6])
  with tf.GradientTape(persistent=True) as tape:
    out = layer(z)
    objective = tf.reduce_sum(out["quantized"] * weights)
    vq = tf.reduce_sum(out["vq_loss"])
  np.testing.assert_allclose(tape.gradient(objective, z).numpy(), weights.numpy(), atol=1e-6)
  # The codebook is trained by the codebook loss, the encoder output by the commitment loss.
  assert np.abs(tf.convert_to_tensor(tape.gradient(vq, layer.codebook)).numpy()).sum() > 0
  assert np.abs(tape.gradient(vq, z).numpy()).sum() > 0


def test_quantizer_rejects_wrong_channels():
  layer = vqvae.VectorQuantizer(num_embeddings=8, embedding_dim=4)
  with pytest.raises(ValueError, match="4 channels"):
    layer(tf.zeros([1, 2, 2, 5]))
  with pytest.raises(ValueError, match="num_embeddings"):
    vqvae.VectorQuantizer(num_embeddings=0, embedding_dim=4)


# ---------------------------------------------------------------------------------------------------------------
# VQVAE


def test_default_model_shapes():
  model = vqvae.VQVAE()
  out = model(tf.zeros([2, 64, 64, 3]))
  assert out["reconstruction"].shape == (2, 64, 64, 3)
  assert out["z_e"].shape == (2, 16, 16, 32)
  assert out["quantized"].shape == (2, 16, 16, 32)
  assert out["indices"].shape == (2, 16, 16)
  assert out["vq_loss"].shape == (2,)
  assert model.quantizer.codebook.shape == (128, 32)
  recon = out["reconstruction"].numpy()
  assert recon.min() >= -1 and recon.max() <= 1  # tanh output


def test_model_rejects_bad_images():
  model = vqvae.VQVAE(**TINY)
  with pytest.raises(ValueError, match="multiples of 4"):
    model(tf.zeros([1, 62, 62, 3]))
  with pytest.raises(ValueError, match=r"\[B, H, W, 3\]"):
    model(tf.zeros([1, 64, 64, 1]))


def test_gin_binds_constructor_arguments():
  with gin.unlock_config():
    gin.parse_config("VQVAE.embedding_dim = 6\nVQVAE.num_embeddings = 10")
  try:
    model = vqvae.VQVAE(hidden=8, res_hidden=4, num_res_blocks=0)
    out = model(tf.zeros([1, 64, 64, 3]))
  finally:
    gin.clear_config()
  assert model.quantizer.codebook.shape == (10, 6)
  assert out["z_e"].shape == (1, 16, 16, 6)


def test_straight_through_gradient_reaches_encoder():
  model = tiny_model()
  images = tf.constant(coloured_squares(2))
  with tf.GradientTape() as tape:
    out = model(images, training=True)
    recon = tf.reduce_mean(vqvae.vqvae_losses(images, out)["recon_loss"])
  grads = tape.gradient(recon, model.encoder.trainable_variables)
  assert grads and all(g is not None for g in grads)
  assert all(np.abs(g.numpy()).sum() > 0 for g in grads)


def test_losses_are_per_example_and_consistent():
  model = tiny_model()
  images = tf.constant(coloured_squares(3))
  out = model(images)
  losses = vqvae.vqvae_losses(images, out)
  expected_recon = ((out["reconstruction"].numpy() - images.numpy()) ** 2).mean(axis=(1, 2, 3))
  np.testing.assert_allclose(losses["recon_loss"].numpy(), expected_recon, rtol=1e-5)
  np.testing.assert_allclose(losses["loss"].numpy(), expected_recon + out["vq_loss"].numpy(), rtol=1e-5)


def test_training_reduces_reconstruction_loss():
  images = coloured_squares(32)
  dataset = tf.data.Dataset.from_tensor_slices({"image": images, "label": np.arange(32)}).batch(8)
  model = vqvae.VQVAE(**TINY)
  model, history = vqvae.train_vqvae(
    dataset, steps=30, learning_rate=2e-3, seed=0, log_every=5, model=model, progress=False
  )
  assert history["step"] == [5, 10, 15, 20, 25, 30]
  assert set(history) == {"step", "loss", "recon_loss", "vq_loss", "perplexity"}
  assert all(np.isfinite(v) for k in history for v in history[k])
  assert history["recon_loss"][-1] < 0.5 * history["recon_loss"][0]


def test_train_rejects_bad_datasets():
  plain = tf.data.Dataset.from_tensor_slices(np.zeros([4, 64, 64, 3], np.float32)).batch(2)
  with pytest.raises(ValueError, match="'image' key"):
    vqvae.train_vqvae(plain, steps=1, progress=False)
  wrong_range = tf.data.Dataset.from_tensor_slices({"image": np.full([4, 64, 64, 3], 255.0, np.float32)}).batch(2)
  with pytest.raises(ValueError, match=r"\[-1, 1\]"):
    vqvae.train_vqvae(wrong_range, steps=1, progress=False)
  good = tf.data.Dataset.from_tensor_slices({"image": np.zeros([4, 64, 64, 3], np.float32)}).batch(2)
  with pytest.raises(ValueError, match="steps"):
    vqvae.train_vqvae(good, steps=0, progress=False)


# ---------------------------------------------------------------------------------------------------------------
# embed, save / load


def test_embed_shape_pooling_and_determinism():
  model = tiny_model()
  images = coloured_squares(5, seed=1)
  pooled = vqvae.embed(model, images, batch_size=2)
  assert pooled.shape == (5, 4 * 4 * 8) and pooled.dtype == np.float32
  np.testing.assert_array_equal(pooled, vqvae.embed(model, images, batch_size=3))
  full = vqvae.embed(model, images, batch_size=4, pool_grid=None)
  assert full.shape == (5, 16 * 16 * 8)
  # Pooling is the mean of the 4x4 blocks of codebook vectors.
  grid = full.reshape(5, 16, 16, 8)
  expected = grid.reshape(5, 4, 4, 4, 4, 8).mean(axis=(2, 4)).reshape(5, -1)
  np.testing.assert_allclose(pooled, expected, atol=1e-6)
  # Every full-grid vector is a codebook row.
  codebook = model.quantizer.codebook.numpy()
  dists = ((grid.reshape(-1, 8)[:, None, :] - codebook[None]) ** 2).sum(-1).min(axis=1)
  np.testing.assert_array_equal(dists, 0.0)
  assert vqvae.embed(model, images, pool_grid=1).shape == (5, 8)


def test_embed_rejects_bad_inputs():
  model = tiny_model()
  with pytest.raises(ValueError, match=r"\[-1, 1\]"):
    vqvae.embed(model, np.full([2, 64, 64, 3], 200.0, np.float32))
  with pytest.raises(ValueError, match="floating point"):
    vqvae.embed(model, np.zeros([2, 64, 64, 3], np.uint8))
  with pytest.raises(ValueError, match="shape"):
    vqvae.embed(model, np.zeros([2, 64, 64], np.float32))
  with pytest.raises(ValueError, match="pool_grid"):
    vqvae.embed(model, np.zeros([2, 64, 64, 3], np.float32), pool_grid=3)


def test_save_load_round_trip(tmp_path):
  model = tiny_model(seed=3)
  images = coloured_squares(4, seed=2)
  weights, config = vqvae.save_vqvae(model, tmp_path / "sub" / "vq.weights.h5")
  assert weights.endswith("vq.weights.h5") and config.endswith("vq.config.json")
  loaded = vqvae.load_vqvae(weights)
  assert loaded.get_config() == model.get_config()
  np.testing.assert_array_equal(vqvae.embed(loaded, images), vqvae.embed(model, images))
  np.testing.assert_array_equal(loaded(images)["reconstruction"].numpy(), model(images)["reconstruction"].numpy())


def test_save_load_errors(tmp_path):
  model = tiny_model()
  with pytest.raises(ValueError, match=r"\.weights\.h5"):
    vqvae.save_vqvae(model, tmp_path / "vq.h5")
  with pytest.raises(FileNotFoundError, match="missing.weights.h5"):
    vqvae.load_vqvae(tmp_path / "missing.weights.h5")
