"""VQ-VAE baseline (van den Oord et al., NeurIPS 2017): a discrete-latent autoencoder whose latents are clustered.

The paper (Table 1) compares de-rendering features with a VQ-VAE and only says that the VQ-VAE has "a much larger
latent space". This module fixes the rest:

* Architecture: the paper's own small-image VQ-VAE (two stride-2 4x4 convs, a 3x3 conv, a stack of residual blocks
  ReLU-3x3-ReLU-1x1, a 1x1 projection to D channels), so a 64x64x3 image becomes a 16x16 grid of D-dim latents;
  the decoder mirrors it with two stride-2 transposed convs and ends in tanh (images live in [-1, 1]).
* Codebook learned by gradient (the paper's main variant, not EMA), straight-through estimator, commitment cost
  beta = 0.25; reconstruction loss is the per-pixel MSE.
* Representation for clustering (`embed`): the quantized latent, i.e. the continuous codebook vectors chosen at each
  of the 16x16 positions, average-pooled to a `pool_grid` x `pool_grid` grid (default 4) and flattened, so
  F = pool_grid**2 * D (512 with the defaults) instead of 16*16*D = 8192. Codebook vectors rather than code indices
  because indices are categorical (Euclidean distances between them mean nothing to Ward clustering); pooling keeps
  coarse layout while making F comparable to the de-rendering features. `pool_grid=None` keeps the full grid.
"""

import json
import logging
import os

import keras
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from pdr_tf import graph
from pdr_tf.baselines import image_checks
from pdr_tf.data import formats
from pdr_tf.gin_utils import keras_configurable

logger = logging.getLogger(__name__)

WEIGHTS_SUFFIX = ".weights.h5"
CONFIG_SUFFIX = ".config.json"
DOWNSAMPLING = 4  # the encoder's two stride-2 convs: latent side = image side / 4


def _check_positive_int(name, value):
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
    raise ValueError(f"{name} must be a positive integer, got {value!r}")


