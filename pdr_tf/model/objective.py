"""The training objective: Unsup3D reconstruction loss plus λ · LOOCC, as per-example losses.

Every term is a [B] per-example tensor, so the trainer scales the total exactly once with
`tf.nn.compute_average_loss(per_example, global_batch_size)` under any distribution strategy. LOOCC negatives come
from all replicas through `loocc.nt_xent`.

LOOCC step (docs/model.md): perturb the predicted light or view (one choice per step, the same on every
replica), re-render x_aug with every other parameter kept, encode x_aug with all encoders, and contrast the
unchanged properties' features of x and x_aug. Pixels the re-render does not cover keep the input image, so only
the perturbed property changes. As in the released code the cycle's gradients flow through the re-render into the
predicted scene and the decoders; `backprop_through_render=False` treats x_aug as data, so LOOCC trains only the
encoders.
"""

import dataclasses
import logging
import math
from typing import Dict

import gin
import tensorflow as tf

from pdr_tf.model import losses
from pdr_tf.model import loocc
from pdr_tf.model import perceptual

logger = logging.getLogger(__name__)


def _term_weight(name, value, mode, modes, perturbed) -> float:
  """The weight of an extra term that reads LOOCC's x_aug, as a float; refuses a bad number, and a positive weight
  when the LOOCC mode (`mode`) is not one of `modes`, the ones that make `perturbed` ("light" or "view")
  perturbations."""
  if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
    raise ValueError(f"Objective.{name} must be a finite number >= 0, got {value!r}")
  if value > 0 and mode not in modes:
    raise ValueError(
      f"Objective.{name}={value} needs {perturbed} perturbations (LooccConfig.mode "
      f"{' or '.join(repr(m) for m in modes)}), got mode {mode!r}"
    )
  return float(value)


def _on_light_steps(augmented, term):
  """`term` [B] where LOOCC perturbed the light this step, zeros where it perturbed the view."""
  return tf.where(augmented["perturb_view"], tf.zeros_like(term), term)


