"""Tests for pdr_tf.model.de_renderer, .scene and .objective: output shapes and ranges, LOOCC wiring."""

import math

import numpy as np
import pytest
import tensorflow as tf

from pdr_tf.model import loocc
from pdr_tf.model import losses
from pdr_tf.model import de_renderer as model_lib
from pdr_tf.model import objective as objective_lib
from pdr_tf.render import scene

RANGES = scene.SceneRanges()


@pytest.fixture(scope="module")
def tiny_model():
  tf.keras.utils.set_random_seed(0)
  m = model_lib.DeRenderer(nf=8, zdim=16, encoder_nf=8, use_confidence=True, conf_zdim=16)
  m.build_for_inference()
  return m


@pytest.fixture(scope="module")
def images():
  return tf.random.stateless_uniform([2, 64, 64, 3], [1, 2], -1.0, 1.0)


def test_scene_mappings_ranges():
  raw = tf.random.stateless_normal([3, 64, 64, 1], [0, 1]) * 5
  depth = scene.depth_from_raw(raw, RANGES).numpy()
  assert depth.shape == (3, 64, 64)
  assert depth.min() >= 0.9 - 1e-6 and depth.max() <= 1.1 + 1e-6
  np.testing.assert_allclose(depth[:, :, :2], 1.08)
  np.testing.assert_allclose(depth[:, :, -2:], 1.08)
  light = scene.light_from_raw(tf.constant([[-1.0, -1.0, 0.3, -0.2], [1.0, 1.0, 0.0, 0.0]]), RANGES).numpy()
  np.testing.assert_allclose(light, [[0.0, 0.5, 0.3, -0.2], [1.0, 1.0, 0.0, 0.0]], atol=1e-6)
  view = scene.view_from_raw(tf.constant([[1.0, -1.0, 0.5, 1.0, -1.0, 1.0]]), RANGES).numpy()
  np.testing.assert_allclose(view, [[math.pi / 3, -math.pi / 3, math.pi / 6, 0.1, -0.1, 0.0]], atol=1e-6)


def test_scene_ranges_validate():
  with pytest.raises(ValueError):
    scene.SceneRanges(min_depth=1.2, max_depth=1.1)
  with pytest.raises(ValueError):
    scene.SceneRanges(border_depth=2.0)
  with pytest.raises(ValueError):
    scene.SceneRanges(kd_range=(1.0, 0.5))


def test_forward_output_shapes_and_ranges(tiny_model, images):
  out = tiny_model(images)
  expected = {
    "depth": (2, 64, 64),
    "albedo": (2, 64, 64, 3),
    "light": (2, 4),
    "view": (2, 6),
    "canon_normal": (2, 64, 64, 3),
    "canon_shading": (2, 64, 64, 1),
    "canon_image": (2, 64, 64, 3),
    "recon_depth": (2, 64, 64),
    "recon_image": (2, 64, 64, 3),
    "mask": (2, 64, 64),
    "recon_image_flip": (2, 64, 64, 3),
    "mask_flip": (2, 64, 64),
    "mask_both": (2, 64, 64),
    "conf_l1": (2, 64, 64, 2),
    "conf_perc": (2, 16, 16, 2),
  }
  for key, shape in expected.items():
    assert tuple(out[key].shape) == shape, key
    assert np.all(np.isfinite(out[key].numpy())), key
  assert out["depth"].numpy().min() >= 0.9 - 1e-6 and out["depth"].numpy().max() <= 1.1 + 1e-6
  assert np.abs(out["albedo"].numpy()).max() <= 1.0
  light = out["light"].numpy()
  assert (light[:, 0] >= 0).all() and (light[:, 0] <= 1).all() and (light[:, 1] >= 0.5).all()
  assert np.abs(out["view"].numpy()[:, :3]).max() <= math.radians(60) + 1e-6
  assert out["view"].numpy()[:, 5].max() == 0.0  # z translation range 0
  assert set(np.unique(out["mask_both"].numpy())) <= {0.0, 1.0}
  assert (out["conf_l1"].numpy() > 0).all()
  assert {k: v.shape[-1] for k, v in out["features"].items()} == {"depth": 16, "albedo": 16, "light": 64, "view": 64}


def test_encode_and_de_render_agree_with_forward(tiny_model, images):
  out = tiny_model(images)
  features = tiny_model.encode(images)
  for key in model_lib.FEATURE_KEYS:
    np.testing.assert_allclose(features[key], out["features"][key], atol=1e-5)
  de = tiny_model.de_render(images)
  np.testing.assert_allclose(de["recon_image"], out["recon_image"], atol=1e-5)
  assert set(de) == {"depth", "albedo", "light", "view", "recon_image", "recon_depth", "mask"}


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


def test_depth_range_has_one_home():
  from pdr_tf.render import renderer as renderer_lib  # pylint: disable=import-outside-toplevel
  from pdr_tf.render import scene as scene_lib  # pylint: disable=import-outside-toplevel

  wide = scene_lib.SceneRanges(min_depth=0.8, max_depth=1.2, border_depth=1.1)
  m = model_lib.DeRenderer(nf=8, zdim=16, encoder_nf=8, ranges=wide)
  assert (m.renderer.min_depth, m.renderer.max_depth) == (0.8, 1.2)  # the renderer follows the model's ranges
  m = model_lib.DeRenderer(nf=8, zdim=16, encoder_nf=8, renderer=renderer_lib.Renderer(ranges=wide))
  assert m.ranges is wide  # and the model the renderer's
  with pytest.raises(ValueError, match="depth range"):
    model_lib.DeRenderer(nf=8, zdim=16, encoder_nf=8, renderer=renderer_lib.Renderer(), ranges=wide)
