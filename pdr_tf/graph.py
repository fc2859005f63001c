"""`tf.function` as pdr_tf traces it: without AutoGraph.

Every pdr_tf graph writes its tensor-dependent control flow explicitly (`tf.cond`, `tf.while_loop`, `tf.map_fn`);
Python `if` and `for` in traced code only ever test Python values (settings, static shapes). AutoGraph would
rewrite and re-import the source of every function a trace reaches, the Keras layers' included, to look for control
flow that is not there (docs/performance.md, "Start-up", measures what that cost). Without it, a Python `if` on a
tensor fails at trace time with a clear error instead of being converted silently.
"""


def function(func=None, **kwargs):
  """`tf.function(func, autograph=False, **kwargs)`; usable as a decorator, with or without arguments. (TensorFlow
  is imported here, not with this module, so that modules which load it lazily can import this one.)"""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel

  return tf.function(func, autograph=False, **kwargs)
