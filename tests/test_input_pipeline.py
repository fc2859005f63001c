"""Tests of pdr_tf.data.input_pipeline: training and evaluation datasets, sharding, distribution and errors."""

import io
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import fixtures
from pdr_tf.data import feature_spec

from pdr_tf.data import formats
from pdr_tf.data import input_pipeline

S = formats.IMAGE_SIZE
NUM_TRAIN, NUM_TEST = 10, 7


def _image(index):
  """Red is 0 on the left half and 255 on the right (shows flips); green is 10 * index (identifies it)."""
  image = np.zeros((S, S, 3), np.uint8)
  image[:, S // 2 :, 0] = 255
  image[:, :, 1] = 10 * index
  image[:5, :5, 2] = 7
  return image


def _png(image):
  buffer = io.BytesIO()
  Image.fromarray(image).save(buffer, format="PNG")
  return buffer.getvalue()


def _records():
  records = [
    {"image/encoded": _png(_image(i)), "split": "train", "source/path": f"/raw/train/{i}.png"} for i in range(NUM_TRAIN)
  ]
  for i in range(NUM_TEST):
    depth = np.full((S, S), 1.0 + i / 100.0, np.float32) if i % 2 == 0 else None
    records.append(
      {
        "image/encoded": _png(_image(i)),
        "split": "test",
        "source/path": f"/raw/test/{i}.jpg",
        "label/id": i % 5,
        "label/name": formats.BBT_IDENTITIES[i % 5],
        "track/id": f"t{i // 2}",
        "track/frame": 100 + i,
        "gt/has": int(depth is not None),
        "gt/depth": depth,
        "gt/light": [i, 0, 0, 0],
        "gt/view": [0, 0, 0, 0, 0, i],
      }
    )
  return records


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  path = str(tmp_path_factory.mktemp("data") / "two_shards")
  feature_spec.write_dataset(path, _records(), dataset="bbt", num_shards=2)
  return path


@pytest.fixture(scope="module")
def one_shard_dir(tmp_path_factory):
  path = str(tmp_path_factory.mktemp("data") / "one_shard")
  feature_spec.write_dataset(path, _records(), dataset="bbt", num_shards=1)
  return path


def _ids(images):
  """Record index of each image of a batch, from the green channel."""
  return [int(round((float(v) + 1.0) * 127.5 / 10.0)) for v in images[:, S // 2, S // 2, 1]]


def test_list_shards_and_num_examples(data_dir):
  assert [os.path.basename(p) for p in input_pipeline.list_shards(data_dir, "train")] == [
    "train.tfrecord-00000-of-00002",
    "train.tfrecord-00001-of-00002",
  ]
  assert input_pipeline.num_examples(data_dir, "test") == NUM_TEST


def test_training_batches_are_scaled_flipped_shuffled_and_repeated(data_dir):
  ds = input_pipeline.make_dataset(data_dir, "train", batch_size=4, training=True, seed=3, shuffle_buffer=16)
  assert ds.element_spec["image"].shape == (4, S, S, 3) and list(ds.element_spec) == ["image"]
  batches = [b["image"].numpy() for b in ds.take(10)]  # 40 images from 10 records: repeats
  images = np.concatenate(batches)
  assert images.dtype == np.float32 and images.min() == -1.0 and images.max() == 1.0
  flipped = images[:, 0, 0, 0] == 1.0  # red on the left: flipped
  np.testing.assert_array_equal(images[:, 0, -1, 0], np.where(flipped, -1.0, 1.0))
  assert 5 < flipped.sum() < 35
  ids = _ids(images)
  assert sorted(set(ids)) == list(range(NUM_TRAIN))
  assert ids[:NUM_TRAIN] != list(range(NUM_TRAIN))  # shuffled
  again = np.concatenate(
    [
      b["image"].numpy()
      for b in input_pipeline.make_dataset(
        data_dir, "train", batch_size=4, training=True, seed=3, shuffle_buffer=16
      ).take(10)
    ]
  )
  np.testing.assert_array_equal(again, images)  # a seed makes it reproducible


def test_training_without_repeat_drops_the_remainder(data_dir):
  ds = input_pipeline.make_dataset(data_dir, "train", batch_size=4, training=True, repeat=False, seed=0)
  assert [b["image"].shape[0] for b in ds] == [4, 4]
  ds = input_pipeline.make_dataset(
    data_dir, "train", batch_size=4, training=True, repeat=False, drop_remainder=False, seed=0
  )
  assert sorted(i for b in ds for i in _ids(b["image"].numpy())) == list(range(NUM_TRAIN))


def test_evaluation_keeps_order_labels_and_ground_truth(data_dir):
  batches = list(input_pipeline.make_dataset(data_dir, "test", batch_size=3, training=False))
  assert [b["image"].shape[0] for b in batches] == [3, 3, 1]
  merged = {k: np.concatenate([b[k].numpy() for b in batches]) for k in batches[0]}
  order = [0, 2, 4, 6, 1, 3, 5]  # write_dataset deals records round-robin over 2 shards; shards read in order
  assert merged["frame"].tolist() == [100 + i for i in order]
  assert merged["label_id"].tolist() == [i % 5 for i in order]
  assert [n.decode() for n in merged["label_name"]] == [formats.BBT_IDENTITIES[i % 5] for i in order]
  assert [t.decode() for t in merged["track_id"]] == [f"t{i // 2}" for i in order]
  assert [p.decode() for p in merged["source_path"]] == [f"/raw/test/{i}.jpg" for i in order]
  assert merged["gt_has"].tolist() == [1, 1, 1, 1, 0, 0, 0]
  assert merged["gt_depth"].shape == (NUM_TEST, S, S)
  np.testing.assert_allclose(merged["gt_depth"][1], 1.02, rtol=1e-6)
  assert merged["gt_depth"][4].max() == 0.0
  assert merged["gt_light"][:, 0].tolist() == order and merged["gt_view"][:, 5].tolist() == order
  assert merged["model_id"].tolist() == [b""] * NUM_TEST and merged["age"].tolist() == [-1] * NUM_TEST
  for row, i in enumerate(order):  # exact pixels, no flip
    np.testing.assert_array_equal(merged["image"][row], _image(i).astype(np.float32) / 127.5 - 1.0)


@pytest.mark.parametrize("fixture", ["data_dir", "one_shard_dir"])
def test_input_context_shards_are_disjoint_and_complete(fixture, request):
  path = request.getfixturevalue(fixture)
  seen = []
  for pipeline_id in range(2):
    context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=pipeline_id, num_replicas_in_sync=2)
    ds = input_pipeline.make_dataset(
      path, "train", batch_size=2, training=True, input_context=context, repeat=False, drop_remainder=False, seed=1
    )
    seen.append(sorted(i for b in ds for i in _ids(b["image"].numpy())))
  assert not set(seen[0]) & set(seen[1])
  assert sorted(seen[0] + seen[1]) == list(range(NUM_TRAIN))
  assert len(seen[0]) == NUM_TRAIN // 2


def test_missing_directory_names_the_path_and_the_command(tmp_path):
  missing = str(tmp_path / "nope")
  with pytest.raises(FileNotFoundError) as info:
    input_pipeline.make_dataset(missing, "train", 4, training=True)
  assert missing in str(info.value) and "python -m beam_pipelines." in str(info.value)
  assert "python -m pdr_tf.synthetic" in str(info.value)
  os.makedirs(tmp_path / "empty")
  with pytest.raises(FileNotFoundError, match="manifest.json is missing") as info:
    input_pipeline.list_shards(str(tmp_path / "empty"), "train")
  assert str(tmp_path / "empty") in str(info.value) and "python -m beam_pipelines." in str(info.value)
  (tmp_path / "notes.txt").write_text("mine")
  with pytest.raises(FileNotFoundError, match="notes.txt is a file, not a folder") as info:
    input_pipeline.list_shards(str(tmp_path / "notes.txt"), "train")
  assert "beam_pipelines" not in str(info.value)  # a conversion into a file cannot be the fix


def _copy_with_manifest(src, dst, **changes):
  os.makedirs(dst)
  for name in os.listdir(src):
    with open(os.path.join(src, name), "rb") as f_in, open(os.path.join(dst, name), "wb") as f_out:
      f_out.write(f_in.read())
  manifest = json.load(open(os.path.join(dst, "manifest.json")))
  manifest.update(changes)
  json.dump(manifest, open(os.path.join(dst, "manifest.json"), "w"))
  return dst


def test_schema_mismatch_is_a_clear_error(data_dir, tmp_path):
  old = _copy_with_manifest(data_dir, str(tmp_path / "old"), schema_version=feature_spec.SCHEMA_VERSION + 1)
  with pytest.raises(ValueError, match="schema version") as info:
    input_pipeline.make_dataset(old, "test", 2, training=False)
  assert old in str(info.value) and "python -m beam_pipelines.bbt" in str(info.value)


@pytest.mark.parametrize(
  "content, reason",
  [
    ("[]", "a JSON list, not an object"),
    ("null", "a JSON NoneType"),
    ('{"splits": [], "shards": null}', "its splits, shards not an object"),
  ],
)
def test_a_manifest_of_the_wrong_shape_is_named(tmp_path, content, reason):
  (tmp_path / "manifest.json").write_text(content)
  with pytest.raises(ValueError, match=rf"manifest.json is not a pdr_tf manifest \({reason}"):
    input_pipeline.read_manifest(str(tmp_path))


def test_missing_split_empty_split_and_missing_shard(data_dir, tmp_path):
  with pytest.raises(
    FileNotFoundError, match=r"no 'val' split \(splits there: \['test', 'train'\]\); choose one of them"
  ) as info:
    input_pipeline.list_shards(data_dir, "val")
  assert data_dir in str(info.value)
  manifest = json.load(open(os.path.join(data_dir, "manifest.json")))
  empty = _copy_with_manifest(data_dir, str(tmp_path / "empty_split"), splits=dict(manifest["splits"], test=0))
  with pytest.raises(ValueError, match="has no records"):
    input_pipeline.list_shards(empty, "test")
  gone = _copy_with_manifest(data_dir, str(tmp_path / "gone"))
  os.remove(os.path.join(gone, "test.tfrecord-00001-of-00002"))
  with pytest.raises(FileNotFoundError, match="test.tfrecord-00001-of-00002"):
    input_pipeline.list_shards(gone, "test")
  truncated = _copy_with_manifest(data_dir, str(tmp_path / "truncated"))
  shards = input_pipeline.list_shards(truncated, "test")
  open(shards[0], "wb").close()  # one empty shard of two: a job may write one, the other still holds records
  assert input_pipeline.list_shards(truncated, "test") == shards
  open(shards[1], "wb").close()
  with pytest.raises(
    ValueError, match=r"'test' in .*truncated: its 2 shard\(s\) are empty \(0 bytes\), yet the manifest"
  ):
    input_pipeline.list_shards(truncated, "test")


def test_a_split_typo_is_not_sent_to_the_converter_and_skipping_is_offered_only_where_it_helps(data_dir):
  with pytest.raises(FileNotFoundError, match=r"no 'tset' split .*; choose one of them$"):
    input_pipeline.list_shards(data_dir, "tset")
  some_read = input_pipeline.corrupt_data_message(data_dir, "test", [("shard-0", 120, 3)])
  assert "make_dataset.skip_corrupt=True" in some_read and "after 3 good records" in some_read
  none_read = input_pipeline.corrupt_data_message(data_dir, "test", [("shard-0", 0, 0)])
  assert "skip_corrupt" not in none_read and "skipping it cannot help" in none_read and "--overwrite" in none_read


def test_distributed_per_replica_batches_on_two_cpu_replicas(data_dir):
  # Logical devices must be configured before any op, once per process: run in a fresh interpreter.
  script = textwrap.dedent(f"""
        import json, tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from pdr_tf.data import input_pipeline
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        ds = input_pipeline.make_distributed_dataset(strategy, {data_dir!r}, "train", 4, seed=0)
        batch = next(iter(ds))
        shapes = [list(t.shape) for t in strategy.experimental_local_results(batch["image"])]
        ev = input_pipeline.make_distributed_dataset(strategy, {data_dir!r}, "test", 4, training=False,
                                                     drop_remainder=True)
        frames = sorted(int(f) for b in ev for t in strategy.experimental_local_results(b["frame"])
                        for f in t.numpy())
        print("RESULT" + json.dumps({{"replicas": strategy.num_replicas_in_sync, "shapes": shapes,
                                      "frames": frames}}))
    """)
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  result = subprocess.run(
    [sys.executable, "-c", script], capture_output=True, text=True, timeout=fixtures.HANG_GUARD_S, env=env
  )
  assert result.returncode == 0, result.stderr[-3000:]
  out = json.loads(result.stdout.split("RESULT")[-1])
  assert out["replicas"] == 2
  assert out["shapes"] == [[2, S, S, 3], [2, S, S, 3]]  # global batch 4 -> 2 per replica
  assert len(out["frames"]) == 4 and set(out["frames"]) <= set(range(100, 100 + NUM_TEST))


def test_ground_truth_batch_takes_only_records_with_ground_truth(tmp_path):
  data_dir = fixtures.write_tiny_dataset(tmp_path / "data", num_train=3, num_test=3, num_val=5)
  batch = input_pipeline.ground_truth_batch(data_dir, "val", 4)
  assert batch["image"].shape == (4, 64, 64, 3) and batch["gt_depth"].shape == (4, 64, 64)
  assert (batch["gt_has"].numpy() == 1).all()
  # The same records each time, in the split's evaluation order.
  np.testing.assert_array_equal(input_pipeline.ground_truth_batch(data_dir, "val", 4)["image"], batch["image"])
  assert input_pipeline.ground_truth_batch(data_dir, "val", 10)["image"].shape[0] == 5
  assert input_pipeline.ground_truth_batch(data_dir, "test", 4) is None  # no ground truth in that split
  with pytest.raises(FileNotFoundError):
    input_pipeline.ground_truth_batch(data_dir, "absent", 4)


def test_find_corrupt_shards_gives_the_offset_of_a_damaged_and_of_a_cut_off_record(tmp_path):
  import tensorflow as tf  # pylint: disable=import-outside-toplevel

  good = str(tmp_path / "good.tfrecord")
  with tf.io.TFRecordWriter(good) as writer:
    for _ in range(5):
      writer.write(b"x" * 100)
  data = open(good, "rb").read()  # each record: 8 length + 4 crc + 100 data + 4 crc = 116 bytes
  damaged, cut = str(tmp_path / "damaged.tfrecord"), str(tmp_path / "cut.tfrecord")
  flipped = bytearray(data)
  flipped[2 * 116 + 20] ^= 0xFF  # inside the third record's data
  open(damaged, "wb").write(bytes(flipped))
  open(cut, "wb").write(data[: 3 * 116 + 50])  # the fourth record cut off
  found = input_pipeline.find_corrupt_shards([good, damaged, cut])
  # TensorFlow names the damaged record's data (12 bytes in: its length and the length's crc) and the cut one's start
  assert found == [(damaged, 2 * 116 + 12, 2), (cut, 3 * 116, 3)]


def test_evaluation_reads_turn_a_corrupt_record_into_an_error_naming_the_shard(tmp_path, capsys):
  from pdr_tf.benchmarks import coarse_depth  # pylint: disable=import-outside-toplevel

  data_dir = fixtures.write_tiny_dataset(tmp_path / "data", num_train=2, num_test=2, num_val=4)
  (shard,) = input_pipeline.list_shards(str(data_dir), "val")
  data = open(shard, "rb").read()
  open(shard, "wb").write(data[: len(data) // 2])  # cut off in the middle of a record
  with pytest.raises(input_pipeline.CorruptDataError, match="split 'val'") as info:
    input_pipeline.ground_truth_batch(str(data_dir), "val", 4)
  assert shard in str(info.value) and "Re-convert the data" in str(info.value)
  dataset = input_pipeline.make_dataset(str(data_dir), "test", 1, training=False)
  assert len(list(input_pipeline.checked(dataset, str(data_dir), "test"))) == 2  # an intact split reads through
  assert coarse_depth.main(["--data_dir", str(data_dir), "--num_images", "4"]) == 1
  assert shard in capsys.readouterr().err


def test_corrupt_data_error_names_the_shards_or_else_keeps_tensorflows_message(tmp_path):
  data_dir = str(fixtures.write_tiny_dataset(tmp_path / "data", num_train=2, num_test=2))
  error = tf.errors.DataLossError(None, None, "checksum mismatch somewhere")
  clean = input_pipeline.corrupt_data_error(data_dir, "train", error)  # every shard reads through again
  assert isinstance(clean, input_pipeline.CorruptDataError)
  assert str(clean) == f"corrupt 'train' data in {data_dir}: checksum mismatch somewhere"
  (shard,) = input_pipeline.list_shards(data_dir, "train")
  data = open(shard, "rb").read()
  open(shard, "wb").write(data[: len(data) // 2])
  assert shard in str(input_pipeline.corrupt_data_error(data_dir, "train", error))


def test_coarse_depth_benchmark_prints_and_writes_its_table(tmp_path, capsys):
  from pdr_tf.benchmarks import coarse_depth  # pylint: disable=import-outside-toplevel

  data_dir = fixtures.write_tiny_dataset(tmp_path / "data", num_train=2, num_test=2, num_val=4)
  out = tmp_path / "coarse.json"
  assert coarse_depth.main(["--data_dir", str(data_dir), "--num_images", "4", "--json", str(out)]) == 0
  report = json.loads(out.read_text())
  assert report["written_by"] == coarse_depth.REPORT_WRITER and report["images"] == 4
  assert set(report) >= {"flat", "16_far", "32_far", "16_nearest", "32_nearest"}
  assert all(0 <= report[k] <= 180 for k in ("flat", "16_far", "32_nearest"))
  assert "16_far" in capsys.readouterr().out
  # A split without ground-truth depth is named.
  assert coarse_depth.main(["--data_dir", str(data_dir), "--split", "test", "--num_images", "2"]) == 1
  assert "has no ground-truth depth" in capsys.readouterr().err
