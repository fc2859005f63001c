"""Tests for pdr_tf.datasets: the embedded synthetic data is generated and converted once, on first use."""

import json
import os

import pytest

from pdr_tf import datasets
from pdr_tf import input_pipeline

TINY = {
    "cars": {"train_models_per_class": 1, "val_models_per_class": 1, "test_models_per_class": 1,
             "images_per_model": 1},
    "faces": {"num_identities": 4, "images_per_identity": 1},
}


@pytest.mark.slow
@pytest.mark.parametrize("world", ["cars", "faces"])
def test_ensure_synthetic_generates_and_converts_once(tmp_path, world):
  data_dir = str(tmp_path / world / "tfrecords")
  assert datasets.ensure_synthetic(world, data_dir, sizes=TINY[world], num_workers=1) == data_dir
  with open(os.path.join(data_dir, "manifest.json")) as f:
    manifest = json.load(f)
  assert manifest["written"] > 0 and manifest["rejected"] == 0
  assert input_pipeline.list_shards(data_dir, "train")
  mtime = os.path.getmtime(os.path.join(data_dir, "manifest.json"))
  datasets.ensure_synthetic(world, data_dir, sizes=TINY[world], num_workers=1)  # second call: nothing to do
  assert os.path.getmtime(os.path.join(data_dir, "manifest.json")) == mtime


def test_unknown_world_is_refused(tmp_path):
  with pytest.raises(ValueError, match="Unknown synthetic world"):
    datasets.ensure_synthetic("boats", str(tmp_path / "tfrecords"))


def test_raw_dir_sits_beside_tfrecords():
  assert datasets.raw_dir_for("data/cars/tfrecords") == os.path.join("data", "cars", "raw")
  assert datasets.raw_dir_for("data/cars/tfrecords/") == os.path.join("data", "cars", "raw")
