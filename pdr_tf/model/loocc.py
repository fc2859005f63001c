"""Leave-One-Out, Cycle Contrastive loss (LOOCC): physical perturbations, leave-one-out features and NT-Xent.

The paper's recipe (docs/model.md): each step perturbs either the light or the view of the predicted scene,
renders x_aug with every other parameter kept, encodes x_aug again, and pulls together the features of the properties
that did not change (depth, albedo and the unperturbed one of light / view) of x and x_aug with SimCLR's NT-Xent,
negatives gathered from all replicas. The model wires these pure functions together; all randomness is stateless and
seeded, so one `tf.function` serves every step and both perturbation branches.

Seeds are [2] int32/int64 tensors (`tf.random.stateless_*` convention). Use the same seed on every replica for
`choose_perturbation` (all replicas must leave out the same property, as their features are contrasted together) and
`replica_seed(seed)` for the perturbations (independent noise per replica).
"""

import dataclasses
import math
import numbers
from typing import Mapping, Optional, Tuple, Union

import gin
import tensorflow as tf

from pdr_tf.render import scene

MODES = ("none", "light", "light_view")
LIGHT_NOISE = ("released", "clipped")  # LooccConfig.light_noise
RELEASED_BASE_TEMPERATURE = 0.07  # SupConLoss's base_temperature in the released PDR code
FEATURE_KEYS = scene.PROPERTIES
_LARGE = 1e9  # subtracted from self-similarity logits so that exp() is exactly 0


@gin.configurable
@dataclasses.dataclass(frozen=True)
class LooccConfig:
  """LOOCC settings. mode "none" is plain Unsup3D; "light" perturbs the light only; "light_view" picks light or view
  with probability 1/2 each step. Deltas are the half-widths of the uniform perturbations.

  The defaults are the released PDR code's (docs/model.md, section LOOCC): SupConLoss scaling, light noise on (ka,
  kd) and on all three components of the light direction vector without clipping, gradients through the re-render
  (`Objective.backprop_through_render`).

  Attributes:
    mode: one of MODES.
    weight: λ, the LOOCC loss weight (0.01 in the released code).
    temperature: NT-Xent temperature τ.
    base_temperature: the released SupConLoss multiplies the NT-Xent mean by temperature / base_temperature
      (0.5 / 0.07 ~ 7.1); None for the plain mean of the SimCLR paper.
    light_noise: "released": ka, kd += U(-δ, δ) and the light direction vector (lx, ly, 1) += U(-δ_dir, δ_dir) in
      each of its three components, nothing clipped; "clipped": ka, kd clipped to the model's ranges and only lx,
      ly perturbed.
    ka_delta, kd_delta: ambient / diffuse strength perturbation half-widths.
    light_dir_delta: half-width added to each light direction component (π/8).
    pitch_delta, yaw_delta: half-widths added to the view rotations rx (π/16) and ry (π/8), radians.
  """

  mode: str = "none"
  weight: float = 0.01
  temperature: float = 0.5
  base_temperature: Optional[float] = RELEASED_BASE_TEMPERATURE
  light_noise: str = "released"
  ka_delta: float = 0.5
  kd_delta: float = 0.5
  light_dir_delta: float = math.pi / 8
  pitch_delta: float = math.pi / 16
  yaw_delta: float = math.pi / 8

  def __post_init__(self):
    _check_mode(self.mode)
    if not isinstance(self.temperature, (int, float)) or isinstance(self.temperature, bool) or not self.temperature > 0:
      raise ValueError(f"LooccConfig.temperature must be a number > 0, got {self.temperature!r}")
    if self.base_temperature is not None and (
      not isinstance(self.base_temperature, (int, float))
      or isinstance(self.base_temperature, bool)
      or not self.base_temperature > 0
    ):
      raise ValueError(f"LooccConfig.base_temperature must be a number > 0 or None, got {self.base_temperature!r}")
    if self.light_noise not in LIGHT_NOISE:
      raise ValueError(f"LooccConfig.light_noise must be one of {LIGHT_NOISE}, got {self.light_noise!r}")
    for field in ("weight", "ka_delta", "kd_delta", "light_dir_delta", "pitch_delta", "yaw_delta"):
      value = getattr(self, field)
      if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
        raise ValueError(f"LooccConfig.{field} must be a finite number >= 0, got {value!r}")

  @property
  def enabled(self) -> bool:
    return self.mode != "none"

  @property
  def loss_scale(self) -> float:
    """Factor on the NT-Xent mean: temperature / base_temperature (SupConLoss), or 1."""
    return 1.0 if self.base_temperature is None else self.temperature / self.base_temperature


