"""Tests for pdr_tf.graph (tf.function without AutoGraph) and pdr_tf.render.tfg (TF-Graphics imported quickly)."""

import inspect
import subprocess
import sys

import pytest
import tensorflow as tf

import fixtures
from pdr_tf import graph


def test_graph_function_traces_explicit_control_flow_as_tf_function_does():
  @graph.function
  def clipped_sum(x):
    return tf.cond(tf.reduce_sum(x) > 1.0, lambda: tf.constant(1.0), lambda: tf.reduce_sum(x))

  assert float(clipped_sum(tf.constant([0.25, 0.25]))) == 0.5
  assert float(clipped_sum(tf.constant([2.0, 3.0]))) == 1.0
  compiled = graph.function(lambda x: x * 2.0, jit_compile=True, input_signature=[tf.TensorSpec([None])])
  assert compiled(tf.constant([1.0, 2.0])).numpy().tolist() == [2.0, 4.0]


def test_graph_function_refuses_python_control_flow_on_tensors_at_trace_time():
  @graph.function
  def branchy(x):
    if tf.reduce_sum(x) > 0:  # AutoGraph would turn this into tf.cond; pdr_tf writes tf.cond itself
      return x
    return -x

  with pytest.raises(TypeError, match="bool"):
    branchy(tf.constant([1.0]))


def test_tfg_modules_keep_their_public_names_and_inspect_stack_is_restored():
  from pdr_tf.render import tfg  # pylint: disable=import-outside-toplevel

  assert "project" in tfg.perspective.__all__ and "from_euler" in tfg.rotation_matrix_3d.__all__
  assert callable(tfg.barycentrics.compute_triangle_matrices)
  assert inspect.stack.__module__ == "inspect"


def test_importing_the_renderer_does_not_read_every_frames_source():
  # In a fresh process: TF-Graphics' modules are imported once per process, and the point is their import cost.
  code = (
    "import inspect, tensorflow\n"
    "calls = []\n"
    "original = inspect.getframeinfo\n"
    "inspect.getframeinfo = lambda *a, **k: calls.append(1) or original(*a, **k)\n"
    "import pdr_tf.render.renderer\n"
    "print(len(calls))\n"
  )
  out = subprocess.run(
    [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=fixtures.HANG_GUARD_S
  )
  assert out.stdout.split()[-1] == "0", out.stdout
