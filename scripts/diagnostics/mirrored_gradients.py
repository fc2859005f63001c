"""Why MirroredStrategy's LOOCC gradients differ from one device's at the PyTorch-style initialisation.

`python scripts/diagnostics/mirrored_gradients.py` (about 1 minute on 2 CPU cores) builds the distribution test's tiny
model (nf 8, zdim 16, the shipped initialisation, LOOCC "light" with zero perturbation widths) on 4 random images and
prints, in order:

1. how far the predicted scene of the same images lies apart in a batch of 4 and in a batch of 2, and the first
   decoder layer of the albedo network where the batch size changes the result;
2. the largest difference of x_aug (LOOCC's re-render) between 2 replicas of 2 images and one device with 4, and how
   many LeakyReLU pre-activations of the albedo network's encoder change sign between the two x_augs;
3. the largest gradient difference, relative to the gradient's maximum, between the replicas' summed gradients and
   the single-device gradient: with the networks run on all 4 images at once, and with every network call made on
   replica-sized halves (the reference `tests/test_distributed.py` uses); and, for scale, how far the one-device
   gradient moves when the images move by Gaussian noise of 1e-6.

docs/investigations.md ("Distributed gradients at initialisation") has the numbers and what they mean.
`tests/test_distributed.py` runs this script and requires the replica-shaped reference to match the replicas: the
check that MirroredStrategy's reduction (per-replica gradients of `compute_average_loss`, NT-Xent's negatives
gathered from every replica) gives the single-device gradient of the global loss.
"""

import json

import numpy as np
import tensorflow as tf

