"""Tests of beam_pipelines.utkface: name parsing, the stable split, the DoFn and the job end to end."""

import glob
import io
import json
import os
import socket
import subprocess
import sys
import tempfile

import numpy as np
import pytest
import tensorflow as tf
from apache_beam import pvalue
from PIL import Image

import beam_pipelines
from beam_pipelines import inputs, runner, utkface
import fixtures
import memfs
from pdr_tf.data import feature_spec

from pdr_tf.data import formats
from pdr_tf.data import locks

IN_MEMORY = ["--direct_running_mode=in_memory", "--direct_num_workers=1"]
GOOD = [f"{20 + i}_{i % 2}_{i % 5}_2017011617452{5100 + i:04d}.jpg" for i in range(10)]
CONVERTED = {
  "gray": "40_0_1_20170116174525555.jpg",
  "rgba": "41_1_2_20170116174525556.jpg",
  "sixteen": "42_0_3_20170116174525557.jpg",
  "chip": "43_1_4_20170116174525558.jpg.chip.jpg",
}
BAD = {
  "61_1_20170109142408075.jpg": utkface.REASON_BAD_NAME,  # malformed names as in the real download
  "39_1_20170116174525125.jpg": utkface.REASON_BAD_NAME,
  "README.txt": utkface.REASON_BAD_NAME,
  "50_0_0_20170116174525901.jpg": inputs.REASON_CORRUPT,  # truncated JPEG
  "51_0_0_20170116174525902.jpg": inputs.REASON_NOT_IMAGE,  # text file
  "52_0_0_20170116174525903.jpg": inputs.REASON_EMPTY,
}


def _save(path, array, fmt="JPEG"):
  buffer = io.BytesIO()
  Image.fromarray(array).save(buffer, format=fmt)
  with open(path, "wb") as f:
    f.write(buffer.getvalue())
  return buffer.getvalue()


