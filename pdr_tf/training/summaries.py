"""TensorBoard image grids of what the de-renderer sees, predicts and renders, written during training and read back
from the event files (`python -m pdr_tf.grids` writes them as PNG files)."""

import glob
import logging
import math
import os
from typing import Dict

import tensorflow as tf
from tensorflow.core.util import event_pb2

from pdr_tf.data import formats
from pdr_tf.render import geometry

logger = logging.getLogger(__name__)

# Every grid's summary tag is this prefix and the grid's name.
IMAGE_TAG_PREFIX = "images/"


def _to_unit(images):
  """[-1, 1] images -> [0, 1], clipped."""
  return tf.clip_by_value(formats.model_to_unit(images), 0.0, 1.0)


def _strip(images):
  """[B, H, W, C] -> [1, H, B*W, 3] side by side, single channels repeated to RGB."""
  images = tf.convert_to_tensor(images, tf.float32)
  if images.shape[-1] == 1:
    images = tf.repeat(images, 3, axis=-1)
  return tf.concat(tf.unstack(images, axis=0), axis=1)[None]


def _front_shaded_depth(depth, intrinsics):
  """Canonical depth visualised as a grey surface lit from the camera."""
  normals = geometry.normals_from_depth(depth, intrinsics)
  return tf.nn.relu(normals[..., 2:3])


def image_grids(model, objective, images, seed) -> None:
  """Writes image summaries for a fixed batch to the default summary writer.

  Grids: input, reconstruction, shaded canonical depth, normals, albedo, shading, renders under two new lights
  and two new views, and (with LOOCC on) the augmented images x_aug.

  Args:
    model: the DeRenderer.
    objective: the training Objective (for x_aug).
    images: [B, S, S, 3] in [-1, 1].
    seed: [2] int seed.
  """
  result = objective(model, images, seed, training=False)
  out = result["outputs"]
  mask = out["mask"][..., None]
  k = model.renderer.intrinsics
  batch = tf.shape(images)[0]
  grids = {
    "input": _to_unit(images),
    "reconstruction": _to_unit(out["recon_image"]) * mask,
    "canonical_depth_shaded": _front_shaded_depth(out["depth"], k),
    "canonical_normal": geometry.normals_from_depth(out["depth"], k) * 0.5 + 0.5,
    "canonical_albedo": _to_unit(out["albedo"]),
    "canonical_shading": tf.clip_by_value(out["canon_shading"] / 2.0, 0.0, 1.0),
  }
  for name, (lx, ly) in {"left": (-1.0, 0.0), "top": (0.0, -1.0)}.items():
    light = tf.concat([out["light"][:, :2], tf.tile([[lx, ly]], [batch, 1])], axis=1)
    render = model.render(out["depth"], out["albedo"], light, out["view"])
    grids[f"new_light_{name}"] = _to_unit(render["recon_image"]) * render["mask"][..., None]
  for name, yaw in {"yaw_minus30": -30.0, "yaw_plus30": 30.0}.items():
    view = out["view"] + tf.constant([[0.0, math.radians(yaw), 0.0, 0.0, 0.0, 0.0]])
    render = model.render(out["depth"], out["albedo"], out["light"], view)
    grids[f"new_view_{name}"] = _to_unit(render["recon_image"]) * render["mask"][..., None]
  if "augmented" in result:
    grids["loocc_augmented"] = _to_unit(result["augmented"]["image"])
  for name, value in grids.items():
    tf.summary.image(IMAGE_TAG_PREFIX + name, _strip(value), max_outputs=1)


def read_image_grids(log_dir: str) -> Dict[int, Dict[str, bytes]]:
  """The image grids written by `image_grids` to the TensorBoard event files in `log_dir`.

  Args:
    log_dir: a folder of `events.out.tfevents.*` files (a run's `workdir.train_logs`).

  Returns:
    {step: {grid name: PNG bytes}}, steps ascending, grids in the order they were written. A step written twice (a
    run resumed from an earlier checkpoint) keeps its last grids. A truncated event file (a run killed while
    writing) gives what was written before the damage, with a warning naming the file.
  """
  grids: Dict[int, Dict[str, bytes]] = {}
  for path in sorted(glob.glob(os.path.join(log_dir, "events.out.tfevents.*"))):
    try:
      for record in tf.data.TFRecordDataset(path):
        event = event_pb2.Event.FromString(record.numpy())
        for value in event.summary.value:
          if value.tag.startswith(IMAGE_TAG_PREFIX):
            # tf.summary.image stores [width, height, PNG, ...] as a string tensor; max_outputs=1 writes one PNG.
            encoded = tf.make_ndarray(value.tensor)
            grids.setdefault(int(event.step), {})[value.tag[len(IMAGE_TAG_PREFIX) :]] = bytes(encoded[2])
    except tf.errors.DataLossError as e:
      logger.warning("%s is damaged (%s); keeping the grids read before the damage", path, e.message)
  return dict(sorted(grids.items()))
