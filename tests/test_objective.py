"""Tests for pdr_tf.model.objective: per-example terms, LOOCC's perturbations, re-render and gradients."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from pdr_tf.model import loocc
from pdr_tf.model import losses
from pdr_tf.model import objective as objective_lib


def _objective(mode, backprop_through_render=True, **kwargs):
  return objective_lib.Objective(
    weights=losses.ReconstructionWeights.cars(),
    loocc_config=loocc.LooccConfig(mode=mode, **kwargs),
    backprop_through_render=backprop_through_render,
  )


def test_objective_terms_are_per_example(tiny_model, images):
  result = _objective("light_view")(tiny_model, images, tf.constant([0, 1]))
  for key in ("total", "recon", "l1", "l1_flip", "smooth", "loocc", "loocc_accuracy"):
    assert result[key].shape == (2,), key
  # The released SupConLoss scales the NT-Xent mean by temperature / base_temperature = 0.5 / 0.07.
  scale = 0.5 / 0.07
  np.testing.assert_allclose(result["total"], result["recon"] + 0.01 * scale * result["loocc"], rtol=1e-6)
  assert "perc" not in result  # no VGG16 weights configured: the perceptual term is off


def test_no_loocc_terms_in_unsup3d_mode(tiny_model, images):
  result = _objective("none")(tiny_model, images, tf.constant([0, 1]))
  assert "loocc" not in result
  np.testing.assert_allclose(result["total"], result["recon"])


def test_light_mode_perturbs_only_light(tiny_model, images):
  objective = _objective("light")
  out = tiny_model(images)
  aug = objective.augment(tiny_model, images, out, tf.constant([3, 4]))
  assert not bool(aug["perturb_view"])
  np.testing.assert_array_equal(aug["view"], out["view"])
  assert np.abs(aug["light"] - out["light"]).max() > 1e-3
  assert aug["image"].shape == images.shape


@pytest.mark.parametrize("mode", ["light", "light_view"])
def test_augmented_image_equals_a_full_rerender(tiny_model, images, mode):
  """x_aug under a perturbed light reuses the original render's geometry (Renderer.relight); under a perturbed view
  it is re-rasterized. Either way it equals rendering the perturbed scene from scratch."""
  objective = _objective(mode)
  out = tiny_model(images)
  for i in range(4):
    aug = objective.augment(tiny_model, images, out, tf.constant([i, 7]))
    rendered = tiny_model.render(out["depth"], out["albedo"], aug["light"], aug["view"])
    mask = rendered["mask"][..., None]
    expected = rendered["recon_image"] * mask + images * (1.0 - mask)
    np.testing.assert_allclose(aug["mask"], rendered["mask"])
    np.testing.assert_allclose(aug["image"], expected, atol=1e-5)


def test_light_view_mode_picks_each_parameter(tiny_model, images):
  objective = _objective("light_view")
  out = tiny_model(images)
  picks = set()
  for i in range(12):
    aug = objective.augment(tiny_model, images, out, tf.constant([i, 0]))
    view_changed = np.abs(aug["view"] - out["view"]).max() > 0
    light_changed = np.abs(aug["light"] - out["light"]).max() > 0
    assert view_changed != light_changed  # exactly one property is perturbed
    assert view_changed == bool(aug["perturb_view"])
    picks.add(bool(aug["perturb_view"]))
  assert picks == {True, False}


def _loocc_gradient_by_network(model, objective, images, seed):
  with tf.GradientTape(persistent=True) as tape:
    result = objective(model, images, seed)
    loss = tf.reduce_mean(result["loocc"])
  by_net = {}
  for net in (model.depth_net, model.albedo_net, model.light_net, model.view_net):
    grads = tape.gradient(loss, net.trainable_variables)
    by_net[net.name] = sum(float(tf.reduce_sum(tf.abs(g))) for g in grads if g is not None)
  return bool(result["augmented"]["perturb_view"]), by_net


def _loocc_gradients_for_both_perturbations(model, objective, images):
  seen = {}
  for i in range(12):
    if len(seen) == 2:  # both kinds of step found (the seeds are fixed, so this is deterministic)
      break
    perturb_view, by_net = _loocc_gradient_by_network(model, objective, images, tf.constant([i, 0]))
    seen.setdefault(perturb_view, by_net)
  assert set(seen) == {True, False}
  return seen[False], seen[True]


def test_loocc_through_the_rerender_reaches_every_encoder(tiny_model, images):
  """As released: x_aug keeps its gradient, so the perturbed property's encoder is trained through the re-render."""
  light_step, view_step = _loocc_gradients_for_both_perturbations(tiny_model, _objective("light_view"), images)
  for name in ("depth_net", "albedo_net", "light_net", "view_net"):
    assert light_step[name] > 0 and view_step[name] > 0, (name, light_step, view_step)