def make_utkface(root, good=GOOD, converted=True, bad=True):
  """A tiny UTKFace directory with planted bad files; returns it."""
  os.makedirs(root, exist_ok=True)
  rng = np.random.default_rng(0)
  for name in good:
    _save(os.path.join(root, name), rng.integers(0, 256, (200, 200, 3), dtype=np.uint8))
  if converted:
    _save(os.path.join(root, CONVERTED["gray"]), rng.integers(0, 256, (200, 200), dtype=np.uint8))
    _save(os.path.join(root, CONVERTED["rgba"]), rng.integers(0, 256, (200, 200, 4), dtype=np.uint8), "PNG")
    _save(os.path.join(root, CONVERTED["sixteen"]), rng.integers(0, 65536, (200, 200), dtype=np.uint16), "PNG")
    _save(os.path.join(root, CONVERTED["chip"]), rng.integers(0, 256, (200, 200, 3), dtype=np.uint8))
  if bad:
    for name, reason in BAD.items():
      data = _save(os.path.join(root, name), rng.integers(0, 256, (200, 200, 3), dtype=np.uint8))
      if reason == inputs.REASON_CORRUPT:
        data = data[: len(data) // 2]
      elif reason == inputs.REASON_NOT_IMAGE:
        data = b"not an image\n"
      elif reason == inputs.REASON_EMPTY:
        data = b""
      with open(os.path.join(root, name), "wb") as f:
        f.write(data)
    with open(os.path.join(root, ".DS_Store"), "wb") as f:  # hidden: not an input
      f.write(b"\x00\x01")
    with open(os.path.join(root, formats.SYNTHETIC_LABELS_FILENAME), "w") as f:  # not an input either
      f.write("image,split,label,object_id\n")
  return root


def read_records(out_dir, split):
  """All records of a split, shards in sorted order, as numpy dicts."""
  records = []
  for shard in sorted(glob.glob(feature_spec.shard_pattern(out_dir, split))):
    for data in tf.data.TFRecordDataset(shard):
      records.append({k: v.numpy() for k, v in feature_spec.parse_example(data).items()})
  return records


def test_parse_name():
  assert utkface.parse_name("/d/26_1_3_20170119180138584.jpg.chip.jpg") == {
    "label/age": 26,
    "label/gender": 1,
    "label/race": 3,
  }
  for bad in (
    "61_1_20170109142408075.jpg",
    "26_2_0_20170119180138584.jpg",
    "26_1_0_2017011918013858.jpg",
    "26_1_0_20170119180138584.txt",
  ):
    assert utkface.parse_name(bad) is None
  # Any common image extension is an image (the bytes decide its type): PNG faces get their labels too.
  assert utkface.parse_name("26_1_0_20170119180138584.png") == {"label/age": 26, "label/gender": 1, "label/race": 0}


def test_split_is_stable_and_close_to_80_10_10():
  assert utkface.split_of("/a/26_1_3_20170119180138584.jpg") == utkface.split_of("26_1_3_20170119180138584.jpg")
  names = [f"{i % 90}_{i % 2}_{i % 5}_{20170000000000000 + i}.jpg" for i in range(3000)]
  splits = [utkface.split_of(n) for n in names]
  assert splits == [utkface.split_of(n) for n in names]
  fractions = {s: splits.count(s) / len(splits) for s in ("train", "val", "test")}
  assert fractions["train"] == pytest.approx(0.8, abs=0.03)
  assert fractions["val"] == pytest.approx(0.1, abs=0.02) and fractions["test"] == pytest.approx(0.1, abs=0.02)
  # Pinned values: changing the hash would silently move faces between splits of existing datasets.
  assert [utkface.split_of(n) for n in ("x0", "x1", "x5", "x9", "x28")] == ["val", "train", "test", "val", "test"]
  # A file name that is not UTF-8 (Python surrogate-escapes its bytes) gets a split from those bytes, not an error.
  latin1 = b"caf\xe9.jpg".decode("utf-8", "surrogateescape")
  assert utkface.split_of(latin1) == utkface.split_of(latin1) in ("train", "val", "test")
  assert utkface.parse_name(latin1) is None  # and is then rejected as a malformed name, like any other


def test_parse_dofn():
  (out,) = list(utkface.ParseUtkfacePath("/d").process({"path": "/d/" + GOOD[3], "gt_path": None}))
  assert out["record"] == {
    "label/age": 23,
    "label/gender": 1,
    "label/race": 3,
    "label/id": -1,
    "label/name": "",
    "split": utkface.split_of(GOOD[3]),
  }
  assert out["path"] == "/d/" + GOOD[3]
  (out,) = list(utkface.ParseUtkfacePath("/d").process({"path": "/d/README.txt", "gt_path": None}))
  assert isinstance(out, pvalue.TaggedOutput) and out.value == {
    "path": "/d/README.txt",
    "reason": utkface.REASON_BAD_NAME,
  }
  # UTKFace is flat: a face one folder down is counted as a reject, not lost.
  (out,) = list(utkface.ParseUtkfacePath("/d").process({"path": "/d/more/" + GOOD[3], "gt_path": None}))
  assert out.value == {"path": "/d/more/" + GOOD[3], "reason": utkface.REASON_OUTSIDE}


def test_names_with_other_image_extensions_parse_and_unicode_digits_do_not():
  assert utkface.parse_name("23_1_3_20170109150557335.png")["label/age"] == 23
  assert utkface.parse_name("23_1_3_20170109150557335.JPEG")["label/race"] == 3
  assert utkface.parse_name("23_1_3_20170109150557335.jpg.chip.jpg") is not None
  assert utkface.parse_name("٢٣_1_3_20170109150557335.jpg") is None  # Arabic-Indic digits


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
  root = make_utkface(str(tmp_path_factory.mktemp("utk") / "raw"))
  gt_depth = np.zeros((200, 200), np.float32)
  gt_depth[50:150, 50:150] = 1.0
  np.savez(os.path.join(root, GOOD[0][:-4] + formats.GT_SUFFIX), depth=gt_depth, light=np.ones(4), view=np.zeros(6))
  out = str(tmp_path_factory.mktemp("utk") / "out")
  assert utkface.main(["--input_dir", root, "--output_dir", out] + IN_MEMORY) == 0
  return root, out


def test_job_writes_every_good_image_and_rejects_the_rest(converted):
  root, out = converted
  manifest = json.loads(open(os.path.join(out, "manifest.json")).read())
  written_names = GOOD + list(CONVERTED.values())
  assert manifest["dataset"] == "utkface" and manifest["schema_version"] == feature_spec.SCHEMA_VERSION
  assert (manifest["inputs"], manifest["written"], manifest["rejected"]) == (
    len(written_names) + len(BAD),
    len(written_names),
    len(BAD),
  )
  assert manifest["inputs"] == manifest["written"] + manifest["rejected"] and manifest["balanced"]
  expected_splits = {s: sum(utkface.split_of(n) == s for n in written_names) for s in ("train", "val", "test")}
  assert manifest["splits"] == expected_splits
  assert manifest["counts"] == {s: ({"unlabelled": n} if n else {}) for s, n in expected_splits.items()}
  assert manifest["args"]["input_dir"] == root and "--direct_running_mode=in_memory" in manifest["args"]["beam_args"]
  rejects = [json.loads(line) for line in open(os.path.join(out, "rejects.jsonl"))]
  assert sorted((os.path.basename(r["path"]), r["reason"]) for r in rejects) == sorted(BAD.items())
  assert manifest["reject_reasons"] == {r: list(BAD.values()).count(r) for r in set(BAD.values())}

  by_name = {}
  for split in ("train", "val", "test"):
    records = read_records(out, split)
    assert len(records) == expected_splits[split]
    assert [os.path.basename(s) for s in manifest["shards"][split]] == [
      os.path.basename(p) for p in sorted(glob.glob(feature_spec.shard_pattern(out, split)))
    ]
    for r in records:
      assert r["split"].decode() == split
      by_name[os.path.basename(r["source/path"].decode())] = r
  assert sorted(by_name) == sorted(written_names)
  r = by_name[GOOD[7]]
  assert (r["label/age"], r["label/gender"], r["label/race"], r["label/id"]) == (27, 1, 2, -1)
  image = tf.io.decode_png(r["image/encoded"]).numpy()
  assert image.shape == (64, 64, 3) and r["image/height"] == 64 and r["image/format"] == b"png"
  gray = tf.io.decode_png(by_name[CONVERTED["gray"]]["image/encoded"]).numpy()
  assert np.array_equal(gray[..., 0], gray[..., 1]) and np.array_equal(gray[..., 0], gray[..., 2])
  assert by_name[GOOD[0]]["gt/has"] == 1 and by_name[GOOD[1]]["gt/has"] == 0
  depth = by_name[GOOD[0]]["gt/depth"].reshape(64, 64)
  assert set(np.unique(depth)) == {0.0, 1.0}  # never blended with the background
  assert depth[0, 0] == 0 and depth[32, 32] == 1.0
  assert by_name[GOOD[0]]["gt/light"].tolist() == [1, 1, 1, 1]


def test_splits_and_images_are_stable_across_runs_and_multiprocess_workers(converted, tmp_path):
  root, out = converted
  out2 = str(tmp_path / "out2")
  assert utkface.main(["--input_dir", root, "--output_dir", out2, "--num_workers=2"]) == 0  # multi_processing

  def contents(directory):
    return {
      (split, os.path.basename(r["source/path"].decode()), r["image/encoded"])
      for split in ("train", "val", "test")
      for r in read_records(directory, split)
    }

  assert contents(out2) == contents(out)
  # Byte for byte: a record's shard and place follow its content, not the runner's bundles (the training order
  # of a seeded run then depends on the data alone).
  for path in glob.glob(feature_spec.shard_pattern(out, "*")):
    assert open(path, "rb").read() == open(os.path.join(out2, os.path.basename(path)), "rb").read(), path
  assert (
    json.load(open(os.path.join(out2, "manifest.json")))["splits"]
    == json.load(open(os.path.join(out, "manifest.json")))["splits"]
  )


def test_existing_output_is_refused_without_overwrite(converted, caplog):
  root, out = converted
  assert utkface.main(["--input_dir", root, "--output_dir", out] + IN_MEMORY) == 1
  assert "--overwrite" in caplog.text


def test_strict_fails_on_the_first_reject_naming_it(tmp_path, caplog):
  root = make_utkface(str(tmp_path / "raw"), good=GOOD[:2], converted=False, bad=False)
  with open(os.path.join(root, "61_1_20170109142408075.jpg"), "wb") as f:
    f.write(b"x")
  assert utkface.main(["--input_dir", root, "--output_dir", str(tmp_path / "out"), "--strict"] + IN_MEMORY) == 1
  assert "61_1_20170109142408075.jpg: malformed UTKFace file name" in caplog.text
  # Without --strict the same input converts, with one reject.
  assert utkface.main(["--input_dir", root, "--output_dir", str(tmp_path / "out2")] + IN_MEMORY) == 0


def test_nothing_written_exits_1_with_a_full_manifest(tmp_path, caplog):
  root = make_utkface(str(tmp_path / "raw"), good=[], converted=False, bad=True)
  out = str(tmp_path / "out")
  assert utkface.main(["--input_dir", root, "--output_dir", out] + IN_MEMORY) == 1
  manifest = json.load(open(os.path.join(out, "manifest.json")))
  assert (manifest["inputs"], manifest["written"], manifest["rejected"]) == (len(BAD), 0, len(BAD))
  assert "nothing could be written" in caplog.text
  assert len(open(os.path.join(out, "rejects.jsonl")).read().splitlines()) == len(BAD)


def test_missing_or_empty_input_exits_1(tmp_path, caplog, monkeypatch):
  scratch = tmp_path / "tmp"  # the system temporary folder, private to this test
  scratch.mkdir()
  monkeypatch.setattr(tempfile, "tempdir", str(scratch))
  assert utkface.main(["--input_dir", str(tmp_path / "nope"), "--output_dir", str(tmp_path / "o")]) == 1
  assert str(tmp_path / "nope") in caplog.text and "does not exist" in caplog.text
  os.makedirs(tmp_path / "empty")
  assert utkface.main(["--input_dir", str(tmp_path / "empty"), "--output_dir", str(tmp_path / "o")]) == 1
  assert "holds no files" in caplog.text
  assert not os.listdir(scratch)  # the pipeline that never ran leaves no Beam temporary folder behind


def test_help_shows_options_and_a_dataflow_example():
  result = subprocess.run(
    [sys.executable, "-m", "beam_pipelines.utkface", "--help"],
    capture_output=True,
    text=True,
    timeout=fixtures.HANG_GUARD_S,
    check=True,
  )
  assert "--input_dir" in result.stdout and "--strict" in result.stdout
  assert "--runner=DataflowRunner" in result.stdout


# --- one output folder, one writer ---------------------------------------------------------------------------------


def _no_leftovers(out):
  parent = os.path.dirname(out)
  return [n for n in os.listdir(parent) if ".pdr_tf-" in n or n.startswith("beam-temp")]


def test_a_locked_output_folder_is_refused_naming_the_holder(tmp_path, caplog):
  root = make_utkface(str(tmp_path / "raw"), good=GOOD[:2], converted=False, bad=False)
  out = str(tmp_path / "out")
  with locks.FolderLock(runner.lock_path(out), "another conversion"):
    assert utkface.main(["--input_dir", root, "--output_dir", out] + IN_MEMORY) == 1
  assert f"pid {os.getpid()}" in caplog.text and "another conversion" in caplog.text
  assert not os.path.exists(out)
  assert utkface.main(["--input_dir", root, "--output_dir", out] + IN_MEMORY) == 0  # free again


def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path, caplog):
  root = make_utkface(str(tmp_path / "raw"), good=GOOD[:2], converted=False, bad=False)
  out = str(tmp_path / "out")
  dead = subprocess.Popen([sys.executable, "-c", "pass"])
  dead.wait()
  with open(runner.lock_path(out), "w", encoding="utf-8") as f:
    json.dump({"pid": dead.pid, "host": socket.gethostname(), "started": "earlier"}, f)
  # The killed job's staging folder, under the pid a later job may get (pid 1 in every container): its files must
  # not reach the new output.
  staging = os.path.join(str(tmp_path), f".out.pdr_tf-staging-{os.getpid()}")
  os.makedirs(staging)
  open(os.path.join(staging, "train.tfrecord-00000-of-00009.partial"), "wb").close()
  assert utkface.main(["--input_dir", root, "--output_dir", out] + IN_MEMORY) == 0
  assert "stale lock" in caplog.text and not os.path.exists(runner.lock_path(out))
  assert "left by a job that was killed" in caplog.text and _no_leftovers(out) == []
  assert not any(name.endswith(".partial") for name in os.listdir(out))


