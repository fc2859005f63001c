"""Diagnostic: the quick albedo net trained alone as an autoencoder.

python scripts/diagnostics/albedo_autoencoder.py [LR] [ZDIM] [DATA_DIR]
"""

import sys
import numpy as np
import tensorflow as tf
import keras
from pdr_tf import graph
from pdr_tf.data import input_pipeline
from pdr_tf.model import networks

DATA = sys.argv[3] if len(sys.argv) > 3 else "data/cars/tfrecords"
lr = float(sys.argv[1]) if len(sys.argv) > 1 else 1e-4
zdim = int(sys.argv[2]) if len(sys.argv) > 2 else 64
net = networks.EncoderDecoder(
  out_channels=3, activation="tanh", nf=16, zdim=zdim, name="albedo_net", initializer="pytorch"
)
opt = keras.optimizers.Adam(lr, epsilon=1e-8)
ds = iter(input_pipeline.make_dataset(DATA, "train", 16, training=True, seed=0))
val = input_pipeline.ground_truth_batch(DATA, "val", 64)["image"]


@graph.function
def step(x):
  with tf.GradientTape() as t:
    loss = tf.reduce_mean(tf.abs(net(x, training=True)["output"] - x))
  g = t.gradient(loss, net.trainable_variables)
  opt.apply_gradients(zip(g, net.trainable_variables))
  return loss


for i in range(1, 601):
  l = step(next(ds)["image"])
  if i % 100 == 0:
    out = net(val)["output"].numpy()
    v = val.numpy()
    chroma = lambda a: a - a.mean(-1, keepdims=True)
    print(
      i,
      "train l1",
      float(l),
      "val l1",
      np.abs(out - v).mean(),
      "val chroma l1",
      np.abs(chroma(out) - chroma(v)).mean(),
      "chroma l1 of grey",
      np.abs(chroma(v)).mean(),
      flush=True,
    )
