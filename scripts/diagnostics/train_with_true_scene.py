"""Diagnostic: `python -m pdr_tf.train` with ground-truth scene parameters substituted for the predicted ones.

python scripts/diagnostics/train_with_true_scene.py [--oracle=light|view|light,view|light_side,view] \
  --gin_file=gin/cars_light_view.gin --gin_file=gin/quick.gin ...

`--oracle` names what is taken from the ground truth (default: light). `light_side` takes the light's ka, kd and
horizontal component lx from the ground truth and leaves its vertical component ly to the light network (the part
of the light the objective does not identify, docs/investigations.md). Validation still reports the networks' own
predictions, so the substituted properties' rows there measure untrained encoders.
"""

import sys

import tensorflow as tf

from pdr_tf import train
from pdr_tf.data import input_pipeline
from pdr_tf.model import de_renderer
from pdr_tf.render import scene
from pdr_tf.training import trainer as trainer_lib

ORACLES = ("light", "light_side", "view")
PROPERTY = {"light": "light", "light_side": "light", "view": "view"}  # the ground-truth record each oracle reads
MIRROR = {"light": scene.LIGHT_MIRROR_SIGNS, "view": scene.VIEW_MIRROR_SIGNS}
SIDE_LIGHT = 3  # light is (ka, kd, lx, ly): light_side takes the first three from the ground truth


def parse_oracle(argv):
  """(oracle names, the remaining arguments for pdr_tf.train); exits naming a bad --oracle."""
  oracle, rest = ("light",), []
  for arg in argv:
    if arg.startswith("--oracle="):
      oracle = tuple(arg.split("=", 1)[1].split(","))
    else:
      rest.append(arg)
  if not oracle or set(oracle) - set(ORACLES) or {"light", "light_side"} <= set(oracle):
    sys.exit(f"--oracle takes light or light_side, view, or both, comma-separated; got {','.join(oracle)!r}")
  return oracle, rest


def substitute(predicted, truth):
  """The predicted scene with the ground truth put in its place; `truth` maps oracle names to [B, ...] values."""
  out = dict(predicted)
  for key, value in truth.items():
    if key == "light_side":
      out["light"] = tf.concat([value[:, :SIDE_LIGHT], predicted["light"][:, SIDE_LIGHT:]], axis=1)
    else:
      out[key] = value
  return out


def mirrored_truth(example, oracle, flip):
  """The ground-truth records the oracles read, mirrored with the image when `flip`."""
  out = {}
  for key in sorted({PROPERTY[k] for k in oracle}):
    value = tf.cast(example[f"gt_{key}"], tf.float32)
    out[f"gt_{key}"] = tf.where(flip, value * tf.constant(MIRROR[key], tf.float32), value)
  return out


def install(oracle):
  """Patches the training input, step and scene prediction so that training renders with the ground truth."""

  def training_example(serialized, seed):
    ex = input_pipeline._evaluation_example(serialized)
    flip = tf.random.stateless_uniform([], seed=seed) < 0.5
    return {"image": tf.where(flip, ex["image"][:, ::-1], ex["image"]), **mirrored_truth(ex, oracle, flip)}

  orig_step = trainer_lib.Trainer._replica_step
  orig_predict = de_renderer.DeRenderer.predict_scene

  def replica_step(self, batch, seed, step):
    self.model._oracle = {key: batch[f"gt_{PROPERTY[key]}"] for key in oracle}
    return orig_step(self, batch, seed, step)

  def predict_scene(self, images, training=False):
    out = orig_predict(self, images, training=training)
    return substitute(out, getattr(self, "_oracle", {})) if training else out

  input_pipeline._training_example = training_example
  trainer_lib.Trainer._replica_step = replica_step
  de_renderer.DeRenderer.predict_scene = predict_scene


def main():
  oracle, rest = parse_oracle(sys.argv[1:])
  install(oracle)
  return train.main(rest)


if __name__ == "__main__":
  sys.exit(main())