def _check_mode(mode):
  if mode not in MODES:
    raise ValueError(f"LooccConfig.mode must be one of {MODES}, got {mode!r}")


def _check_seed(seed) -> tf.Tensor:
  seed = tf.convert_to_tensor(seed)
  if seed.dtype not in (tf.int32, tf.int64) or seed.shape.rank != 1 or seed.shape[0] not in (2, None):
    raise ValueError(f"seed must be a [2] int32/int64 tensor, got {seed.dtype.name} {seed.shape}")
  return seed


def _check_params(tensor, name, width) -> tf.Tensor:
  tensor = tf.convert_to_tensor(tensor, tf.float32)
  if tensor.shape.rank != 2 or tensor.shape[-1] != width:
    raise ValueError(f"{name} must be [B, {width}], got shape {tensor.shape}")
  return tensor


def _check_range(value, name) -> Tuple[float, float]:
  low, high = (float(v) for v in value)
  if not low <= high:
    raise ValueError(f"{name} must be (low, high) with low <= high, got {value!r}")
  return low, high


def replica_seed(seed) -> tf.Tensor:
  """Folds the replica id into `seed` inside a distribution strategy's replica context; unchanged otherwise."""
  seed = _check_seed(seed)
  if tf.distribute.has_strategy() and not tf.distribute.in_cross_replica_context():
    replica_id = tf.distribute.get_replica_context().replica_id_in_sync_group
    return tf.random.experimental.stateless_fold_in(seed, tf.cast(replica_id, tf.int32))
  return seed


def choose_perturbation(mode: str, seed) -> tf.Tensor:
  """Which parameter this step perturbs.

  Args:
    mode: "light" or "light_view" ("none" has nothing to perturb and raises).
    seed: [2] int seed; "light_view" draws one stateless uniform from it.

  Returns:
    Scalar bool tensor `perturb_view`: always False for "light"; True with probability 1/2 for "light_view".
  """
  _check_mode(mode)
  if mode == "none":
    raise ValueError("LOOCC mode 'none' perturbs nothing: do not call choose_perturbation")
  if mode == "light":
    return tf.constant(False)
  return tf.random.stateless_uniform([], seed=_check_seed(seed)) < 0.5


def perturb_light(
  light, config: LooccConfig, seed, ka_range=(0.0, 1.0), kd_range=(0.0, 1.0), name="perturb_light"
) -> tf.Tensor:
  """Perturbs physical lights as `config.light_noise` says.

  "released": ka, kd += U(-δ, δ); the direction vector (lx, ly, 1) += U(-δ_dir, δ_dir) per component, then written
  back as (lx, ly) with z = 1 (the same direction); nothing clipped. "clipped": ka, kd += U(-δ, δ) clipped to the
  ranges; lx, ly += U(-δ_dir, δ_dir).

  Args:
    light: [B, 4] (ka, kd, lx, ly), direction normalize([lx, ly, 1]).
    config: the half-widths (ka_delta, kd_delta, light_dir_delta) and light_noise.
    seed: [2] int seed.
    ka_range, kd_range: (low, high) ranges of the model's ambient / diffuse strengths ("clipped" only; faces
      (0, 1) and (0, 1), cars (0, 1) and (0.5, 1)).

  Returns:
    [B, 4] perturbed light; differentiable in `light` (zero gradient where clipped).
  """
  with tf.name_scope(name):
    light = _check_params(light, "light", 4)
    ka_low, ka_high = _check_range(ka_range, "ka_range")
    kd_low, kd_high = _check_range(kd_range, "kd_range")
    deltas = tf.constant([config.ka_delta, config.kd_delta] + [config.light_dir_delta] * 3)
    shape = tf.stack([tf.shape(light)[0], 5])
    noise = tf.random.stateless_uniform(shape, seed=_check_seed(seed), minval=-1.0, maxval=1.0) * deltas
    if config.light_noise == "released":
      # The direction vector's z component (1) is perturbed too; ~0.6 at worst for delta pi/8, so positive.
      direction_z = 1.0 + noise[:, 4:5]
      return tf.concat([light[:, 0:2] + noise[:, 0:2], (light[:, 2:4] + noise[:, 2:4]) / direction_z], axis=1)
    ka = tf.clip_by_value(light[:, 0:1] + noise[:, 0:1], ka_low, ka_high)
    kd = tf.clip_by_value(light[:, 1:2] + noise[:, 1:2], kd_low, kd_high)
    return tf.concat([ka, kd, light[:, 2:4] + noise[:, 2:4]], axis=1)


