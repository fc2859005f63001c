"""The package as users install it: gin files as package data, and entry points that load only what they use."""

import glob
import os
import shutil
import subprocess
import sys
import zipfile

from pdr_tf import gin_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc")


def test_gin_dir_holds_the_shipped_gin_files():
  assert os.path.isfile(os.path.join(gin_config.GIN_DIR, "cars_light_view.gin"))
  assert os.path.isfile(os.path.join(gin_config.GIN_DIR, "pieces", "cars.gin"))


def test_wheel_ships_every_gin_file_as_package_data(tmp_path):
  source = tmp_path / "source"  # a copy, so that the build writes nothing into the checkout
  source.mkdir()
  for name in ("setup.py", "pyproject.toml", "README.md", "pdr_tf", "beam_pipelines", "gin"):
    copy = shutil.copytree if os.path.isdir(os.path.join(REPO, name)) else shutil.copy
    copy(os.path.join(REPO, name), source / name, **({"ignore": IGNORE} if copy is shutil.copytree else {}))
  # --no-build-isolation --no-deps: nothing is downloaded; setuptools comes with the environment.
  subprocess.run(
    [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), source],
    check=True,
    capture_output=True,
  )
  (wheel,) = glob.glob(str(tmp_path / "*.whl"))
  names = set(zipfile.ZipFile(wheel).namelist())
  shipped = {
    os.path.relpath(path, os.path.join(REPO, "gin")).replace(os.sep, "/")
    for path in glob.glob(os.path.join(REPO, "gin", "**", "*.gin"), recursive=True)
  }
  assert shipped and {f"pdr_tf/configs/{name}" for name in shipped} <= names


def test_evaluate_loads_no_network_or_rasterizer():
  """Scoring a SavedModel needs neither the Keras networks nor the rasterizer: gin registration is the entry
  points' business, not the gin parsing helper's."""
  code = (
    "import sys; from pdr_tf import evaluate, gin_config; "
    "print(sorted(m for m in ('pdr_tf.model.networks', 'pdr_tf.model.de_renderer', 'pdr_tf.render.rasterizer', "
    "'pdr_tf.render.renderer') if m in sys.modules))"
  )
  out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=REPO)
  assert out.stdout.strip().splitlines()[-1] == "[]"
