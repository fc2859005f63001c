"""Tests for pdr_tf.model.de_renderer: output shapes and ranges, encode / de_render, the one depth range."""

import math

import numpy as np
import pytest

from pdr_tf.model import de_renderer as model_lib


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


@pytest.mark.parametrize("convex_prior", [0.0, 0.03])
def test_single_network_predictors_agree_with_predict_scene(images, convex_prior):
  """predict_depth (border pinned, convex prior added), predict_light, predict_view and predict_albedo give what
  predict_scene gives: the LOOCC terms and the diagnostics that call them read the model's own scene."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel

  tf.keras.utils.set_random_seed(2)
  model = model_lib.DeRenderer(nf=8, zdim=16, encoder_nf=8, mirror_equivariant=True, convex_prior=convex_prior)
  out = model.predict_scene(images)
  singles = {
    "depth": model.predict_depth(images),
    "light": model.predict_light(images),
    "view": model.predict_view(images),
    "albedo": model.predict_albedo(images),
  }
  for key, value in singles.items():
    np.testing.assert_allclose(value, out[key], atol=1e-6, err_msg=key)
  border = model.ranges.border_depth
  np.testing.assert_allclose(singles["depth"].numpy()[:, :, [0, 1, -2, -1]], border, atol=1e-6)


def test_mirror_equivariant_heads_mirror_light_and_view(images):
  import tensorflow as tf  # pylint: disable=import-outside-toplevel

  from pdr_tf.render import scene as scene_lib  # pylint: disable=import-outside-toplevel

  tf.keras.utils.set_random_seed(1)
  model = model_lib.DeRenderer(nf=8, zdim=16, encoder_nf=8, mirror_equivariant=True)
  out, out_mirror = model.predict_scene(images), model.predict_scene(images[:, :, ::-1])
  for key, signs in (("light", scene_lib.LIGHT_MIRROR_SIGNS), ("view", scene_lib.VIEW_MIRROR_SIGNS)):
    np.testing.assert_allclose(out_mirror[key], out[key] * np.float32(signs), atol=1e-6)
    assert np.abs(out[key].numpy()[:, np.array(signs) < 0]).max() > 1e-4  # the side components are not all zero
  symmetric = tf.concat([images[:, :, :32], images[:, :, :32][:, :, ::-1]], axis=2)
  side = model.predict_scene(symmetric)
  assert np.abs(side["light"].numpy()[:, 2]).max() < 1e-6  # a mirror-symmetric image: no side light, no yaw
  assert np.abs(side["view"].numpy()[:, 1:4]).max() < 1e-6
  # Its features are those of the plain encoders, and the option survives get_config.
  np.testing.assert_allclose(model.encode(images)["light"], out["features"]["light"], atol=1e-6)
  assert model_lib.DeRenderer(**model.get_config()).mirror_equivariant


def test_initial_ly_lights_every_image_from_above_at_the_start_and_trains(images):
  import tensorflow as tf  # pylint: disable=import-outside-toplevel

  tf.keras.utils.set_random_seed(3)
  plain = model_lib.DeRenderer(nf=8, zdim=16, encoder_nf=8, mirror_equivariant=True)
  lit = model_lib.DeRenderer(nf=8, zdim=16, encoder_nf=8, mirror_equivariant=True, initial_ly=-0.5)
  blank = tf.zeros([2, 64, 64, 3])  # bias-free convolutions: only the head's own bias reaches the tanh
  np.testing.assert_allclose(plain.predict_light(blank)[:, 2:], 0.0, atol=1e-6)
  np.testing.assert_allclose(lit.predict_light(blank)[:, 2:], [[0.0, -0.5]] * 2, atol=1e-6)
  assert abs(np.mean(lit.predict_light(images)[:, 3]) + 0.5) < 0.2  # real images start near it too
  (bias,) = [w for w in lit.light_net.trainable_weights if "head" in w.path and "bias" in w.path]
  assert not [w for w in plain.light_net.weights if "bias" in w.path]  # Unsup3D's bias-free head by default
  assert model_lib.DeRenderer(**lit.get_config()).initial_ly == -0.5
  np.testing.assert_allclose(bias.numpy(), [0.0, 0.0, 0.0, np.arctanh(-0.5)], atol=1e-6)
  for bad in (1.0, -2.0):
    with pytest.raises(ValueError, match="initial_ly must lie in"):
      model_lib.DeRenderer(nf=8, zdim=16, encoder_nf=8, initial_ly=bad)


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


def test_build_for_inference_creates_every_variable_without_rendering(images, monkeypatch):
  """The networks alone create every variable a call creates (the renderer holds none), so building renders nothing:
  an eager render would trace, or compile, a rasterizer for a batch size used nowhere else."""
  model = model_lib.DeRenderer(nf=8, zdim=16, encoder_nf=8, use_confidence=True, conf_zdim=16)

  def no_render(*args, **kwargs):
    raise AssertionError("build_for_inference rendered")

  with monkeypatch.context() as patch:
    patch.setattr(model.renderer, "render", no_render)
    model.build_for_inference()
  assert model.built
  built = sorted(v.path for v in model.variables)
  model(images)
  assert sorted(v.path for v in model.variables) == built