def perturb_view(view, config: LooccConfig, seed, name="perturb_view") -> tf.Tensor:
  """Perturbs views: pitch rx += U(-δ_pitch, δ_pitch), yaw ry += U(-δ_yaw, δ_yaw); rz and translation unchanged.

  Args:
    view: [B, 6] (rx, ry, rz) radians and (tx, ty, tz).
    config: the half-widths (pitch_delta, yaw_delta), radians.
    seed: [2] int seed.

  Returns:
    [B, 6] perturbed view (rotations not clipped).
  """
  with tf.name_scope(name):
    view = _check_params(view, "view", 6)
    deltas = tf.constant([config.pitch_delta, config.yaw_delta, 0.0, 0.0, 0.0, 0.0])
    noise = tf.random.stateless_uniform(tf.shape(view), seed=_check_seed(seed), minval=-1.0, maxval=1.0) * deltas
    return view + noise


def leave_one_out_features(
  features: Mapping[str, tf.Tensor], perturbed: Union[str, bool, tf.Tensor], name="leave_one_out_features"
) -> tf.Tensor:
  """Concatenates the features of the properties a perturbation left unchanged.

  Args:
    features: {"depth", "albedo", "light", "view"} -> [B, D_k] features (other keys are ignored).
    perturbed: "light" -> [depth, albedo, view]; "view" -> [depth, albedo, light]. A bool (Python or scalar tensor,
      `perturb_view` from `choose_perturbation`) selects the same way inside one graph: True means the view was
      perturbed. The tensor form needs equal light and view widths (the paper's are both 256), since the output
      shape may not depend on a runtime value.

  Returns:
    [B, D_depth + D_albedo + D_light_or_view].
  """
  missing = [k for k in FEATURE_KEYS if k not in features]
  if missing:
    raise ValueError(f"features is missing {missing}; expected keys {FEATURE_KEYS}")
  with tf.name_scope(name):
    feats = {k: tf.convert_to_tensor(features[k]) for k in FEATURE_KEYS}
    for key, value in feats.items():
      if value.shape.rank != 2:
        raise ValueError(f"features['{key}'] must be [B, D], got shape {value.shape}")
    if isinstance(perturbed, str):
      if perturbed not in ("light", "view"):
        raise ValueError(f"perturbed must be 'light' or 'view', got {perturbed!r}")
      perturbed = perturbed == "view"
    if isinstance(perturbed, bool):
      kept = feats["light"] if perturbed else feats["view"]
    else:
      perturbed = tf.convert_to_tensor(perturbed)
      if perturbed.dtype != tf.bool or perturbed.shape.rank != 0:
        raise ValueError(f"perturbed must be a scalar bool tensor, got {perturbed.dtype.name} {perturbed.shape}")
      if feats["light"].shape[-1] != feats["view"].shape[-1]:
        raise ValueError(
          "a tensor `perturbed` needs equal light and view feature widths, got "
          f"{feats['light'].shape[-1]} and {feats['view'].shape[-1]}"
        )
      kept = tf.where(perturbed, feats["light"], feats["view"])
    return tf.concat([feats["depth"], feats["albedo"], kept], axis=-1)


