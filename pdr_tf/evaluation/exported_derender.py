"""The exported model's de-rendering as evaluation runs it: compiled with XLA where it can be, else the signature.

The `de_render` signature traces the pure-TF rasterizer without XLA (stock TF Serving runs no XLA on CPU), which on
CPUs costs several times the networks. Evaluation is not serving: it validates its own input, so it runs the
SavedModel's check-free `de_render_unchecked` function under `tf.function(jit_compile=True)`, keeps only the outputs
it scores (XLA then drops the albedo and confidence decoders, shading and sampling) and pads every batch to one
shape (one compilation). A SavedModel without that function (exported before it existed) or a platform where XLA
cannot compile it gets the `de_render` signature, with a log line saying why.
"""

import logging
from typing import Dict, Sequence

import numpy as np
import tensorflow as tf

from pdr_tf import export
from pdr_tf import graph

_LOG = logging.getLogger(__name__)
SCORED_OUTPUTS = ("recon_depth", "mask", "light", "view")  # what derender_eval.DerenderScorer needs


class ExportedDeRender:
  """images [N, S, S, 3] float in [0, 1] -> {output: numpy array}, through a loaded pdr_tf export.

  Args:
    loaded: `export.load_export`'s object (with the de_render signature).
    batch_size: the largest batch it is called with; smaller ones are padded to it under XLA.
    outputs: de_render outputs to return.
    xla: try the XLA-compiled path (False: always the signature).
  """

  def __init__(self, loaded, batch_size: int, outputs: Sequence[str] = SCORED_OUTPUTS, xla: bool = True):
    self.outputs = tuple(outputs)
    self.batch_size = int(batch_size)
    self._signature = loaded.signatures["de_render"]
    unchecked = getattr(loaded, export.UNCHECKED_DE_RENDER, None)
    self.mode = "xla" if xla and unchecked is not None else "signature"
    if xla and unchecked is None:
      _LOG.info("de-rendering through the de_render signature: the export has no %s", export.UNCHECKED_DE_RENDER)
    if self.mode == "xla":
      self._compiled = graph.function(
        lambda images: {key: unchecked(images)[key] for key in self.outputs}, jit_compile=True
      )

  def __call__(self, images) -> Dict[str, np.ndarray]:
    images = np.asarray(images, np.float32)
    count = images.shape[0]
    if count == 0 or count > self.batch_size:
      raise ValueError(f"ExportedDeRender takes 1 to {self.batch_size} images per call, got {count}")
    if self.mode == "xla":
      padded = np.concatenate([images, np.zeros((self.batch_size - count,) + images.shape[1:], np.float32)])
      try:
        return {key: value.numpy()[:count] for key, value in self._compiled(tf.constant(padded)).items()}
      except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError, tf.errors.NotFoundError) as e:
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        _LOG.warning(
          "XLA cannot compile the export's de-rendering here (%s); using the de_render signature", first_line
        )
        self.mode = "signature"
    out = self._signature(images=tf.constant(images))
    return {key: out[key].numpy() for key in self.outputs}