_CPU = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(_CPU, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402  (logical devices must be configured before anything else runs)

from pdr_tf.model import de_renderer  # noqa: E402
from pdr_tf.model import loocc  # noqa: E402
from pdr_tf.model import losses  # noqa: E402
from pdr_tf.model import objective  # noqa: E402

GLOBAL_BATCH, LOCAL_BATCH = 4, 2
IMAGES = tf.random.stateless_uniform([GLOBAL_BATCH, 64, 64, 3], [3, 4], -1.0, 1.0)
SEED = tf.constant([0, 7], tf.int64)
# Zero perturbation widths: each replica draws its own perturbation noise (`loocc.replica_seed`), so only without
# noise do the replicas and the single device render the same x_aug; the negatives still come from every replica.
CONFIG = loocc.LooccConfig(mode="light", ka_delta=0.0, kd_delta=0.0, light_dir_delta=0.0)


def build():
  keras.utils.set_random_seed(0)
  model = de_renderer.DeRenderer(nf=8, zdim=16, encoder_nf=8)
  model.build_for_inference()
  return model, objective.Objective(weights=losses.ReconstructionWeights.cars(), loocc_config=CONFIG)


class ReplicaShaped:
  """The model with its network calls made on replica-sized chunks of the batch, outputs concatenated."""

  def __init__(self, model):
    self.model = model

  def __getattr__(self, name):
    return getattr(self.model, name)

  def _chunks(self, fn, images, **kwargs):
    parts = [fn(images[i : i + LOCAL_BATCH], **kwargs) for i in range(0, GLOBAL_BATCH, LOCAL_BATCH)]
    return tf.nest.map_structure(lambda *t: tf.concat(t, 0), *parts)

  def __call__(self, images, **kwargs):
    return self._chunks(self.model, images, **kwargs)

  def encode(self, images, **kwargs):
    return self._chunks(self.model.encode, images, **kwargs)


def max_abs(a, b) -> float:
  return float(tf.reduce_max(tf.abs(a - b)))


def batch_dependence(model) -> None:
  full = model.predict_scene(IMAGES, training=True)
  half = model.predict_scene(IMAGES[:LOCAL_BATCH], training=True)
  for key in ("depth", "albedo", "light", "view"):
    print(f"  {key}: batch 4 vs 2, largest difference {max_abs(full[key][:LOCAL_BATCH], half[key]):.3g}")
  step = np.median(np.abs(np.diff(full["depth"].numpy(), axis=2)))
  print(f"  neighbouring depths lie a median {step:.3g} apart")
  net, x = model.albedo_net, IMAGES
  for i in range(net.num_enc + net.num_dec):
    block = getattr(net, f"enc{i}" if i < net.num_enc else f"dec{i - net.num_enc}")
    conv = block.layer(x)
    differs = [max_abs(conv[:LOCAL_BATCH], block.layer(x[:LOCAL_BATCH]))]
    if block.norm is not None:
      differs.append(max_abs(block.norm(conv)[:LOCAL_BATCH], block.norm(conv[:LOCAL_BATCH])))
    if max(differs) > 0:
      norm = f", its GroupNorm {differs[1]:.3g}" if len(differs) > 1 else ""
      print(f"  first batch-dependent albedo_net layer: {block.name} (its convolution {differs[0]:.3g}{norm})")
      break
    x = block(x)
  else:
    print("  no albedo_net layer gives a batch-dependent result on this machine")


def gradients(model, obj, images, reference=False):
  """(loss, gradients, x_aug) of the global loss over `images`."""
  with tf.GradientTape() as tape:
    out = obj(ReplicaShaped(model) if reference else model, images, SEED)
    loss = tf.nn.compute_average_loss(out["total"], global_batch_size=GLOBAL_BATCH)
  return loss, tape.gradient(loss, model.trainable_variables), out["augmented"]["image"]


def encoder_sign_flips(model, x_a, x_b) -> int:
  net, flips = model.albedo_net, 0
  for i in range(net.num_enc):
    block = getattr(net, f"enc{i}")
    pre_a, pre_b = block.layer(x_a), block.layer(x_b)
    if block.norm is not None:
      pre_a, pre_b = block.norm(pre_a), block.norm(pre_b)
    flips += int(tf.reduce_sum(tf.cast((pre_a > 0) != (pre_b > 0), tf.int32)))
    x_a, x_b = block(x_a), block(x_b)
  return flips


def relative_error(reference, other) -> float:
  return max(float(tf.reduce_max(tf.abs(a - b)) / (tf.reduce_max(tf.abs(a)) + 1e-12)) for a, b in zip(reference, other))


def main() -> dict:
  """Prints the three measurements and returns their figures (the last line, `RESULT {...}`, holds them as JSON)."""
  single, single_objective = build()
  print("1. the same images in a batch of 4 and of 2 (one device):")
  batch_dependence(single)

  strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
  with strategy.scope():
    mirrored, mirrored_objective = build()
  mirrored.set_weights(single.get_weights())
  per_replica = strategy.experimental_distribute_values_from_function(
    lambda ctx: IMAGES[LOCAL_BATCH * ctx.replica_id_in_sync_group : LOCAL_BATCH * (ctx.replica_id_in_sync_group + 1)]
  )

  @tf.function
  def replica_fn(images):
    return gradients(mirrored, mirrored_objective, images)

  loss, grads, x_aug = strategy.run(replica_fn, args=(per_replica,))
  mirrored_loss = float(strategy.reduce("SUM", loss, axis=None))
  mirrored_grads = [strategy.reduce("SUM", g, axis=None) for g in grads]
  mirrored_x_aug = tf.concat(strategy.experimental_local_results(x_aug), 0)

  plain_loss, plain_grads, plain_x_aug = gradients(single, single_objective, IMAGES)
  shaped_loss, shaped_grads, shaped_x_aug = gradients(single, single_objective, IMAGES, reference=True)
  print("2. x_aug, 2 replicas against one device:")
  print(
    f"  largest difference {max_abs(mirrored_x_aug, plain_x_aug):.3g} (replica-shaped reference: "
    f"{max_abs(mirrored_x_aug, shaped_x_aug):.3g})"
  )
  print(
    f"  albedo_net encoder pre-activations changing sign: {encoder_sign_flips(single, plain_x_aug, mirrored_x_aug)}"
  )
  print("3. gradients, replicas summed against one device (largest difference / largest gradient, over variables):")
  print(
    f"  losses: replicas {mirrored_loss:.7f}, one device {float(plain_loss):.7f},"
    f" replica-shaped {float(shaped_loss):.7f}"
  )
  noise = tf.random.stateless_normal(IMAGES.shape, [9, 9]) * 1e-6
  _, noisy_grads, _ = gradients(single, single_objective, IMAGES + noise, reference=True)
  result = {
    "replicas": strategy.num_replicas_in_sync,
    "mirrored_loss": mirrored_loss,
    "single_loss": float(plain_loss),
    "replica_shaped_loss": float(shaped_loss),
    "all_at_once_error": relative_error(plain_grads, mirrored_grads),
    "replica_shaped_error": relative_error(shaped_grads, mirrored_grads),
    "input_noise_error": relative_error(shaped_grads, noisy_grads),
  }
  print(f"  networks on all 4 images at once: {result['all_at_once_error']:.3g}")
  print(f"  networks on replica-sized halves: {result['replica_shaped_error']:.3g}")
  print(
    f"  one device against itself with the images moved by Gaussian noise of 1e-6: {result['input_noise_error']:.3g}"
  )
  print("RESULT " + json.dumps(result))
  return result


if __name__ == "__main__":
  main()