def nt_xent(z_a, z_b, temperature: float = 0.5, name="nt_xent") -> dict:
  """SimCLR's NT-Xent over the 2N vectors of N positive pairs (z_a[i], z_b[i]), cosine similarity.

  For anchor a_i the candidates are the other 2N-1 vectors: the positive b_i and 2N-2 negatives; its loss is
  -log(exp(sim(a_i, b_i)/τ) / Σ_{k != a_i} exp(sim(a_i, k)/τ)), and the same for anchor b_i.

  Inside a distribution strategy's replica context (more than one replica) the candidates are the vectors of all
  replicas, gathered with `ReplicaContext.all_gather`, and each replica's anchors are its local pairs, whose positions
  in the gathered batch are offset by the sizes of the replicas before it (google-research/simclr's labels
  `range(N) + replica_id * N`, also correct for unequal local batches). The gradient of `all_gather` sums the upstream
  gradients over replicas and hands each replica the slice of its own vectors, so per-replica gradients, summed by
  the optimizer, equal the single-device gradient of the global loss. Scale once with
  `tf.nn.compute_average_loss(per_example_loss, global_batch_size=global N)`.

  With a single pair in total (N = 1, one replica) there is no negative: the loss is exactly 0 and the accuracy 1.

  Args:
    z_a: [N, D] features of x (any norm; normalised here).
    z_b: [N, D] features of x_aug, paired row by row with z_a.
    temperature: τ > 0.

  Returns:
    {"per_example_loss": [N], the mean of the two anchors' losses; "accuracy": [N], the fraction (0, 0.5 or 1) of
    the two anchors whose nearest candidate is their positive}.
  """
  if not isinstance(temperature, numbers.Real) or not temperature > 0:
    raise ValueError(f"temperature must be a number > 0, got {temperature!r}")
  with tf.name_scope(name):
    z_a, z_b = tf.cast(z_a, tf.float32), tf.cast(z_b, tf.float32)
    if z_a.shape.rank != 2 or not z_a.shape.is_compatible_with(z_b.shape):
      raise ValueError(f"z_a and z_b must both be [N, D] with the same shape, got {z_a.shape} and {z_b.shape}")
    a = tf.math.l2_normalize(z_a, axis=-1)
    b = tf.math.l2_normalize(z_b, axis=-1)
    local_n = tf.shape(a)[0]
    context = tf.distribute.get_replica_context()
    if (
      tf.distribute.has_strategy() and not tf.distribute.in_cross_replica_context() and context.num_replicas_in_sync > 1
    ):
      all_a, all_b = context.all_gather([a, b], axis=0)
      sizes = context.all_gather(tf.reshape(local_n, [1]), axis=0)
      offset = tf.reduce_sum(sizes[: context.replica_id_in_sync_group])
    else:
      all_a, all_b, offset = a, b, 0
    labels = tf.range(local_n) + offset  # where each local pair sits in the gathered batch
    self_mask = tf.one_hot(labels, tf.shape(all_a)[0]) * _LARGE
    self_mask = tf.concat([tf.zeros_like(self_mask), self_mask], 1)
    # Columns: [the other view's vectors (positive at `labels`), the same view's vectors (self masked out)].
    logits_a = tf.concat([tf.matmul(a, all_b, transpose_b=True), tf.matmul(a, all_a, transpose_b=True)], 1)
    logits_b = tf.concat([tf.matmul(b, all_a, transpose_b=True), tf.matmul(b, all_b, transpose_b=True)], 1)
    logits_a = logits_a / temperature - self_mask
    logits_b = logits_b / temperature - self_mask
    loss_a = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits_a)
    loss_b = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits_b)
    hit_a = tf.cast(tf.equal(tf.argmax(logits_a, axis=1, output_type=tf.int32), labels), tf.float32)
    hit_b = tf.cast(tf.equal(tf.argmax(logits_b, axis=1, output_type=tf.int32), labels), tf.float32)
    return {"per_example_loss": 0.5 * (loss_a + loss_b), "accuracy": 0.5 * (hit_a + hit_b)}