def test_a_failed_job_leaves_no_half_written_dataset_and_no_beam_temp_folders(tmp_path):
  root = make_utkface(str(tmp_path / "raw"), good=GOOD[:3], converted=False, bad=False)
  with open(os.path.join(root, "61_1_20170109142408075.jpg"), "wb") as f:
    f.write(b"x")
  out = str(tmp_path / "out")
  assert utkface.main(["--input_dir", root, "--output_dir", out, "--strict"] + IN_MEMORY) == 1
  assert not os.path.exists(out) and _no_leftovers(out) == []


def test_two_jobs_on_one_output_folder_leave_one_complete_dataset_and_one_refusal(tmp_path):
  root = make_utkface(str(tmp_path / "raw"), good=GOOD, converted=False, bad=False)
  out = str(tmp_path / "out")
  command = [sys.executable, "-m", "beam_pipelines.utkface", "--input_dir", root, "--output_dir", out] + IN_MEMORY
  jobs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)]
  results = [(job.wait(), job.stdout.read()) for job in jobs]  # no time limit: a busy machine only makes it slower
  codes = sorted(code for code, _ in results)
  assert codes == [0, 1], results
  refusal = next(log for code, log in results if code == 1)
  assert "is in use by pid" in refusal or "already holds a converted dataset" in refusal, refusal
  manifest = json.load(open(os.path.join(out, "manifest.json")))
  shards = sorted(os.path.basename(p) for p in glob.glob(feature_spec.shard_pattern(out, "*")))
  assert shards == sorted(name for names in manifest["shards"].values() for name in names)
  assert sum(len(read_records(out, split)) for split in ("train", "val", "test")) == manifest["written"] == len(GOOD)
  assert _no_leftovers(out) == []


