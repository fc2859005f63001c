"""gin helpers shared by pdr_tf modules."""

import functools
import inspect

import gin


def keras_configurable(cls=None, **kwargs):
  """`gin.configurable` for Keras 3 layers and models.

  Keras 3 reads the signature of `__init__` when it builds an operation; gin's wrapper hides it, so a plain
  `@gin.configurable` Keras class fails at construction (IndexError in keras/src/ops/operation.py). This applies
  gin and then restores the original signature.
  """
  if cls is None:
    return functools.partial(keras_configurable, **kwargs)
  signature = inspect.signature(cls.__init__)
  configured = gin.configurable(cls, **kwargs)
  configured.__init__.__signature__ = signature
  return configured