def test_loocc_gradients_reach_the_encoders_of_unchanged_properties(tiny_model, images):
  objective = _objective("light_view", backprop_through_render=False)
  light_step, view_step = _loocc_gradients_for_both_perturbations(tiny_model, objective, images)
  # Light perturbed: depth, albedo and view features are contrasted; view perturbed: depth, albedo and light.
  for name in ("depth_net", "albedo_net", "view_net"):
    assert light_step[name] > 0, (name, light_step)
  for name in ("depth_net", "albedo_net", "light_net"):
    assert view_step[name] > 0, (name, view_step)
  assert light_step["light_net"] == 0 and view_step["view_net"] == 0


def _assert_only_one_network_learns(tape, loss, model, learner):
  for net in (model.depth_net, model.albedo_net, model.light_net, model.view_net):
    grads = [g for g in tape.gradient(loss, net.trainable_variables) if g is not None]
    reached = sum(float(tf.reduce_sum(tf.abs(g))) for g in grads) > 0
    assert reached == (net is learner), net.name


def test_view_cycle_trains_only_the_view_encoder_on_view_steps(tiny_model, images):
  """The view cycle reads the perturbed tilts back from x_aug: zero on light steps, and on view steps its gradient
  reaches the view encoder alone (x_aug and the target are held fixed)."""
  objective = objective_lib.Objective(
    weights=losses.ReconstructionWeights.cars(),
    loocc_config=loocc.LooccConfig(mode="light_view"),
    view_cycle_weight=2.0,
  )
  seen = set()
  for i in range(12):
    if seen == {True, False}:
      break
    seed = tf.constant([i, 0])
    with tf.GradientTape(persistent=True) as tape:
      result = objective(tiny_model, images, seed)
      cycle = tf.reduce_sum(result["view_cycle"])
    perturb_view = bool(result["augmented"]["perturb_view"])
    seen.add(perturb_view)
    assert result["view_cycle"].shape == (2,)
    if not perturb_view:
      np.testing.assert_array_equal(result["view_cycle"], 0.0)
      continue
    read_back = tiny_model.predict_view(result["augmented"]["image"])
    expected = np.abs(read_back[:, :2] - result["augmented"]["view"][:, :2]).mean(axis=1)
    np.testing.assert_allclose(result["view_cycle"], expected, rtol=1e-5)
    np.testing.assert_allclose(
      result["total"], result["recon"] + 0.01 * 0.5 / 0.07 * result["loocc"] + 2.0 * result["view_cycle"], rtol=1e-5
    )
    _assert_only_one_network_learns(tape, cycle, tiny_model, tiny_model.view_net)
  assert seen == {True, False}


@pytest.mark.parametrize(
  "mode, weight, message",
  [
    ("light", 1.0, "needs view perturbations"),
    ("none", 1.0, "needs view perturbations"),
    ("light_view", -1.0, ">= 0"),
    ("light_view", float("nan"), "finite"),
    ("light_view", float("inf"), "finite"),
    ("light_view", True, "finite number"),
  ],
)
def test_view_cycle_refuses_a_bad_setting(mode, weight, message):
  with pytest.raises(ValueError, match=message):
    objective_lib.Objective(loocc_config=loocc.LooccConfig(mode=mode), view_cycle_weight=weight)


