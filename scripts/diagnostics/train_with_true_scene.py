"""Diagnostic: python -m pdr_tf.train with ground-truth scene parameters substituted for the predicted ones in training.

python scripts/diagnostics/train_with_true_scene.py [--oracle=light|view|light,view] \
  --gin_file=gin/cars_light_view.gin --gin_file=gin/quick.gin ...

`--oracle` names what is taken from the ground truth (default: light). Validation still reports the networks' own
predictions, so the substituted properties' rows there measure untrained encoders.
"""

import sys

import tensorflow as tf

from pdr_tf import train
from pdr_tf.data import input_pipeline
from pdr_tf.model import de_renderer
from pdr_tf.render import scene
from pdr_tf.training import trainer as trainer_lib

ORACLE = ("light",)
for arg in list(sys.argv[1:]):
  if arg.startswith("--oracle="):
    ORACLE = tuple(arg.split("=", 1)[1].split(","))
    sys.argv.remove(arg)
if not ORACLE or set(ORACLE) - {"light", "view"}:
  sys.exit(f"--oracle takes light, view or light,view; got {ORACLE}")
MIRROR = {"light": scene.LIGHT_MIRROR_SIGNS, "view": scene.VIEW_MIRROR_SIGNS}


def training_example(serialized, seed):
  ex = input_pipeline._evaluation_example(serialized)
  flip = tf.random.stateless_uniform([], seed=seed) < 0.5
  out = {"image": tf.where(flip, ex["image"][:, ::-1], ex["image"])}
  for key in ORACLE:
    value = tf.cast(ex[f"gt_{key}"], tf.float32)
    out[f"gt_{key}"] = tf.where(flip, value * tf.constant(MIRROR[key], tf.float32), value)
  return out


input_pipeline._training_example = training_example

orig_step = trainer_lib.Trainer._replica_step


def replica_step(self, batch, seed, step):
  self.model._oracle = {key: batch[f"gt_{key}"] for key in ORACLE}
  return orig_step(self, batch, seed, step)


trainer_lib.Trainer._replica_step = replica_step

orig_predict = de_renderer.DeRenderer.predict_scene


def predict_scene(self, images, training=False):
  out = orig_predict(self, images, training=training)
  if training:
    out.update(getattr(self, "_oracle", {}))
  return out


de_renderer.DeRenderer.predict_scene = predict_scene
sys.exit(train.main(sys.argv[1:]))
