"""Tests for pdr_tf.render.kernel_build: cached compilation, concurrent builders, and the documented errors."""

import json
import os
import subprocess
import sys

import pytest

import fixtures
from pdr_tf.render import kernel_build

_BUILD_SCRIPT = (
  "import json; from pdr_tf.render import kernel_build as k; b = k.build_kernel(); k.load_kernel(); "
  "print(json.dumps({'path': b.path, 'compiled': b.compiled}))"
)


def _run_build(env):
  return subprocess.Popen(
    [sys.executable, "-c", _BUILD_SCRIPT], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
  )


def _result(proc):
  out, err = proc.communicate(timeout=fixtures.HANG_GUARD_S)
  assert proc.returncode == 0, err[-2000:]
  return json.loads(out.strip().splitlines()[-1])


@pytest.mark.slow
def test_concurrent_builders_compile_once_and_later_calls_use_the_cache(tmp_path):
  env = dict(os.environ, PDR_TF_CACHE_DIR=str(tmp_path), TF_CPP_MIN_LOG_LEVEL="3")
  first, second = _run_build(env), _run_build(env)  # started together: the file lock serialises them
  results = [_result(first), _result(second)]
  assert sorted(r["compiled"] for r in results) == [False, True]
  assert results[0]["path"] == results[1]["path"] and results[0]["path"].startswith(str(tmp_path))
  mtime = os.path.getmtime(results[0]["path"])
  again = _result(_run_build(env))
  assert again["compiled"] is False and os.path.getmtime(again["path"]) == mtime
  assert not [f for f in os.listdir(os.path.dirname(again["path"])) if f.endswith(".tmp")]


def test_cache_key_names_tensorflow_version(tmp_path):
  import tensorflow as tf

  path = kernel_build.kernel_path(str(tmp_path))
  assert f"tf-{tf.__version__}-" in path and path.endswith(".so")


def test_missing_compiler_gives_install_advice(tmp_path, monkeypatch):
  monkeypatch.setenv("CXX", str(tmp_path / "no" / "such" / "g++"))
  with pytest.raises(kernel_build.KernelBuildError, match="apt-get install g\\+\\+"):
    kernel_build.build_kernel(str(tmp_path))


def test_no_compiler_on_path_gives_install_advice(tmp_path, monkeypatch):
  monkeypatch.delenv("CXX", raising=False)
  monkeypatch.setenv("PATH", str(tmp_path))
  with pytest.raises(kernel_build.KernelBuildError, match="No C\\+\\+ compiler found"):
    kernel_build.build_kernel(str(tmp_path))


def test_failing_compiler_reports_its_output(tmp_path, monkeypatch):
  fake = tmp_path / "fake-cxx"
  fake.write_text("#!/bin/sh\necho 'fatal: broken toolchain' >&2\nexit 3\n")
  fake.chmod(0o755)
  monkeypatch.setenv("CXX", str(fake))
  with pytest.raises(kernel_build.KernelBuildError, match="broken toolchain"):
    kernel_build.build_kernel(str(tmp_path / "cache"))
  folder = os.path.dirname(kernel_build.kernel_path(str(tmp_path / "cache")))
  assert not [f for f in os.listdir(folder) if f.endswith(".so") or f.endswith(".tmp")]
