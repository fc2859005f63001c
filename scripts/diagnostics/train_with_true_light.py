"""Diagnostic: python -m pdr_tf.train with the ground-truth light substituted for the predicted one in training.

python scripts/diagnostics/train_with_true_light.py --gin_file=gin/cars_light_view.gin --gin_file=gin/quick.gin ...
"""

import sys
from pdr_tf.model import de_renderer
from pdr_tf.training import trainer as trainer_lib
from pdr_tf import train
from pdr_tf.data import input_pipeline
import tensorflow as tf


def training_example(serialized, seed):
  ex = input_pipeline._evaluation_example(serialized)
  flip = tf.random.stateless_uniform([], seed=seed) < 0.5
  image = tf.where(flip, ex["image"][:, ::-1], ex["image"])
  light = ex["gt_light"]
  light = tf.where(flip, light * tf.constant([1.0, 1.0, -1.0, 1.0]), light)
  return {"image": image, "gt_light": tf.cast(light, tf.float32)}


input_pipeline._training_example = training_example

orig_step = trainer_lib.Trainer._replica_step


def replica_step(self, batch, seed, step):
  self.model._oracle_light = batch["gt_light"]
  return orig_step(self, batch, seed, step)


trainer_lib.Trainer._replica_step = replica_step

orig_predict = de_renderer.DeRenderer.predict_scene


def predict_scene(self, images, training=False):
  out = orig_predict(self, images, training=training)
  oracle = getattr(self, "_oracle_light", None)
  if training and oracle is not None:
    out["light"] = oracle
  return out


de_renderer.DeRenderer.predict_scene = predict_scene
sys.exit(train.main(sys.argv[1:]))
