"""Tests of beam_pipelines.common: listing, the ProcessImage and EncodeExample DoFns, deterministic shards."""

import importlib
import os
import types

import numpy as np
import pytest
from apache_beam import pvalue

from beam_pipelines import common, inputs
from pdr_tf.data import feature_spec
from pdr_tf.data import formats
from fixtures import gt_npz as _npz, png_image as _png, random_rgb as _rgb  # pylint: disable=wrong-import-order


def test_gt_path_and_listing(tmp_path, caplog):
  assert inputs.gt_path_for("/a/b/x_1.png") == "/a/b/x_1" + formats.GT_SUFFIX
  for name in ("a.png", "a.jpg", "a.gt.npz", "b.png", ".hidden", "orphan.gt.npz", "b.png.gt.npz"):
    (tmp_path / name).write_bytes(b"x")
  paths = common.match_files(os.path.join(str(tmp_path), "*"))
  names = ["a.gt.npz", "a.jpg", "a.png", "b.png", "b.png.gt.npz", "orphan.gt.npz"]
  assert [os.path.basename(p) for p in paths] == names
  items = common.pair_ground_truth(paths)
  assert [(os.path.basename(i["path"]), i["gt_path"] and os.path.basename(i["gt_path"])) for i in items] == [
    ("a.jpg", "a.gt.npz"),
    ("a.png", "a.gt.npz"),  # one sidecar serves both images of the stem: not an orphan
    ("b.png", None),
  ]
  # The misnamed and the lone sidecar are named, so the user can see why b.png has no ground truth.
  assert "2 ground-truth sidecars have no image beside them" in caplog.text
  assert "b.png.gt.npz" in caplog.text and "orphan.gt.npz" in caplog.text


def test_list_inputs_transform_matches_the_driver_listing(tmp_path):
  import apache_beam as beam  # pylint: disable=import-outside-toplevel
  from apache_beam.options.pipeline_options import PipelineOptions  # pylint: disable=import-outside-toplevel
  from apache_beam.testing.util import assert_that, equal_to  # pylint: disable=import-outside-toplevel

  os.makedirs(tmp_path / "sub")
  for name in (
    "a.png",
    "a.gt.npz",
    "b.jpg",
    "b.jpg.chip.jpg",
    ".hidden",
    "orphan.gt.npz",
    "skip.csv",
    "sub/c.png",
    "sub/c.gt.npz",
  ):
    (tmp_path / name).write_bytes(b"x")
  patterns = [os.path.join(str(tmp_path), "*"), os.path.join(str(tmp_path), "*", "*")]
  expected = common.pair_ground_truth(
    sorted(p for pattern in patterns for p in common.match_files(pattern, ("skip.csv",)))
  )
  assert len(expected) == 4 and sum(1 for item in expected if item["gt_path"]) == 2
  options = PipelineOptions(["--runner=FnApiRunner", "--direct_running_mode=in_memory"])
  with beam.Pipeline(options=options) as pipeline:
    items = pipeline | common.ListInputs(patterns, ("skip.csv",))
    assert_that(
      items | beam.Map(lambda item: (item["path"], item["gt_path"])),
      equal_to([(item["path"], item["gt_path"]) for item in expected]),
    )


def test_shards_for():
  assert common.shards_for(0) == 1
  assert common.shards_for(4001, images_per_shard=2000) == 3
  assert common.shards_for(10, num_shards=4) == 4


# --- deterministic shards -------------------------------------------------------------------------------------------


def _write_shards(output_dir, records, num_shards):
  import apache_beam as beam  # pylint: disable=import-outside-toplevel

  options = beam.options.pipeline_options.PipelineOptions(["--runner=FnApiRunner", "--direct_running_mode=in_memory"])
  with beam.Pipeline(options=options) as p:
    _ = (
      p
      | beam.Create(records, reshuffle=False)
      | beam.ParDo(common.EncodeExample())
      | common.WriteShards(output_dir, "train", num_shards)
    )
  return {n: open(os.path.join(output_dir, n), "rb").read() for n in sorted(os.listdir(output_dir))}


def _records(prefix, count):
  return [
    {"image/encoded": bytes([i]) * 10, "split": "train", "source/path": f"{prefix}/{i}.png"} for i in range(count)
  ]


def test_shard_of_spreads_records_over_every_shard():
  digests = [common.image_digest({"image/encoded": str(i).encode()}) for i in range(4000)]
  counts = np.bincount([common.shard_of(d, 4) for d in digests], minlength=4)
  assert counts.sum() == 4000 and counts.min() > 900, counts