def _check_a_light_step_term(model, images, weight_name, key, expected, learner):
  """Runs an Objective with `weight_name` = 3.0 over both kinds of LOOCC step: the term `key` is zero on view steps;
  on light steps it equals `expected(result)`, enters the total at its weight, and its gradient reaches `learner`
  alone."""
  objective = objective_lib.Objective(
    weights=losses.ReconstructionWeights.cars(),
    loocc_config=loocc.LooccConfig(mode="light_view"),
    **{weight_name: 3.0},
  )
  seen = set()
  for i in range(12):
    if seen == {True, False}:
      break
    with tf.GradientTape(persistent=True) as tape:
      result = objective(model, images, tf.constant([i, 0]))
      term = tf.reduce_sum(result[key])
    perturb_view = bool(result["augmented"]["perturb_view"])
    seen.add(perturb_view)
    assert result[key].shape == (2,)
    if perturb_view:
      np.testing.assert_array_equal(result[key], 0.0)
      continue
    np.testing.assert_allclose(result[key], expected(result), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(
      result["total"], result["recon"] + 0.01 * 0.5 / 0.07 * result["loocc"] + 3.0 * result[key], rtol=1e-5
    )
    _assert_only_one_network_learns(tape, term, model, learner)
  assert seen == {True, False}


def test_light_cycle_trains_only_the_light_encoder_on_light_steps(tiny_model, images):
  """The light cycle reads the perturbed direction back from x_aug: zero on view steps; on light steps the mean
  |light(x_aug) - (light + delta)| over lx, ly, whose gradient reaches the light encoder alone."""

  def expected(result):
    read_back = tiny_model.predict_light(result["augmented"]["image"])
    return np.abs(read_back[:, 2:4] - result["augmented"]["light"][:, 2:4]).mean(axis=1)

  _check_a_light_step_term(tiny_model, images, "light_cycle_weight", "light_cycle", expected, tiny_model.light_net)


def test_light_invariance_trains_only_the_view_encoder_on_light_steps(tiny_model, images):
  """The view must not change when only the light does: zero on view steps; on light steps the mean |view(x_aug) -
  view(x)| over the rotations, whose gradient reaches the view encoder alone (x_aug and view(x) held fixed)."""

  def expected(result):
    seen_view = tiny_model.predict_view(result["augmented"]["image"])
    return np.abs(seen_view[:, :3] - result["outputs"]["view"][:, :3]).mean(axis=1)

  _check_a_light_step_term(
    tiny_model, images, "light_invariance_weight", "light_invariance", expected, tiny_model.view_net
  )


@pytest.mark.parametrize(
  "mode, weight, message",
  [
    ("none", 1.0, "needs light perturbations"),
    ("light", -1.0, ">= 0"),
    ("light_view", float("nan"), "finite"),
    ("light_view", float("inf"), "finite"),
    ("light", True, "finite number"),
  ],
)
@pytest.mark.parametrize("term", ["light_cycle", "light_invariance", "albedo_invariance"])
def test_the_light_step_terms_refuse_a_bad_setting(term, mode, weight, message):
  with pytest.raises(ValueError, match=message):
    objective_lib.Objective(loocc_config=loocc.LooccConfig(mode=mode), **{f"{term}_weight": weight})


def test_albedo_invariance_trains_only_the_albedo_network_on_light_steps(tiny_model, images):
  """The albedo must not change when only the light does: zero on view steps; on light steps the mean
  |albedo(x_aug) - albedo(x)| / 2, whose gradient reaches the albedo network alone (x_aug and albedo(x) held fixed)."""

  def expected(result):
    seen_albedo = tiny_model.predict_albedo(result["augmented"]["image"])
    return np.abs(seen_albedo - result["outputs"]["albedo"]).mean(axis=(1, 2, 3)) / 2.0

  _check_a_light_step_term(
    tiny_model, images, "albedo_invariance_weight", "albedo_invariance", expected, tiny_model.albedo_net
  )


def test_albedo_l1_is_in_unit_albedo_units():
  a = tf.fill([2, 4, 4, 3], -1.0)
  np.testing.assert_allclose(losses.albedo_l1(a, -a), [1.0, 1.0])
  np.testing.assert_allclose(losses.albedo_l1(a, a), [0.0, 0.0])


def test_bound_clipped_scores_both_photometric_terms_against_the_clipped_pixels_from_one_side(tiny_model, images):
  """With every input pixel clipped white, only the parts of the renders darker than white cost anything."""
  white = tf.ones_like(images)
  out = tiny_model(white)
  plain = objective_lib.Objective(weights=losses.ReconstructionWeights.cars()).reconstruction_terms(
    tiny_model, white, out
  )
  bounded = objective_lib.Objective(
    weights=dataclasses.replace(losses.ReconstructionWeights.cars(), bound_clipped=True)
  ).reconstruction_terms(tiny_model, white, out)
  mask = out["mask_both"][..., None]
  for key, recon in (("l1", out["recon_image"]), ("l1_flip", out["recon_image_flip"])):
    darker = tf.reduce_sum(tf.nn.relu(1.0 - recon) * mask, [1, 2, 3]) / (tf.reduce_sum(mask, [1, 2, 3]) * 3 + 1e-7)
    np.testing.assert_allclose(bounded[key], darker, rtol=1e-5, atol=1e-7)
    assert np.all(plain[key].numpy() >= bounded[key].numpy())
