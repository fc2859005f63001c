"""Tests of pdr_tf.data.feature_spec: the Example encoder, parser, manifest and in-process writer."""

import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import fixtures
from pdr_tf.data import feature_spec

from pdr_tf.data import formats

S = formats.IMAGE_SIZE


def _png(seed=0):
  buffer = io.BytesIO()
  Image.fromarray(np.random.default_rng(seed).integers(0, 256, (S, S, 3), dtype=np.uint8)).save(buffer, "PNG")
  return buffer.getvalue()


def _full_record():
  rng = np.random.default_rng(1)
  return {
    "image/encoded": _png(),
    "label/name": "penny",
    "label/id": 2,
    "label/age": 31,
    "label/gender": 1,
    "label/race": 4,
    "track/id": "0042",
    "track/frame": 1234,
    "model/id": "ab" * 16,
    "source/path": "/raw/tracks/0042/1234.jpg",
    "split": "test",
    "gt/has": 1,
    "gt/depth": rng.uniform(0.9, 1.1, (S, S)).astype(np.float32),
    "gt/light": [0.5, 0.6, -0.1, 0.2],
    "gt/view": np.linspace(-0.3, 0.3, 6),
  }


def _tf_reference(record):
  """The same record built with TensorFlow's own protobuf API."""
  normalized = feature_spec.normalize_record(record)
  feature = {}
  for key, (kind, _, _) in feature_spec.FEATURES.items():
    value = normalized[key]
    if kind == "bytes":
      feature[key] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))
    elif kind == "int64":
      feature[key] = tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))
    else:
      feature[key] = tf.train.Feature(float_list=tf.train.FloatList(value=value.tolist()))
  return tf.train.Example(features=tf.train.Features(feature=feature))


@pytest.mark.parametrize("record", [_full_record(), {"image/encoded": b"\x89PNG-bytes"}])
def test_serialized_bytes_equal_tensorflow_deterministic_serialization(record):
  assert feature_spec.serialize_example(record) == _tf_reference(record).SerializeToString(deterministic=True)
  assert feature_spec.make_example(record) == _tf_reference(record)


def test_defaults_fill_missing_keys():
  example = feature_spec.make_example({"image/encoded": b"png"})
  feature = example.features.feature
  assert set(feature) == set(feature_spec.FEATURES)
  assert feature["label/id"].int64_list.value == [-1]
  assert feature["track/frame"].int64_list.value == [-1]
  assert feature["label/name"].bytes_list.value == [b""]
  assert feature["image/height"].int64_list.value == [S]
  assert feature["image/format"].bytes_list.value == [b"png"]
  assert feature["gt/has"].int64_list.value == [0]
  assert list(feature["gt/depth"].float_list.value) == [0.0] * (S * S)
  assert list(feature["gt/view"].float_list.value) == [0.0] * formats.GT_VIEW_DIM


@pytest.mark.parametrize(
  "record, message",
  [
    ({}, "required key 'image/encoded'"),
    ({"image/encoded": b""}, "empty"),
    ({"image/encoded": b"x", "colour": 1}, "unknown record keys"),
    ({"image/encoded": b"x", "label/id": "3"}, "label/id must be an int"),
    ({"image/encoded": b"x", "label/id": True}, "label/id must be an int"),
    ({"image/encoded": b"x", "track/id": 7}, "track/id must be str or bytes"),
    ({"image/encoded": b"x", "gt/depth": np.zeros((S, S - 1))}, "gt/depth must hold 4096"),
    ({"image/encoded": b"x", "gt/light": [1, 2, 3]}, "gt/light must hold 4"),
    ({"image/encoded": b"x", "gt/view": [np.nan] * 6}, "non-finite"),
    ({"image/encoded": b"x", "gt/has": 2}, "gt/has must be 0 or 1"),
  ],
)
def test_invalid_records_raise_a_clear_error(record, message):
  with pytest.raises(ValueError, match=message):
    feature_spec.serialize_example(record)


def test_writing_does_not_import_tensorflow():
  code = (
    "import sys; from pdr_tf.data import feature_spec; "
    "b = feature_spec.serialize_example({'image/encoded': b'x', 'gt/depth': [0.5]}); "
    "assert len(b) > 4 * 4096, len(b); assert 'tensorflow' not in sys.modules, 'tensorflow imported'"
  )
  subprocess.run([sys.executable, "-c", code], check=True, timeout=fixtures.HANG_GUARD_S)


