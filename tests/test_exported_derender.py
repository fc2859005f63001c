"""Tests for pdr_tf.evaluation.exported_derender: evaluation's XLA-compiled de-rendering of an export gives the
de_render signature's outputs, and falls back to the signature where it cannot compile."""

import logging

import numpy as np
import pytest
import tensorflow as tf

from pdr_tf import export
from pdr_tf.evaluation import exported_derender


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
  from pdr_tf.model import de_renderer  # pylint: disable=import-outside-toplevel

  net = de_renderer.DeRenderer(nf=8, zdim=16, encoder_nf=8, conf_zdim=16)
  net.build_for_inference()
  version_dir = export.export_model(net, str(tmp_path_factory.mktemp("export")))
  return export.load_export(version_dir)[0]


def _images(count, seed=0):
  return np.random.RandomState(seed).uniform(0, 1, (count, 64, 64, 3)).astype(np.float32)


def test_xla_path_matches_the_signature_and_pads_small_batches(loaded):
  fast = exported_derender.ExportedDeRender(loaded, batch_size=4)
  slow = exported_derender.ExportedDeRender(loaded, batch_size=4, xla=False)
  assert fast.mode == "xla" and slow.mode == "signature"
  for count in (4, 3):  # the short batch is padded to the compiled shape and cut back
    images = _images(count, seed=count)
    got, want = fast(images), slow(images)
    assert fast.mode == "xla" and sorted(got) == sorted(exported_derender.SCORED_OUTPUTS)
    for key in exported_derender.SCORED_OUTPUTS:
      assert got[key].shape == want[key].shape and got[key].shape[0] == count, key
    np.testing.assert_array_equal(got["mask"], want["mask"])
    np.testing.assert_allclose(got["recon_depth"], want["recon_depth"], atol=1e-4)
    np.testing.assert_allclose(got["light"], want["light"], atol=1e-4)
    np.testing.assert_allclose(got["view"], want["view"], atol=1e-4)
  with pytest.raises(ValueError, match="1 to 4 images per call, got 5"):
    fast(_images(5))


class _Loaded:
  """A loaded export: the real de_render signature, and a check-free function XLA cannot compile (or none)."""

  def __init__(self, real, unchecked):
    self.signatures = real.signatures
    if unchecked is not None:
      setattr(self, export.UNCHECKED_DE_RENDER, unchecked)


def test_falls_back_to_the_signature_where_xla_cannot_compile(loaded, caplog):
  def not_compilable(images):
    out = dict(loaded.signatures["de_render"](images=images))
    out["light"] = out["light"] + tf.strings.to_number(tf.strings.as_string(0.0))  # string ops: no XLA kernel
    return out

  runner = exported_derender.ExportedDeRender(_Loaded(loaded, not_compilable), batch_size=2)
  assert runner.mode == "xla"
  images = _images(2)
  with caplog.at_level(logging.WARNING):
    got = runner(images)
  assert runner.mode == "signature" and "XLA cannot compile" in caplog.text
  want = loaded.signatures["de_render"](images=tf.constant(images))
  np.testing.assert_allclose(got["light"], want["light"].numpy())


def test_exports_without_the_function_use_the_signature(loaded):
  runner = exported_derender.ExportedDeRender(_Loaded(loaded, None), batch_size=2)
  assert runner.mode == "signature" and runner(_images(1))["recon_depth"].shape == (1, 64, 64)
