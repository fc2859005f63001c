"""Tests for pdr_tf.training.summaries: the TensorBoard image grids of a fixed batch."""

import glob

import tensorflow as tf

import fixtures
from pdr_tf.model import losses
from pdr_tf.model import loocc
from pdr_tf.model import objective as objective_lib
from pdr_tf.training import summaries


def _tags(logdir):
  tags = {}
  for event_file in glob.glob(f"{logdir}/events.out.tfevents.*"):
    for event in tf.compat.v1.train.summary_iterator(event_file):
      for value in event.summary.value:
        tags[value.tag] = tf.make_ndarray(value.tensor).shape
  return tags


def test_image_grids_write_every_view_of_the_scene(tmp_path):
  model, images = fixtures.tiny_de_renderer(), fixtures.tiny_images()
  objective = objective_lib.Objective(
    weights=losses.ReconstructionWeights.cars(), loocc_config=loocc.LooccConfig(mode="light_view")
  )
  writer = tf.summary.create_file_writer(str(tmp_path))
  with writer.as_default(step=0):
    summaries.image_grids(model, objective, images, tf.constant([0, 1], tf.int64))
  writer.flush()
  tags = _tags(str(tmp_path))
  for name in (
    "input",
    "reconstruction",
    "canonical_depth_shaded",
    "canonical_normal",
    "canonical_albedo",
    "canonical_shading",
    "new_light_left",
    "new_light_top",
    "new_view_yaw_minus30",
    "new_view_yaw_plus30",
    "loocc_augmented",
  ):
    assert f"images/{name}" in tags, (name, sorted(tags))
