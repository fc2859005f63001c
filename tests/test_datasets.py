"""Tests for pdr_tf.data.datasets: the embedded synthetic data is generated and converted once, on first use."""

import json
import os

import pytest

from pdr_tf.data import datasets
from pdr_tf.data import input_pipeline

TINY = {
  "cars": {"train_models_per_class": 1, "val_models_per_class": 1, "test_models_per_class": 1, "images_per_model": 1},
  "faces": {"num_identities": 4, "images_per_identity": 1},
}


@pytest.mark.slow
@pytest.mark.parametrize("world", ["cars", "faces"])
def test_ensure_synthetic_generates_and_converts_once(tmp_path, world):
  data_dir = str(tmp_path / world / "tfrecords")
  assert datasets.ensure_synthetic(world, data_dir, sizes=TINY[world], num_workers=1, own_dir=data_dir) == data_dir
  with open(os.path.join(data_dir, "manifest.json")) as f:
    manifest = json.load(f)
  assert manifest["written"] > 0 and manifest["rejected"] == 0
  assert input_pipeline.list_shards(data_dir, "train")
  mtime = os.path.getmtime(os.path.join(data_dir, "manifest.json"))
  datasets.ensure_synthetic(world, data_dir, sizes=TINY[world], num_workers=1)  # second call: nothing to do
  with pytest.raises(ValueError, match="'shapenet_cars' dataset" if world == "cars" else "'utkface' dataset"):
    datasets.ensure_synthetic("faces" if world == "cars" else "cars", data_dir)  # another world's data
  assert os.path.getmtime(os.path.join(data_dir, "manifest.json")) == mtime


def test_the_progress_flag_reaches_the_generator(tmp_path, monkeypatch):
  # An unattended run (`reproduce --no_progress`, its log a file) gets no progress bars from the world's generator.
  from pdr_tf import synthetic  # pylint: disable=import-outside-toplevel

  class Stop(Exception):
    pass

  seen = []

  def fake_generate(world, output_dir, seed=0, progress=True, **sizes):
    seen.append((world, progress))
    raise Stop

  monkeypatch.setattr(synthetic, "generate", fake_generate)
  data_dir = str(tmp_path / "tfrecords")
  for progress in (False, True):
    with pytest.raises(Stop):
      datasets.ensure_synthetic("faces", data_dir, own_dir=data_dir, progress=progress)
  assert seen == [("faces", False), ("faces", True)]


def test_unknown_world_is_refused(tmp_path):
  with pytest.raises(ValueError, match="Unknown synthetic world"):
    datasets.ensure_synthetic("boats", str(tmp_path / "tfrecords"))


def test_raw_dir_sits_beside_tfrecords():
  assert datasets.raw_dir_for("data/cars/tfrecords") == os.path.join("data", "cars", "raw")
  assert datasets.raw_dir_for("data/cars/tfrecords/") == os.path.join("data", "cars", "raw")


def test_a_folder_with_data_pdr_tf_did_not_write_is_refused_and_kept(tmp_path):
  # Shards copied by hand, without the manifest a conversion writes: never replaced by a synthetic world.
  data_dir = tmp_path / "mine"
  data_dir.mkdir()
  for i in range(3):
    (data_dir / f"train.tfrecord-0000{i}-of-00003").write_bytes(b"precious")
  with pytest.raises(ValueError, match="no manifest.json") as info:
    datasets.ensure_synthetic("cars", str(data_dir), own_dir=str(data_dir))
  assert str(data_dir) in str(info.value)
  assert sorted(os.listdir(data_dir)) == [f"train.tfrecord-0000{i}-of-00003" for i in range(3)]
  assert all((data_dir / n).read_bytes() == b"precious" for n in os.listdir(data_dir))
  assert not (tmp_path / "raw").exists()


def test_a_missing_data_dir_is_generated_only_at_the_worlds_own_location(tmp_path):
  typo = str(tmp_path / "data" / "cars" / "tfrecrods")
  with pytest.raises(FileNotFoundError) as info:
    datasets.ensure_synthetic("cars", typo, own_dir=str(tmp_path / "data" / "cars" / "tfrecords"))
  message = str(info.value)
  assert typo in message and "python -m beam_pipelines.shapenet_cars" in message
  assert not os.path.exists(typo) and not (tmp_path / "data" / "cars" / "raw").exists()
  assert datasets.default_data_dir("faces") == os.path.join("data", "faces", "tfrecords")


def test_a_world_another_process_is_making_is_waited_for_not_made_twice(tmp_path, monkeypatch, caplog):
  from pdr_tf import synthetic  # pylint: disable=import-outside-toplevel

  def must_not_generate(*args, **kwargs):
    raise AssertionError("the world was generated twice")

  monkeypatch.setattr(synthetic, "generate", must_not_generate)
  monkeypatch.setattr(datasets.time, "sleep", lambda seconds: None)
  data_dir = tmp_path / "faces" / "tfrecords"
  holder = datasets.locks.FolderLock(str(tmp_path / "faces" / datasets.PROVISION_LOCK_FILENAME), "the other process")
  (tmp_path / "faces").mkdir()
  holder.acquire()
  tries = []
  real_acquire = datasets.locks.FolderLock.acquire

  def acquire(self):
    tries.append(1)
    if len(tries) == 3:  # meanwhile the other process finishes the dataset and lets go
      data_dir.mkdir()
      manifest = {"dataset": "utkface", "schema_version": datasets.feature_spec.SCHEMA_VERSION}
      (data_dir / "manifest.json").write_text(json.dumps(manifest))
      holder.release()
    return real_acquire(self)

  monkeypatch.setattr(datasets.locks.FolderLock, "acquire", acquire)
  with caplog.at_level("INFO", logger="pdr_tf.data.datasets"):
    assert datasets.ensure_synthetic("faces", str(data_dir), own_dir=str(data_dir)) == str(data_dir)
  assert (
    len(tries) == 3 and "Waiting for the synthetic faces world" in caplog.text and "the other process" in caplog.text
  )
  assert sorted(os.listdir(tmp_path / "faces")) == ["tfrecords"]  # the lock is released


def test_a_raw_world_made_with_other_settings_is_made_again_as_configured(tmp_path, monkeypatch, caplog):
  import beam_pipelines  # pylint: disable=import-outside-toplevel

  from pdr_tf import synthetic  # pylint: disable=import-outside-toplevel

  class Stop(Exception):
    pass

  generated = []

  def generate(world, output_dir, seed=0, progress=True, **sizes):
    generated.append((world, seed, sizes))
    raise Stop

  def convert(*args, **kwargs):
    raise Stop

  summary = {"world": "faces", "seed": 0, "sizes": dict(synthetic.default_sizes("faces"))}
  monkeypatch.setattr(synthetic, "is_complete", lambda folder: True)
  monkeypatch.setattr(synthetic, "read_summary", lambda folder: summary)
  monkeypatch.setattr(synthetic, "generate", generate)
  monkeypatch.setattr(beam_pipelines, "convert", convert)
  data_dir = str(tmp_path / "tfrecords")
  with pytest.raises(Stop):  # the same settings: converted as it is
    datasets.ensure_synthetic("faces", data_dir, own_dir=data_dir)
  assert generated == []
  with pytest.raises(Stop):  # another seed: made again, with a warning naming both
    datasets.ensure_synthetic("faces", data_dir, own_dir=data_dir, seed=3, sizes=TINY["faces"])
  assert generated == [("faces", 3, TINY["faces"])]
  assert "made with seed 0" in caplog.text and "again with seed 3" in caplog.text