def test_parse_example_scalar_batch_and_subset():
  record = _full_record()
  serialized = feature_spec.serialize_example(record)
  parsed = feature_spec.parse_example(tf.constant(serialized))
  assert set(parsed) == set(feature_spec.FEATURES)
  assert parsed["label/id"].numpy() == 2 and parsed["track/frame"].numpy() == 1234
  assert parsed["label/name"].numpy() == b"penny" and parsed["model/id"].numpy() == b"ab" * 16
  np.testing.assert_array_equal(parsed["gt/depth"].numpy(), record["gt/depth"].reshape(-1))
  np.testing.assert_allclose(parsed["gt/light"].numpy(), record["gt/light"])
  assert parsed["image/encoded"].numpy() == record["image/encoded"]
  batch = feature_spec.parse_example(tf.constant([serialized, feature_spec.serialize_example({"image/encoded": b"y"})]))
  assert batch["gt/depth"].shape == (2, S * S) and batch["label/id"].numpy().tolist() == [2, -1]
  subset = feature_spec.parse_example(tf.constant(serialized), ["image/encoded", "split"])
  assert sorted(subset) == ["image/encoded", "split"]
  with pytest.raises(ValueError, match="unknown feature keys"):
    feature_spec.tf_feature_description(["image"])


def test_parse_rejects_records_of_another_schema():
  other = tf.train.Example(
    features=tf.train.Features(feature={"image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"x"]))})
  )
  with pytest.raises(tf.errors.InvalidArgumentError, match="is required but could not be found"):
    feature_spec.parse_example(tf.constant(other.SerializeToString()))


def test_layout_helpers_and_class_key():
  assert feature_spec.shard_pattern("/d", "train") == "/d/train.tfrecord-*-of-*"
  assert feature_spec.shard_prefix("/d", "val") == "/d/val.tfrecord"
  assert feature_spec.class_key({"label/name": b"jeep"}) == "jeep"
  assert feature_spec.class_key({"label/name": ""}) == feature_spec.UNLABELLED


def test_build_manifest_counts_and_balance():
  manifest = feature_spec.build_manifest(
    "cars",
    {"a": 1},
    7,
    [(("train", "jeep"), 2), (("train", "unlabelled"), 1), (("test", "jeep"), 1)],
    [("not an image", 2), ("model not in metadata", 1)],
    {"train": ["/o/train.tfrecord-00000-of-00001"], "val": ["/o/val.tfrecord-00000-of-00001"]},
  )
  assert manifest["schema_version"] == feature_spec.SCHEMA_VERSION
  assert (manifest["inputs"], manifest["written"], manifest["rejected"]) == (7, 4, 3)
  assert manifest["balanced"] is True
  assert manifest["splits"] == {"test": 1, "train": 3, "val": 0}
  assert manifest["counts"] == {"test": {"jeep": 1}, "train": {"jeep": 2, "unlabelled": 1}, "val": {}}
  assert manifest["reject_reasons"] == {"model not in metadata": 1, "not an image": 2}
  assert manifest["shards"]["train"] == ["train.tfrecord-00000-of-00001"]
  assert feature_spec.build_manifest("x", {}, 5, [(("t", "a"), 1)], [], {})["balanced"] is False


def test_write_dataset_layout_and_round_trip(tmp_path):
  records = [dict(_full_record(), split="test", **{"track/frame": i}) for i in range(5)]
  records.append({"image/encoded": _png(3), "split": "train"})
  manifest = feature_spec.write_dataset(
    str(tmp_path), records, dataset="bbt", num_shards=2, rejects=[{"path": "/raw/x.jpg", "reason": "not an image"}]
  )
  assert sorted(os.listdir(tmp_path)) == sorted(
    [
      "manifest.json",
      "rejects.jsonl",
      "test.tfrecord-00000-of-00002",
      "test.tfrecord-00001-of-00002",
      "train.tfrecord-00000-of-00002",
      "train.tfrecord-00001-of-00002",
    ]
  )
  assert json.loads((tmp_path / "manifest.json").read_text()) == manifest
  assert manifest["counts"] == {"test": {"penny": 5}, "train": {"unlabelled": 1}}
  assert (manifest["inputs"], manifest["written"], manifest["rejected"]) == (7, 6, 1)
  assert (tmp_path / "rejects.jsonl").read_text() == '{"path": "/raw/x.jpg", "reason": "not an image"}\n'
  frames = []
  for shard in ("test.tfrecord-00000-of-00002", "test.tfrecord-00001-of-00002"):
    for data in tf.data.TFRecordDataset(str(tmp_path / shard)):
      frames.append(int(feature_spec.parse_example(data)["track/frame"]))
  assert frames == [0, 2, 4, 1, 3]  # round-robin over shards, in order within each
  with pytest.raises(ValueError, match="has no split"):
    feature_spec.write_dataset(str(tmp_path / "bad"), [{"image/encoded": b"x"}])


def test_a_source_path_that_is_not_utf8_is_stored_readably():
  path = b"/data/caf\xe9/1.png".decode("utf-8", "surrogateescape")  # how Python lists such a file
  record = {"image/encoded": b"png", "split": "train", "source/path": path}
  example = tf.train.Example.FromString(feature_spec.serialize_example(record))
  assert example.features.feature["source/path"].bytes_list.value[0] == b"/data/caf\\udce9/1.png"