def test_write_shards_gives_the_same_bytes_whatever_the_input_order(tmp_path):
  import tensorflow as tf  # pylint: disable=import-outside-toplevel

  records = _records("/raw", 9)
  first = _write_shards(str(tmp_path / "a"), records, 3)
  second = _write_shards(str(tmp_path / "b"), records[::-1], 3)
  assert first == second and sorted(first) == [f"train.tfrecord-0000{i}-of-00003" for i in range(3)]
  read = [r.numpy() for n in sorted(first) for r in tf.data.TFRecordDataset(str(tmp_path / "a" / n))]
  assert sorted(read) == sorted(feature_spec.serialize_example(r) for r in records)  # valid framing, each record once
  for name in first:  # records of a shard ordered by their image's digest
    images = [
      feature_spec.parse_example(r, ["image/encoded"])["image/encoded"].numpy()
      for r in tf.data.TFRecordDataset(str(tmp_path / "a" / name))
    ]
    assert images == sorted(images, key=lambda image: common.image_digest({"image/encoded": image}))


def test_the_order_follows_the_images_not_the_source_paths(tmp_path):
  import tensorflow as tf  # pylint: disable=import-outside-toplevel

  def images(directory):
    return [
      feature_spec.parse_example(r, ["image/encoded"])["image/encoded"].numpy()
      for n in sorted(os.listdir(directory))
      for r in tf.data.TFRecordDataset(os.path.join(directory, n))
    ]

  _write_shards(str(tmp_path / "a"), _records("/one/folder", 12), 2)
  _write_shards(str(tmp_path / "b"), _records("/another/place", 12)[::-1], 2)
  assert images(str(tmp_path / "a")) == images(str(tmp_path / "b"))


def test_write_shards_writes_empty_shards_too(tmp_path):
  shards = _write_shards(str(tmp_path / "out"), _records("/raw", 1), 4)
  assert sorted(shards) == [f"train.tfrecord-0000{i}-of-00004" for i in range(4)]  # no hidden partial files left
  assert sum(len(data) > 0 for data in shards.values()) == 1


# --- DoFns ----------------------------------------------------------------------------------------------------------


def _item(tmp_path, name, data, gt=None, record=None):
  path = tmp_path / name
  path.write_bytes(data)
  gt_path = None
  if gt is not None:
    gt_path = str(path.with_suffix("")) + formats.GT_SUFFIX
    with open(gt_path, "wb") as f:
      f.write(gt)
  return {"path": str(path), "gt_path": gt_path, "record": record or {"split": "train"}}


def test_process_image_yields_a_full_record(tmp_path):
  raw = np.zeros((128, 128, 3), np.uint8)
  raw[8:108, 14:114] = 200  # exactly the syncar crop region
  depth = np.zeros((128, 128), np.float32)
  depth[8:108, 14:114] = 1.05
  item = _item(tmp_path, "a.png", _png(raw), gt=_npz(depth), record={"split": "val", "label/id": 3})
  box = lambda w, h: (14, 8, 114, 108)  # noqa: E731
  (record,) = list(common.ProcessImage(box).process(item))
  assert record["split"] == "val" and record["label/id"] == 3 and record["source/path"] == item["path"]
  image, _ = inputs.decode_image(record["image/encoded"])
  assert image.shape == (64, 64, 3) and image.min() == 200 and image.max() == 200
  assert record["gt/has"] == 1 and record["gt/depth"].shape == (64, 64)
  np.testing.assert_allclose(record["gt/depth"], 1.05)
  assert record["gt/light"].tolist() == [0, 1, 2, 3]
  feature_spec.serialize_example(record)  # a valid record of the schema


def test_process_image_rejects_with_tagged_output_and_strict_raises(tmp_path):
  item = _item(tmp_path, "bad.png", b"not an image")
  (out,) = list(common.ProcessImage(inputs.center_box).process(item))
  assert isinstance(out, pvalue.TaggedOutput) and out.tag == common.REJECTS_TAG
  assert out.value == {"path": item["path"], "reason": inputs.REASON_NOT_IMAGE}
  good = _item(tmp_path, "good.png", _png(_rgb(32, 32)), gt=b"broken sidecar")
  (out,) = list(common.ProcessImage(inputs.center_box).process(good))
  assert out.value["reason"] == inputs.REASON_BAD_GT
  missing = {"path": str(tmp_path / "gone.png"), "gt_path": None, "record": {"split": "train"}}
  (out,) = list(common.ProcessImage(inputs.center_box).process(missing))
  assert out.value["reason"] == inputs.REASON_UNREADABLE
  with pytest.raises(inputs.RejectedInputError, match="bad.png: not an image"):
    list(common.ProcessImage(inputs.center_box, strict=True).process(item))


def test_an_unexpected_error_on_one_file_is_a_counted_reject_not_a_failed_job(tmp_path, monkeypatch, caplog):
  def surprise(*args, **kwargs):
    raise TypeError("something no check foresaw")

  monkeypatch.setattr(inputs, "crop_resize", surprise)
  item = _item(tmp_path, "odd.png", _png(_rgb(32, 32)))
  (out,) = list(common.ProcessImage(inputs.center_box).process(item))
  assert out.tag == common.REJECTS_TAG and out.value == {"path": item["path"], "reason": "unexpected error (TypeError)"}
  assert "odd.png: unexpected TypeError" in caplog.text and "something no check foresaw" in caplog.text