def test_overwrite_replaces_a_previous_dataset_in_place(tmp_path):
  root = make_utkface(str(tmp_path / "raw"), good=GOOD[:4], converted=False, bad=False)
  out = str(tmp_path / "out")
  assert utkface.main(["--input_dir", root, "--output_dir", out] + IN_MEMORY) == 0
  make_utkface(root, good=GOOD[4:6], converted=False, bad=False)
  assert utkface.main(["--input_dir", root, "--output_dir", out, "--overwrite"] + IN_MEMORY) == 0
  assert json.load(open(os.path.join(out, "manifest.json")))["written"] == 6 and _no_leftovers(out) == []


def test_overwrite_with_nothing_to_write_keeps_the_previous_dataset(tmp_path, caplog):
  out = str(tmp_path / "out")
  good = make_utkface(str(tmp_path / "good"), good=GOOD[:4], converted=False, bad=False)
  assert utkface.main(["--input_dir", good, "--output_dir", out] + IN_MEMORY) == 0
  before = {name: open(os.path.join(out, name), "rb").read() for name in os.listdir(out)}
  bad = make_utkface(str(tmp_path / "bad"), good=[], converted=False, bad=True)  # every input is rejected
  assert utkface.main(["--input_dir", bad, "--output_dir", out, "--overwrite"] + IN_MEMORY) == 1
  assert "nothing could be written" in caplog.text and f"the previous dataset in {out} was kept" in caplog.text
  assert {name: open(os.path.join(out, name), "rb").read() for name in os.listdir(out)} == before
  assert _no_leftovers(out) == []