@gin.configurable
class Objective:
  """Computes per-example loss terms for a batch.

  Args:
    weights: reconstruction loss weights (gin: ReconstructionWeights).
    loocc_config: LOOCC settings (gin: LooccConfig).
    perceptual_features: a `perceptual.PerceptualFeatures`; disabled (and λ_perc forced to 0) when it has no
      weights file.
    backprop_through_render: let LOOCC gradients flow through the re-rendered x_aug into the predicted scene (the
      released code's behaviour).
    view_cycle_weight: weight of the view cycle (0: off; not in the paper). On the steps where LOOCC perturbs the
      view, the view encoder must read the perturbed tilts back from x_aug: mean |view(x_aug) - (view + Δ)| over
      rx and ry (radians), with x_aug and the target held fixed, so the term trains the view encoder only.
    light_cycle_weight: weight of the light cycle (0: off; not in the paper). On the steps where LOOCC perturbs the
      light, the light encoder must read the perturbed direction back from x_aug: mean |light(x_aug) - (light + Δ)|
      over lx, ly, with x_aug and the target held fixed, so the term trains the light encoder only.
    light_invariance_weight: weight of the view's invariance to the light (0: off; not in the paper). On the steps
      where LOOCC perturbs the light, the view encoder must see the same view in x_aug as in x: mean |view(x_aug) -
      view(x)| over rx, ry, rz (radians), with x_aug and view(x) held fixed, so the term trains the view encoder
      only. It stops the view from explaining a side light by turning and shifting the face (docs/investigations.md).
    albedo_invariance_weight: weight of the albedo's invariance to the light (0: off; not in the paper). On the
      steps where LOOCC perturbs the light, the albedo network must give x_aug the albedo it gave x: mean
      |albedo(x_aug) - albedo(x)| (`losses.albedo_l1`), with x_aug and albedo(x) held fixed, so the term trains the
      albedo network only. A vertical light's shading is left-right symmetric on a symmetric shape, so the flip
      loss lets the albedo carry it at no cost (docs/investigations.md); this term asks the albedo not to change with
      the light, as a real albedo does not.
  """

  def __init__(
    self,
    weights=None,
    loocc_config=None,
    perceptual_features=None,
    backprop_through_render=True,
    view_cycle_weight=0.0,
    light_cycle_weight=0.0,
    light_invariance_weight=0.0,
    albedo_invariance_weight=0.0,
  ):
    self.weights = weights if weights is not None else losses.ReconstructionWeights()
    self.loocc = loocc_config if loocc_config is not None else loocc.LooccConfig()
    self.perceptual = perceptual_features if perceptual_features is not None else perceptual.PerceptualFeatures()
    if self.weights.lambda_perc > 0 and not self.perceptual.enabled:
      logger.warning(
        "Perceptual loss off (lambda_perc %.3g -> 0): no VGG16 weights file configured.", self.weights.lambda_perc
      )
      self.weights = dataclasses.replace(self.weights, lambda_perc=0.0)
    self.backprop_through_render = backprop_through_render
    mode, light_modes = self.loocc.mode, ("light", "light_view")
    self.view_cycle_weight = _term_weight("view_cycle_weight", view_cycle_weight, mode, ("light_view",), "view")
    self.light_cycle_weight = _term_weight("light_cycle_weight", light_cycle_weight, mode, light_modes, "light")
    self.light_invariance_weight = _term_weight(
      "light_invariance_weight", light_invariance_weight, mode, light_modes, "light"
    )
    self.albedo_invariance_weight = _term_weight(
      "albedo_invariance_weight", albedo_invariance_weight, mode, light_modes, "light"
    )

  def reconstruction_terms(self, model, images, out) -> Dict[str, tf.Tensor]:
    """Per-example reconstruction terms: l1, l1_flip, and perc, perc_flip, smooth where their weight is non-zero."""
    mask = out["mask_both"]
    conf = self.weights.use_confidence and "conf_l1" in out
    recon, recon_flip = out["recon_image"], out["recon_image_flip"]
    if self.weights.bound_clipped:
      recon, recon_flip = (losses.bound_by_clipped_target(r, images) for r in (recon, recon_flip))
    terms = losses.photometric_pair(recon, recon_flip, images, mask, out["conf_l1"] if conf else None)
    if self.weights.lambda_perc > 0:
      target = tf.stop_gradient(self.perceptual(images))
      conf_perc = self.weights.use_confidence and "conf_perc" in out
      terms["perc"] = losses.perceptual_nll(
        self.perceptual(out["recon_image"]), target, mask, out["conf_perc"][..., 0:1] if conf_perc else None
      )
      terms["perc_flip"] = losses.perceptual_nll(
        self.perceptual(out["recon_image_flip"]), target, mask, out["conf_perc"][..., 1:2] if conf_perc else None
      )
    if self.weights.lambda_smooth > 0:
      terms["smooth"] = losses.depth_smoothness(
        out["depth_before_border"],
        model.ranges.max_depth - model.ranges.min_depth,
        guide=out["albedo"],
        edge_sharpness=self.weights.smooth_edge_sharpness,
      )
    return terms

  def augment(self, model, images, out, seed, renderer=None) -> Dict[str, tf.Tensor]:
    """Renders x_aug with the light or the view perturbed.

    In mode "light" the geometry of the model's own render (`out["recon_depth"]`, `out["mask"]`) is kept and only
    shading and sampling run again (`Renderer.relight`): the same image without a second rasterization. In mode
    "light_view" x_aug is always rendered afresh: choosing per step between the two with `tf.cond` measured no
    faster on the 2-core CPU (the branch overhead ate the saving).

    Args:
      model: the DeRenderer.
      images: [B, S, S, 3] inputs.
      out: the model's outputs for `images`.
      seed: [2] int seed of this step (the same on every replica).

    Returns:
      dict: image [B,S,S,3] (x_aug), perturb_view (scalar bool), light [B,4], view [B,6], mask [B,S,S].
    """
    perturb_view = loocc.choose_perturbation(self.loocc.mode, seed)
    noise_seed = loocc.replica_seed(tf.random.experimental.stateless_fold_in(seed, 1))
    light = tf.where(
      perturb_view,
      out["light"],
      loocc.perturb_light(out["light"], self.loocc, noise_seed, model.ranges.ka_range, model.ranges.kd_range),
    )
    view = tf.where(perturb_view, loocc.perturb_view(out["view"], self.loocc, noise_seed), out["view"])
    scene_in = [out["depth"], out["albedo"], light, view, out["recon_depth"]]
    if not self.backprop_through_render:
      scene_in = [tf.stop_gradient(x) for x in scene_in]

    renderer = renderer or model.renderer
    if self.loocc.mode == "light":  # only the light changes: the geometry is the original render's
      recon_image, recon_mask = renderer.relight(*scene_in), out["mask"]
    else:
      rendered = renderer.render(*scene_in[:4])
      recon_image, recon_mask = rendered["recon_image"], rendered["mask"]
    mask = recon_mask[..., None]
    image = recon_image * mask + images * (1.0 - mask)
    return {"image": image, "perturb_view": perturb_view, "light": light, "view": view, "mask": recon_mask}

  def __call__(self, model, images, seed, training=True, renderer=None) -> Dict[str, tf.Tensor]:
    """Forward pass and every per-example term.

    Args:
      model: the DeRenderer.
      images: [B, S, S, 3] in [-1, 1] (this replica's batch).
      seed: [2] int seed of this step.
      training: forwarded to the model.
      renderer: render with this one instead of the model's (the trainer's XLA-compiled step passes
        `model.renderer.inline()`).

    Returns:
      dict of [B] tensors: total, recon, each reconstruction term, and with LOOCC on: loocc, loocc_accuracy; plus
      "outputs" (the model's dict) and "augmented" (x_aug's dict) for summaries.
    """
    out = model(images, training=training, renderer=renderer)
    terms = self.reconstruction_terms(model, images, out)
    recon = losses.reconstruction_loss(terms, self.weights)
    result = dict(terms)
    result.update({"recon": recon, "total": recon, "outputs": out})
    if self.loocc.enabled:
      augmented = self.augment(model, images, out, seed, renderer)
      features_aug = model.encode(augmented["image"], training=training)
      z_a = loocc.leave_one_out_features(out["features"], augmented["perturb_view"])
      z_b = loocc.leave_one_out_features(features_aug, augmented["perturb_view"])
      contrast = loocc.nt_xent(z_a, z_b, self.loocc.temperature)
      result["loocc"] = contrast["per_example_loss"]
      result["loocc_accuracy"] = contrast["accuracy"]
      result["total"] = recon + self.loocc.weight * self.loocc.loss_scale * contrast["per_example_loss"]
      result["augmented"] = augmented
      if self.view_cycle_weight > 0 or self.light_invariance_weight > 0:  # the view encoder's reading of x_aug
        read_back = model.predict_view(tf.stop_gradient(augmented["image"]), training=training)
      if self.view_cycle_weight > 0:
        cycle = losses.view_cycle(read_back, tf.stop_gradient(augmented["view"]))
        result["view_cycle"] = tf.where(augmented["perturb_view"], cycle, tf.zeros_like(cycle))
        result["total"] += self.view_cycle_weight * result["view_cycle"]
      if self.light_invariance_weight > 0:
        invariance = losses.view_rotation_l1(read_back, tf.stop_gradient(out["view"]))
        result["light_invariance"] = _on_light_steps(augmented, invariance)
        result["total"] += self.light_invariance_weight * result["light_invariance"]
      if self.light_cycle_weight > 0:
        light_back = model.predict_light(tf.stop_gradient(augmented["image"]), training=training)
        cycle = losses.light_cycle(light_back, tf.stop_gradient(augmented["light"]))
        result["light_cycle"] = _on_light_steps(augmented, cycle)
        result["total"] += self.light_cycle_weight * result["light_cycle"]
      if self.albedo_invariance_weight > 0:
        albedo_aug = model.predict_albedo(tf.stop_gradient(augmented["image"]), training=training)
        invariance = losses.albedo_l1(albedo_aug, tf.stop_gradient(out["albedo"]))
        result["albedo_invariance"] = _on_light_steps(augmented, invariance)
        result["total"] += self.albedo_invariance_weight * result["albedo_invariance"]
    return result