class VectorQuantizer(keras.layers.Layer):
  """Nearest-neighbour vector quantization with a learned K x D codebook and a straight-through gradient.

  Losses are returned per example (not added with `add_loss`) so that callers scale them exactly once, e.g. with
  `tf.nn.compute_average_loss` under a distribution strategy.
  """

  def __init__(self, num_embeddings, embedding_dim, commitment_cost=0.25, **kwargs):
    """Creates the layer.

    Args:
      num_embeddings: K, the number of codebook vectors.
      embedding_dim: D, the size of each codebook vector (the channel count of the inputs).
      commitment_cost: beta, the weight of the commitment loss.
      **kwargs: passed to `keras.layers.Layer`.
    """
    super().__init__(**kwargs)
    _check_positive_int("num_embeddings", num_embeddings)
    _check_positive_int("embedding_dim", embedding_dim)
    if commitment_cost < 0:
      raise ValueError(f"commitment_cost must be >= 0, got {commitment_cost}")
    self.num_embeddings = int(num_embeddings)
    self.embedding_dim = int(embedding_dim)
    self.commitment_cost = float(commitment_cost)
    self.codebook = None

  def build(self, input_shape):
    if input_shape[-1] != self.embedding_dim:
      raise ValueError(
        f"VectorQuantizer inputs must have {self.embedding_dim} channels, got shape {tuple(input_shape)}"
      )
    # Uniform in +-1/K as in common reference implementations: small codes that the encoder outputs approach.
    bound = 1.0 / self.num_embeddings
    self.codebook = self.add_weight(
      name="codebook",
      shape=(self.num_embeddings, self.embedding_dim),
      initializer=keras.initializers.RandomUniform(-bound, bound),
      trainable=True,
    )

  def lookup(self, indices):
    """Codebook rows for integer indices.

    Args:
      indices: int tensor [...] with values in [0, K).

    Returns:
      float32 tensor [..., D], exact copies of the codebook rows.
    """
    if self.codebook is None:
      raise ValueError("VectorQuantizer.lookup called before the layer was built")
    return tf.gather(tf.convert_to_tensor(self.codebook), indices)

  def call(self, inputs):
    """Quantizes each D-vector of `inputs` to its nearest codebook row.

    Args:
      inputs: float tensor [B, ..., D], the encoder output z_e.

    Returns:
      A dict of
        quantized:       [B, ..., D] z_e + stop_gradient(e - z_e): values of e (up to float round-off),
                         gradient of the identity with respect to z_e (straight-through);
        indices:         int32 [B, ...], the chosen rows;
        codebook_loss:   [B], mean over positions and channels of (stop_gradient(z_e) - e)^2;
        commitment_loss: [B], mean of (z_e - stop_gradient(e))^2 (not yet multiplied by beta);
        vq_loss:         [B], codebook_loss + beta * commitment_loss;
        perplexity:      scalar, exp(entropy) of the code usage in this batch (K means all codes used evenly).
    """
    z = tf.cast(inputs, tf.float32)
    flat = tf.reshape(z, [-1, self.embedding_dim])
    codebook = tf.convert_to_tensor(self.codebook)
    # ||z - e||^2 = ||z||^2 - 2 z.e + ||e||^2, without materialising the [N, K, D] differences.
    distances = (
      tf.reduce_sum(flat**2, axis=1, keepdims=True)
      - 2.0 * tf.matmul(flat, codebook, transpose_b=True)
      + tf.reduce_sum(codebook**2, axis=1)[tf.newaxis, :]
    )
    flat_indices = tf.argmin(distances, axis=1, output_type=tf.int32)
    indices = tf.reshape(flat_indices, tf.shape(z)[:-1])
    codes = tf.gather(codebook, indices)

    reduce_axes = list(range(1, len(z.shape)))
    codebook_loss = tf.reduce_mean((tf.stop_gradient(z) - codes) ** 2, axis=reduce_axes)
    commitment_loss = tf.reduce_mean((z - tf.stop_gradient(codes)) ** 2, axis=reduce_axes)
    quantized = z + tf.stop_gradient(codes - z)

    usage = tf.reduce_mean(tf.one_hot(flat_indices, self.num_embeddings), axis=0)
    perplexity = tf.exp(-tf.reduce_sum(usage * tf.math.log(usage + 1e-10)))
    return {
      "quantized": quantized,
      "indices": indices,
      "codebook_loss": codebook_loss,
      "commitment_loss": commitment_loss,
      "vq_loss": codebook_loss + self.commitment_cost * commitment_loss,
      "perplexity": perplexity,
    }

  def get_config(self):
    config = super().get_config()
    config.update(
      num_embeddings=self.num_embeddings, embedding_dim=self.embedding_dim, commitment_cost=self.commitment_cost
    )
    return config


class _ResidualBlock(keras.layers.Layer):
  """x + Conv1x1(ReLU(Conv3x3(ReLU(x)))), as in the VQ-VAE paper."""

  def __init__(self, channels, hidden, **kwargs):
    super().__init__(**kwargs)
    self.conv3 = keras.layers.Conv2D(hidden, 3, padding="same", name="conv3x3")
    self.conv1 = keras.layers.Conv2D(channels, 1, name="conv1x1")

  def call(self, x):
    return x + self.conv1(tf.nn.relu(self.conv3(tf.nn.relu(x))))


def _residual_stack(channels, hidden, num_blocks, name):
  layers = [_ResidualBlock(channels, hidden, name=f"res{i}") for i in range(num_blocks)]
  return keras.Sequential(layers + [keras.layers.ReLU()], name=name)