@pytest.fixture
def bucket():
  """An empty in-memory object store (memfs://), emptied again afterwards."""
  memfs.OBJECTS.clear()
  yield "memfs://bucket"
  memfs.OBJECTS.clear()


def _objects_under(prefix):
  return {path: data for path, data in memfs.OBJECTS.items() if path.startswith(prefix + "/")}


def test_on_an_object_store_only_a_complete_dataset_is_published(tmp_path, bucket, caplog):
  out = f"{bucket}/data/out"
  memfs.OBJECTS[f"{bucket}/data/notes.txt"] = b"not pdr_tf's"
  good = make_utkface(str(tmp_path / "good"), good=GOOD[:4], converted=False, bad=False)
  assert beam_pipelines.convert("utkface", good, out, beam_args=IN_MEMORY, num_shards=2) == 0
  before = _objects_under(out)
  assert sorted(p[len(out) + 1 :] for p in before) == runner.dataset_files(out)
  assert set(memfs.OBJECTS) == set(before) | {f"{bucket}/data/notes.txt"}  # no staging, no Beam temporary files
  # A job that fails (--strict on a reject) or writes nothing leaves the previous dataset as it was.
  bad = make_utkface(str(tmp_path / "bad"), good=[], converted=False, bad=True)
  assert beam_pipelines.convert("utkface", bad, out, beam_args=IN_MEMORY, overwrite=True) == 1
  assert f"the previous dataset in {out} was kept" in caplog.text
  assert beam_pipelines.convert("utkface", bad, out, beam_args=IN_MEMORY, overwrite=True, strict=True) == 1
  assert "--strict: rejected input" in caplog.text
  assert set(memfs.OBJECTS) == set(before) | {f"{bucket}/data/notes.txt"} and _objects_under(out) == before
  # A successful --overwrite replaces it whole: the old shards that the new manifest does not list are gone.
  make_utkface(good, good=GOOD[4:6], converted=False, bad=False)
  assert beam_pipelines.convert("utkface", good, out, beam_args=IN_MEMORY, overwrite=True, num_shards=1) == 0
  assert runner.read_manifest(out)["written"] == 6
  assert sorted(p[len(out) + 1 :] for p in _objects_under(out)) == runner.dataset_files(out)
  assert memfs.OBJECTS[f"{bucket}/data/notes.txt"] == b"not pdr_tf's" and len(memfs.OBJECTS) == 1 + len(
    runner.dataset_files(out)
  )


