"""Builds TF-Graphics' CPU triangle rasterization kernel from the sources its wheel ships, and loads it.

The prebuilt `rasterizer_op.so` inside tensorflow-graphics 2021.12.3 does not load on current TensorFlow (C++ ABI),
but the wheel also ships the kernel's C++ sources. This module compiles them against the *installed* TensorFlow at
first use into a per-user cache keyed by TensorFlow version and source hash, guarded by a file lock so that several
processes starting at once build it only once, and loads the result with `tf.load_op_library`. No file of another
package is modified and no foreign source is copied into this repository.

Environment:
  PDR_TF_CACHE_DIR  cache root (default: $XDG_CACHE_HOME/pdr_tf or ~/.cache/pdr_tf).
  CXX               C++ compiler to use (default: g++, then c++, then clang++ on PATH).
"""

import dataclasses
import fcntl
import functools
import hashlib
import importlib.util
import logging
import os
import shutil
import subprocess
import tempfile
import time

import tensorflow as tf

logger = logging.getLogger(__name__)

_SOURCES = ("rasterize_triangles_op.cc", "rasterize_triangles_impl.cc")
_HEADERS = ("rasterize_triangles_impl.h",)
_LIBRARY_NAME = "rasterize_triangles_op.so"
_COMPILER_CANDIDATES = ("g++", "c++", "clang++")

INSTALL_HINT = (
  "pdr_tf compiles TF-Graphics' rasterization kernel at first use and needs a C++17 compiler. "
  "Install one (Debian/Ubuntu: `apt-get install g++`; Fedora: `dnf install gcc-c++`; "
  "macOS: `xcode-select --install`) or point the CXX environment variable at it. "
  "Alternatively use the pure-TensorFlow rasterizer backend where available."
)


class KernelBuildError(RuntimeError):
  """The rasterization kernel could not be compiled or loaded; the message says what to do."""


@dataclasses.dataclass(frozen=True)
class KernelBuild:
  """Where the compiled kernel lives and whether this call compiled it."""

  path: str
  compiled: bool
  seconds: float


def cache_root() -> str:
  """Returns the per-user cache root for pdr_tf artefacts."""
  if os.environ.get("PDR_TF_CACHE_DIR"):
    return os.environ["PDR_TF_CACHE_DIR"]
  base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
  return os.path.join(base, "pdr_tf")


def kernel_source_dir() -> str:
  """Returns the folder of the installed tensorflow-graphics kernel sources (without importing that package)."""
  spec = importlib.util.find_spec("tensorflow_graphics")
  if spec is None or not spec.submodule_search_locations:
    raise KernelBuildError("tensorflow-graphics is not installed: `pip install tensorflow-graphics==2021.12.3`.")
  folder = os.path.join(list(spec.submodule_search_locations)[0], "rendering", "kernels")
  missing = [f for f in _SOURCES + _HEADERS if not os.path.isfile(os.path.join(folder, f))]
  if missing:
    raise KernelBuildError(
      f"tensorflow-graphics at {folder} lacks the kernel sources {missing}; reinstall it with "
      "`pip install --force-reinstall tensorflow-graphics==2021.12.3`."
    )
  return folder


def find_compiler() -> str:
  """Returns the C++ compiler to use, or raises KernelBuildError with installation advice."""
  configured = os.environ.get("CXX")
  if configured:
    resolved = shutil.which(configured)
    if resolved is None:
      raise KernelBuildError(f"The compiler named by CXX={configured!r} was not found. {INSTALL_HINT}")
    return resolved
  for name in _COMPILER_CANDIDATES:
    resolved = shutil.which(name)
    if resolved:
      return resolved
  raise KernelBuildError(f"No C++ compiler found on PATH (tried {', '.join(_COMPILER_CANDIDATES)}). {INSTALL_HINT}")


def _build_flags() -> list:
  return ["-std=c++17", "-shared", "-fPIC", "-O2"] + tf.sysconfig.get_compile_flags() + tf.sysconfig.get_link_flags()