@keras_configurable
class VQVAE(keras.Model):
  """VQ-VAE for [B, H, W, 3] images in [-1, 1] (H, W multiples of 4; 64 in this project).

  Encoder: Conv4x4/2 (hidden/2) ReLU, Conv4x4/2 (hidden) ReLU, Conv3x3 (hidden), residual stack, Conv1x1 to D.
  Decoder: Conv3x3 (hidden), residual stack, ConvT4x4/2 (hidden/2) ReLU, ConvT4x4/2 (3), tanh.
  """

  def __init__(
    self,
    hidden=64,
    res_hidden=32,
    num_res_blocks=2,
    embedding_dim=32,
    num_embeddings=128,
    commitment_cost=0.25,
    **kwargs,
  ):
    """Creates the model.

    Args:
      hidden: channels of the encoder/decoder trunk (the paper uses 256; 64 keeps CPU training practical).
      res_hidden: hidden channels inside each residual block.
      num_res_blocks: residual blocks in the encoder and in the decoder (may be 0).
      embedding_dim: D, channels of the latent grid and size of each codebook vector.
      num_embeddings: K, codebook size.
      commitment_cost: beta of the commitment loss.
      **kwargs: passed to `keras.Model` (e.g. name).
    """
    super().__init__(**kwargs)
    for name, value in (
      ("hidden", hidden),
      ("res_hidden", res_hidden),
      ("embedding_dim", embedding_dim),
      ("num_embeddings", num_embeddings),
    ):
      _check_positive_int(name, value)
    if isinstance(num_res_blocks, bool) or not isinstance(num_res_blocks, (int, np.integer)) or num_res_blocks < 0:
      raise ValueError(f"num_res_blocks must be a non-negative integer, got {num_res_blocks!r}")
    self._config = dict(
      hidden=int(hidden),
      res_hidden=int(res_hidden),
      num_res_blocks=int(num_res_blocks),
      embedding_dim=int(embedding_dim),
      num_embeddings=int(num_embeddings),
      commitment_cost=float(commitment_cost),
    )
    half = max(1, hidden // 2)
    self.encoder = keras.Sequential(
      [
        keras.layers.Conv2D(half, 4, strides=2, padding="same", activation="relu", name="down1"),
        keras.layers.Conv2D(hidden, 4, strides=2, padding="same", activation="relu", name="down2"),
        keras.layers.Conv2D(hidden, 3, padding="same", name="conv"),
        _residual_stack(hidden, res_hidden, num_res_blocks, name="res_stack"),
        keras.layers.Conv2D(embedding_dim, 1, name="pre_quantize"),
      ],
      name="encoder",
    )
    self.quantizer = VectorQuantizer(num_embeddings, embedding_dim, commitment_cost, name="quantizer")
    self.decoder = keras.Sequential(
      [
        keras.layers.Conv2D(hidden, 3, padding="same", name="conv"),
        _residual_stack(hidden, res_hidden, num_res_blocks, name="res_stack"),
        keras.layers.Conv2DTranspose(half, 4, strides=2, padding="same", activation="relu", name="up1"),
        keras.layers.Conv2DTranspose(3, 4, strides=2, padding="same", activation="tanh", name="up2"),
      ],
      name="decoder",
    )

  def call(self, images, training=False):
    """Encodes, quantizes and decodes.

    Args:
      images: float [B, H, W, 3] in [-1, 1], H and W multiples of 4.
      training: unused (no dropout or normalization); kept for the Keras signature.

    Returns:
      A dict of reconstruction [B, H, W, 3] in [-1, 1], z_e and quantized [B, H/4, W/4, D], indices int32
      [B, H/4, W/4], and the quantizer's per-example losses codebook_loss, commitment_loss, vq_loss [B] and
      scalar perplexity (see `VectorQuantizer.call`).
    """
    shape = images.shape
    if len(shape) != 4 or shape[-1] != 3 or any(s is not None and s % DOWNSAMPLING for s in shape[1:3]):
      raise ValueError(
        f"VQVAE images must be [B, H, W, 3] with H and W multiples of {DOWNSAMPLING}, got shape {tuple(shape)}"
      )
    z_e = self.encoder(tf.cast(images, tf.float32))
    vq = self.quantizer(z_e)
    outputs = dict(vq)
    outputs["z_e"] = z_e
    outputs["reconstruction"] = self.decoder(vq["quantized"])
    return outputs

  def get_config(self):
    return dict(self._config, name=self.name)

  @classmethod
  def from_config(cls, config):
    return cls(**config)


def vqvae_losses(images, outputs):
  """Per-example VQ-VAE losses (pure function).

  Args:
    images: float [B, H, W, 3] in [-1, 1], the model's input and the reconstruction target.
    outputs: the dict returned by `VQVAE.call` on `images`.

  Returns:
    A dict of [B] tensors: recon_loss (mean squared error per pixel and channel), vq_loss, and
    loss = recon_loss + vq_loss.
  """
  recon = tf.reduce_mean((outputs["reconstruction"] - tf.cast(images, tf.float32)) ** 2, axis=[1, 2, 3])
  return {"recon_loss": recon, "vq_loss": outputs["vq_loss"], "loss": recon + outputs["vq_loss"]}


def train_vqvae(dataset, steps, learning_rate=2e-4, seed=0, log_every=100, model=None, progress=True):
  """Trains a VQ-VAE with Adam in a plain custom loop (one tf.function step, no distribution strategy).

  Args:
    dataset: tf.data.Dataset of dicts with "image": float [B, H, W, 3] in [-1, 1] (other keys are ignored). It is
      repeated, so a finite dataset is cycled through until `steps` batches have been used.
    steps: number of optimizer steps (>= 1).
    learning_rate: Adam learning rate (2e-4 as in the VQ-VAE paper).
    seed: seeds Python, NumPy and TF (`keras.utils.set_random_seed`) before the model is built, so that a fresh
      model's initialisation is reproducible. Note that this sets the process-wide seeds.
    log_every: every this many steps, the losses averaged over the last interval are logged and put in `history`.
    model: a `VQVAE` to continue training (with a fresh Adam state); by default a new `VQVAE()`
      (gin-configurable).
    progress: show a tqdm progress bar.

  Returns:
    (model, history): the trained model and a dict of lists: step, loss, recon_loss, vq_loss, perplexity
    (interval means; the last entry covers the final, possibly shorter interval).
  """
  _check_positive_int("steps", steps)
  _check_positive_int("log_every", log_every)
  if not learning_rate > 0:
    raise ValueError(f"learning_rate must be > 0, got {learning_rate}")
  spec = dataset.element_spec
  if not isinstance(spec, dict) or "image" not in spec:
    raise ValueError(f"dataset must yield dicts with an 'image' key, got element_spec {spec}")
  image_shape = spec["image"].shape
  if image_shape.rank != 4 or image_shape[-1] != 3:
    raise ValueError(f"dataset 'image' must be [B, H, W, 3], got {image_shape}")

  keras.utils.set_random_seed(seed)
  iterator = iter(dataset.repeat())
  first = next(iterator)["image"]
  image_checks.check_model_range("dataset 'image'", first.numpy())
  if model is None:
    model = VQVAE()
  model(first[:1])  # builds the weights before the optimizer tracks them
  optimizer = keras.optimizers.Adam(learning_rate)
  optimizer.build(model.trainable_variables)

  @graph.function(reduce_retracing=True)
  def train_step(images):
    with tf.GradientTape() as tape:
      outputs = model(images, training=True)
      losses = vqvae_losses(images, outputs)
      loss = tf.reduce_mean(losses["loss"])
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return {
      "loss": loss,
      "recon_loss": tf.reduce_mean(losses["recon_loss"]),
      "vq_loss": tf.reduce_mean(losses["vq_loss"]),
      "perplexity": outputs["perplexity"],
    }

  keys = ("loss", "recon_loss", "vq_loss", "perplexity")
  history = {"step": [], **{k: [] for k in keys}}
  sums = dict.fromkeys(keys, 0.0)
  count = 0
  bar = tqdm(range(1, steps + 1), desc="vqvae", disable=not progress)
  batch = first
  for step in bar:
    if step > 1:
      batch = next(iterator)["image"]
    metrics = {k: float(v) for k, v in train_step(tf.cast(batch, tf.float32)).items()}
    for k in keys:
      sums[k] += metrics[k]
    count += 1
    if step % log_every == 0 or step == steps:
      history["step"].append(step)
      for k in keys:
        history[k].append(sums[k] / count)
      logger.info(
        "vqvae step %d/%d: loss %.5f recon %.5f vq %.5f perplexity %.1f", step, steps, *(history[k][-1] for k in keys)
      )
      bar.set_postfix(loss=f"{history['loss'][-1]:.4f}", ppl=f"{history['perplexity'][-1]:.1f}")
      sums = dict.fromkeys(keys, 0.0)
      count = 0
  return model, history


def embed(model, images, batch_size=64, pool_grid=4):
  """Clustering features of a VQ-VAE: the quantized latent (codebook vectors), average-pooled and flattened.

  Args:
    model: a built or unbuilt `VQVAE`.
    images: float array [N, H, W, 3] in [-1, 1] (H = W = 64 in this project).
    batch_size: images per forward pass.
    pool_grid: side G of the pooled grid; must divide the latent side H/4. None keeps the full latent grid.

  Returns:
    float32 np.ndarray [N, G*G*D] (or [N, (H/4)*(W/4)*D] with pool_grid=None), deterministic for fixed weights.
  """
  images = np.asarray(images)
  if images.ndim != 4 or images.shape[-1] != 3 or images.shape[1] % DOWNSAMPLING or images.shape[2] % DOWNSAMPLING:
    raise ValueError(f"images must be [N, H, W, 3] with H and W multiples of {DOWNSAMPLING}, got shape {images.shape}")
  if images.shape[0] == 0:
    raise ValueError("images is empty (N = 0)")
  if not np.issubdtype(images.dtype, np.floating):
    raise ValueError(f"images must be floating point in [-1, 1], got dtype {images.dtype}")
  image_checks.check_model_range("images", images)
  _check_positive_int("batch_size", batch_size)
  latent_h, latent_w = images.shape[1] // DOWNSAMPLING, images.shape[2] // DOWNSAMPLING
  if pool_grid is not None:
    _check_positive_int("pool_grid", pool_grid)
    if latent_h % pool_grid or latent_w % pool_grid:
      raise ValueError(f"pool_grid={pool_grid} must divide the latent grid {latent_h}x{latent_w}")

  @graph.function(reduce_retracing=True)
  def features(batch):
    indices = model(batch, training=False)["indices"]
    # Exact codebook rows (the straight-through output differs from them by float round-off).
    codes = model.quantizer.lookup(indices)
    if pool_grid is not None:
      codes = tf.nn.avg_pool2d(
        codes,
        ksize=(latent_h // pool_grid, latent_w // pool_grid),
        strides=(latent_h // pool_grid, latent_w // pool_grid),
        padding="VALID",
      )
    return tf.reshape(codes, [tf.shape(codes)[0], -1])

  chunks = [
    features(tf.constant(images[i : i + batch_size], tf.float32)).numpy() for i in range(0, len(images), batch_size)
  ]
  return np.concatenate(chunks, axis=0).astype(np.float32)


def _config_path(weights_path):
  return weights_path[: -len(WEIGHTS_SUFFIX)] + CONFIG_SUFFIX


def save_vqvae(model, path):
  """Writes the weights to `path` (must end in .weights.h5) and the constructor config beside it.

  Args:
    model: a `VQVAE`; it is built on a dummy 64x64 batch first if needed.
    path: file path ending in ".weights.h5"; the config goes to the same stem with ".config.json".

  Returns:
    (weights_path, config_path) as strings.
  """
  path = os.fspath(path)
  if not path.endswith(WEIGHTS_SUFFIX):
    raise ValueError(f"VQ-VAE weights path must end with {WEIGHTS_SUFFIX!r}, got {path!r}")
  if not model.built:
    model(tf.zeros([1, formats.IMAGE_SIZE, formats.IMAGE_SIZE, 3]))
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  model.save_weights(path)
  config_path = _config_path(path)
  with open(config_path, "w", encoding="utf-8") as f:
    json.dump(model.get_config(), f, indent=2, sort_keys=True)
  return path, config_path


def load_vqvae(path):
  """Rebuilds a `VQVAE` from the config beside `path` and loads its weights.

  Args:
    path: the ".weights.h5" file written by `save_vqvae`.

  Returns:
    The built `VQVAE`.
  """
  path = os.fspath(path)
  if not path.endswith(WEIGHTS_SUFFIX):
    raise ValueError(f"VQ-VAE weights path must end with {WEIGHTS_SUFFIX!r}, got {path!r}")
  config_path = _config_path(path)
  for p in (path, config_path):
    if not os.path.exists(p):
      raise FileNotFoundError(f"VQ-VAE file not found: {p}")
  with open(config_path, encoding="utf-8") as f:
    config = json.load(f)
  model = VQVAE.from_config(config)
  model(tf.zeros([1, formats.IMAGE_SIZE, formats.IMAGE_SIZE, 3]))
  model.load_weights(path)
  return model