def test_an_object_store_publish_that_stops_keeps_the_rest_in_staging_and_names_it(bucket, monkeypatch):
  out, staging = f"{bucket}/out", runner.object_staging(f"{bucket}/out", "t0")
  assert staging == f"{bucket}/.out.pdr_tf-staging-t0"
  for name in ("manifest.json", "rejects.jsonl", "train.tfrecord-00000-of-00002", "train.tfrecord-00001-of-00002"):
    memfs.OBJECTS[f"{out}/{name}"] = b"old " + name.encode()
  for name in ("manifest.json", "rejects.jsonl", "train.tfrecord-00000-of-00001", "beam-temp-x/part"):
    memfs.OBJECTS[f"{staging}/{name}"] = b"new " + name.encode()
  old_files = ["manifest.json", "rejects.jsonl", "train.tfrecord-00000-of-00002", "train.tfrecord-00001-of-00002"]
  real_rename = runner.FileSystems.rename

  def rename(sources, destinations):
    if any(s.endswith("manifest.json") for s in sources):
      raise OSError("quota exceeded")
    real_rename(sources, destinations)

  monkeypatch.setattr(runner.FileSystems, "rename", rename)
  with pytest.raises(runner.PublishError, match=rf"quota exceeded.*what was not moved yet is in {staging}"):
    runner._publish_objects(staging, out, old_files)
  # The old manifest went first (the folder never reads as a mix), the new data is in place, the rest is kept.
  assert sorted(_objects_under(out)) == [f"{out}/rejects.jsonl", f"{out}/train.tfrecord-00000-of-00001"]
  assert memfs.OBJECTS[f"{staging}/manifest.json"] == b"new manifest.json"
  monkeypatch.setattr(runner.FileSystems, "rename", real_rename)
  memfs.OBJECTS[f"{out}/manifest.json"] = b"old manifest.json"
  runner._publish_objects(staging, out, ["manifest.json"])
  assert memfs.OBJECTS[f"{out}/manifest.json"] == b"new manifest.json" and not _objects_under(staging)


def test_staging_of_another_job_beside_an_object_store_folder_is_named(bucket, caplog):
  memfs.OBJECTS[f"{bucket}/.out.pdr_tf-staging-abc/train.tfrecord-00000-of-00001"] = b"x"
  memfs.OBJECTS[f"{bucket}/.other.pdr_tf-staging-def/manifest.json"] = b"x"  # another folder's: not named
  runner._warn_other_object_staging(f"{bucket}/out")
  assert f"staging left by another job beside it ({bucket}/.out.pdr_tf-staging-abc)" in caplog.text
  assert "other.pdr_tf" not in caplog.text


def test_a_linked_output_folder_is_written_through_the_link_and_a_mount_point_is_refused(tmp_path, caplog, monkeypatch):
  root = make_utkface(str(tmp_path / "raw"), good=GOOD[:2], converted=False, bad=False)
  real = tmp_path / "disk" / "out"
  real.mkdir(parents=True)
  link = tmp_path / "out"
  link.symlink_to(real, target_is_directory=True)
  assert utkface.main(["--input_dir", root, "--output_dir", str(link)] + IN_MEMORY) == 0
  assert link.is_symlink() and (real / "manifest.json").exists() and _no_leftovers(str(real)) == []
  monkeypatch.setattr(runner.os.path, "ismount", lambda path: path == str(real))
  assert utkface.main(["--input_dir", root, "--output_dir", str(link), "--overwrite"] + IN_MEMORY) == 1
  assert "is a mount point" in caplog.text and (real / "manifest.json").exists()


