"""The TF-Graphics modules pdr_tf uses, imported in one place without TF-Graphics' slow import-time bookkeeping.

Every tensorflow_graphics module computes its `__all__` while it is imported, through
`tensorflow_graphics.util.export_api`, which calls `inspect.stack()` only to find its caller's module. With source
context, `inspect.stack()` looks up the source of every frame on the stack, and for each of the import system's
frozen frames it scans all of `sys.modules`: once TensorFlow and Keras are loaded (about 3,800 modules), importing
pdr_tf's trainer took 4.4-11.7 s of every process's start-up, 0.40-0.55 s without it (docs/performance.md,
"Start-up"). Here `inspect.stack` returns the frames without their source context while they are imported; what
TF-Graphics reads of it (the caller's frame) is the same.
"""

import contextlib
import inspect
import sys


@contextlib.contextmanager
def _stack_without_source_context():
  original = inspect.stack

  def stack(context=1):  # same signature; frames as (frame, filename, lineno, function, None, None) tuples
    del context
    frames, frame = [], sys._getframe(1)  # pylint: disable=protected-access
    while frame is not None:
      frames.append((frame, frame.f_code.co_filename, frame.f_lineno, frame.f_code.co_name, None, None))
      frame = frame.f_back
    return frames

  inspect.stack = stack
  try:
    yield
  finally:
    inspect.stack = original


with _stack_without_source_context():
  # pylint: disable=unused-import
  from tensorflow_graphics.geometry.transformation import rotation_matrix_3d
  from tensorflow_graphics.rendering import barycentrics
  from tensorflow_graphics.rendering.camera import perspective

__all__ = ["barycentrics", "perspective", "rotation_matrix_3d"]