def test_encode_example_serializes_the_schema():
  record = {"image/encoded": inputs.encode_png(_rgb(64, 64)), "split": "test", "label/id": 2}
  ((digest, data),) = list(common.EncodeExample().process(record))
  assert data == feature_spec.serialize_example(record) and digest == common.image_digest(record)


# --- runner ---------------------------------------------------------------------------------------------------------


def test_input_folder_and_file_checks_name_a_file_or_a_folder(tmp_path):
  a_file, a_folder = tmp_path / "file.txt", tmp_path / "folder"
  a_file.write_text("x")
  a_folder.mkdir()
  common.check_input_dir(str(a_folder), "input directory")
  common.check_input_file(str(a_file), "labels file")
  with pytest.raises(ValueError, match=f"^input directory {a_file} is a file, not a folder$"):
    common.check_input_dir(str(a_file), "input directory")
  with pytest.raises(ValueError, match=f"^input directory {tmp_path / 'nope'} does not exist$"):
    common.check_input_dir(str(tmp_path / "nope"), "input directory")
  with pytest.raises(ValueError, match=f"^labels file {a_folder} is a folder, not a file$"):
    common.check_input_file(str(a_folder), "labels file")
  with pytest.raises(ValueError, match=r"does not exist \(pass --labels\)$"):
    common.check_input_file(str(tmp_path / "nope"), "labels file", " (pass --labels)")
  assert common.is_local("/a/b") and common.is_local("rel/x") and not common.is_local("gs://bucket/raw")


def test_entries_the_local_listing_would_drop_are_named_before_the_job_runs(tmp_path):
  # Beam's local file system walks without following links to folders and drops broken links: files that would be
  # counted neither as written nor as rejected. The input check names them instead.
  elsewhere = tmp_path / "elsewhere"
  elsewhere.mkdir()
  (elsewhere / "1_0_0_2017.jpg").write_bytes(b"x")
  root = tmp_path / "raw"
  root.mkdir()
  (root / "linked").symlink_to(elsewhere, target_is_directory=True)
  with pytest.raises(ValueError, match=r"raw: 1 entries would be left out .*linked: a symbolic link to a folder"):
    common.check_input_dir(str(root), "UTKFace input directory")
  (root / "linked").unlink()
  (root / "gone.jpg").symlink_to(tmp_path / "missing.jpg")
  with pytest.raises(ValueError, match=r"gone.jpg: a broken symbolic link"):
    common.check_input_dir(str(root), "UTKFace input directory")
  (root / "gone.jpg").unlink()
  (root / "real.jpg").symlink_to(elsewhere / "1_0_0_2017.jpg")  # a link to a file is listed like a file
  common.check_input_dir(str(root), "UTKFace input directory")


def test_an_object_store_folder_exists_when_objects_lie_under_its_prefix(monkeypatch):
  # On gs:// a folder is a name prefix, not an object: FileSystems.exists says no, a match under it says yes.
  objects = {"gs://bucket/raw/": ["gs://bucket/raw/UTKFace/1_0_0_2017.jpg"], "gs://bucket/empty/": []}
  patterns = []

  def match(pattern_list, limits=None):
    (pattern,) = pattern_list
    patterns.append((pattern, limits))
    found = objects[pattern[: -len("**")]]
    return [types.SimpleNamespace(metadata_list=found)]

  monkeypatch.setattr(common.FileSystems, "exists", lambda path: False)
  monkeypatch.setattr(common.FileSystems, "match", match)
  common.check_input_dir("gs://bucket/raw", "UTKFace input directory")
  common.check_input_dir("gs://bucket/raw/", "UTKFace input directory")
  assert patterns == [("gs://bucket/raw/**", [1])] * 2
  with pytest.raises(ValueError, match="^UTKFace input directory gs://bucket/empty does not exist$"):
    common.check_input_dir("gs://bucket/empty", "UTKFace input directory")
  # A folder marker object ("raw/sub/", made by a console's "create folder") is listed, but is not an input.
  assert not common.is_input_candidate("gs://bucket/raw/sub/", root="gs://bucket/raw")
  assert common.is_input_candidate("gs://bucket/raw/sub/1_0_0_2017.jpg", root="gs://bucket/raw")


@pytest.mark.parametrize(
  "job, what",
  [("utkface", "UTKFace input directory"), ("shapenet_cars", "syncar input directory"), ("bbt", "BBT input directory")],
)
def test_a_file_as_input_dir_is_named_a_file_by_every_job(job, what, tmp_path, caplog):
  module = importlib.import_module(f"beam_pipelines.{job}")
  a_file = tmp_path / "file.txt"
  a_file.write_text("not a folder")
  argv = ["--input_dir", str(a_file), "--output_dir", str(tmp_path / "o")]
  assert module.main(argv + ["--direct_running_mode=in_memory", "--direct_num_workers=1"]) == 1
  assert f"{what} {a_file} is a file, not a folder" in caplog.text
  assert "holds no files" not in caplog.text and "does not exist" not in caplog.text
  assert not os.path.exists(tmp_path / "o")