def test_dataflow_with_paths_on_this_machine_is_refused_before_anything_runs(tmp_path, caplog):
  root = make_utkface(str(tmp_path / "raw"), good=GOOD[:2], converted=False, bad=False)
  out = str(tmp_path / "out")
  argv = ["--input_dir", root, "--output_dir", out, "--runner=DataflowRunner", "--project=p", "--region=r"]
  assert utkface.main(argv) == 1
  assert f"--input_dir {root} and --output_dir {out} on this machine's disk" in caplog.text
  assert not os.path.exists(out) and _no_leftovers(out) == []


# --- the library form ------------------------------------------------------------------------------------------------


def test_the_library_form_converts_as_the_command_does(tmp_path):
  root = make_utkface(str(tmp_path / "raw"), good=GOOD[:2], converted=False, bad=False)
  out = str(tmp_path / "out")
  assert beam_pipelines.convert("utkface", root, out, beam_args=IN_MEMORY, num_shards=1) == 0
  manifest = json.load(open(os.path.join(out, "manifest.json"), encoding="utf-8"))
  assert manifest["written"] == 2 and manifest["args"]["num_shards"] == 1
  assert beam_pipelines.convert("utkface", root, out, beam_args=IN_MEMORY) == 1  # a dataset is there: no --overwrite
  assert beam_pipelines.convert("utkface", root, out, beam_args=IN_MEMORY, overwrite=True) == 0


def test_the_library_form_names_unknown_jobs_and_options(tmp_path):
  with pytest.raises(ValueError, match="unknown Beam job 'celeba'"):
    beam_pipelines.convert("celeba", str(tmp_path), str(tmp_path / "o"))
  with pytest.raises(TypeError, match="no option shards"):
    beam_pipelines.convert("utkface", str(tmp_path), str(tmp_path / "o"), shards=3)


def test_an_output_folder_written_by_another_program_during_the_job_keeps_both(tmp_path, caplog):
  out = tmp_path / "out"
  staging = tmp_path / "staging"
  staging.mkdir()
  (staging / "manifest.json").write_text("{}")
  out.mkdir()  # created by another program after the job checked the folder (absent then: no old files)
  (out / "theirs.txt").write_text("not pdr_tf's")
  with pytest.raises(runner.PublishError, match=r"could not move the finished dataset into .*out .*kept in .*kept-"):
    runner._move_into_place(str(staging), str(out), [])
  assert sorted(os.listdir(out)) == ["theirs.txt"] and (out / "theirs.txt").read_text() == "not pdr_tf's"
  (kept,) = [n for n in os.listdir(tmp_path) if ".pdr_tf-kept-" in n]
  assert os.listdir(tmp_path / kept) == ["manifest.json"]
  runner._remove_stale_staging(str(out))  # a later job's clean-up leaves the kept dataset alone
  assert os.path.isdir(tmp_path / kept)
  # Beside a previous dataset the same: nothing is moved, the previous dataset stays whole.
  (out / "manifest.json").write_text("old")
  staging.mkdir()
  (staging / "manifest.json").write_text("new")
  with pytest.raises(runner.PublishError, match=r"theirs.txt.*is left as it is"):
    runner._move_into_place(str(staging), str(out), ["manifest.json"])
  assert (out / "manifest.json").read_text() == "old" and sorted(os.listdir(out)) == ["manifest.json", "theirs.txt"]
  assert len([n for n in os.listdir(tmp_path) if ".pdr_tf-kept-" in n]) == 2  # each kept under its own name


def test_a_dataset_that_cannot_be_moved_into_place_exits_1_naming_where_it_is(tmp_path, caplog, monkeypatch):
  def refuse(staging, output_dir, old_files):
    raise runner.PublishError(f"could not move it; the dataset is kept in {staging}-kept")

  monkeypatch.setattr(runner, "_move_into_place", refuse)
  root = make_utkface(str(tmp_path / "raw"), good=GOOD[:1], converted=False, bad=False)
  assert beam_pipelines.convert("utkface", root, str(tmp_path / "out"), beam_args=IN_MEMORY) == 1
  assert "utkface: could not move it; the dataset is kept in" in caplog.text and not os.path.exists(tmp_path / "out")