def _cache_key(source_dir: str) -> str:
  digest = hashlib.sha256()
  for name in _SOURCES + _HEADERS:
    with open(os.path.join(source_dir, name), "rb") as f:
      digest.update(name.encode() + b"\0" + f.read())
  digest.update(" ".join(_build_flags()).encode())
  return f"tf-{tf.__version__}-{digest.hexdigest()[:16]}"


def kernel_path(cache_dir: str = None) -> str:
  """Returns where the compiled kernel for the installed TensorFlow and sources lives (built or not)."""
  source_dir = kernel_source_dir()
  return os.path.join(cache_dir or cache_root(), "kernels", _cache_key(source_dir), _LIBRARY_NAME)


def build_kernel(cache_dir: str = None) -> KernelBuild:
  """Compiles the kernel into the cache unless it is already there.

  Safe when several processes call it at once: an exclusive file lock serialises builders, and the library is
  written to a temporary name and renamed into place, so a reader never sees a half-written file.

  Args:
    cache_dir: cache root; defaults to `cache_root()`.

  Returns:
    A KernelBuild naming the library path and whether this call compiled it.

  Raises:
    KernelBuildError: no compiler, missing sources, or the compiler failed (its output is included).
  """
  start = time.monotonic()
  source_dir = kernel_source_dir()
  path = kernel_path(cache_dir)
  if os.path.isfile(path):
    return KernelBuild(path, compiled=False, seconds=time.monotonic() - start)
  folder = os.path.dirname(path)
  os.makedirs(folder, exist_ok=True)
  with open(os.path.join(folder, ".lock"), "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
      if os.path.isfile(path):  # another process built it while we waited for the lock
        return KernelBuild(path, compiled=False, seconds=time.monotonic() - start)
      compiler = find_compiler()
      fd, tmp_path = tempfile.mkstemp(dir=folder, suffix=".so.tmp")
      os.close(fd)
      command = [compiler] + [os.path.join(source_dir, s) for s in _SOURCES] + ["-o", tmp_path] + _build_flags()
      logger.info("Compiling TF-Graphics rasterization kernel (once per TensorFlow version) into %s", path)
      try:
        result = subprocess.run(command, capture_output=True, text=True, check=False)
      except OSError as e:
        os.unlink(tmp_path)
        raise KernelBuildError(f"Could not run the C++ compiler {compiler!r}: {e}. {INSTALL_HINT}") from e
      if result.returncode != 0:
        os.unlink(tmp_path)
        raise KernelBuildError(
          f"Compiling the rasterization kernel failed (exit {result.returncode}) with {compiler}:\n"
          f"{result.stderr[-4000:]}\nCommand: {' '.join(command)}"
        )
      os.replace(tmp_path, path)
    finally:
      fcntl.flock(lock, fcntl.LOCK_UN)
  seconds = time.monotonic() - start
  logger.info("Built %s in %.1f s", path, seconds)
  return KernelBuild(path, compiled=True, seconds=seconds)


@functools.lru_cache(maxsize=None)
def load_kernel(cache_dir: str = None):
  """Builds (if needed) and loads the kernel once per process; returns the op module with `rasterize_triangles`."""
  build = build_kernel(cache_dir)
  try:
    return tf.load_op_library(build.path)
  except (tf.errors.NotFoundError, OSError) as e:
    raise KernelBuildError(
      f"The compiled kernel {build.path} failed to load ({e}). Delete that file to rebuild it; "
      "if it fails again, report the TensorFlow version and the error."
    ) from e


@functools.lru_cache(maxsize=None)
def kernel_available() -> bool:
  """Whether the kernel can be built (or is cached) and loaded here; says why once when not."""
  try:
    load_kernel()
    return True
  except KernelBuildError as e:
    logger.warning("Rasterizer kernel unavailable, using the pure-TensorFlow backend: %s", e)
    return False
