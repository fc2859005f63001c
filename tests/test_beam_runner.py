"""Tests of beam_pipelines.runner: Beam flags, the parser, and output folders (foreign data is never touched)."""

import importlib
import json
import os
import tempfile

import pytest

from beam_pipelines import runner
from pdr_tf.data import feature_spec


def test_local_runner_defaults_are_added_only_without_runner():
  assert runner.beam_argv([]) == [
    "--runner=FnApiRunner",
    "--direct_num_workers=2",
    "--direct_running_mode=multi_processing",
  ]
  assert runner.beam_argv(["--direct_running_mode=in_memory"], 3) == [
    "--direct_running_mode=in_memory",
    "--num_workers=3",
    "--runner=FnApiRunner",
    "--direct_num_workers=3",
  ]
  dataflow = ["--runner=DataflowRunner", "--project=p", "--region=r", "--temp_location=gs://b/tmp"]
  assert runner.beam_argv(dataflow) == dataflow
  assert runner.beam_argv(dataflow, 8) == dataflow + ["--num_workers=8"]


def test_unknown_flags_pass_through_the_parser():
  parser = runner.make_parser("utkface", "doc")
  args, rest = parser.parse_known_args(
    [
      "--input_dir",
      "i",
      "--output_dir",
      "o",
      "--runner=FlinkRunner",
      "--flink_master=localhost:8081",
      "--num_workers=4",
      "--max_num_workers=9",
    ]
  )
  assert args.input_dir == "i" and args.num_workers == 4
  assert rest == ["--runner=FlinkRunner", "--flink_master=localhost:8081", "--max_num_workers=9"]


def _fake_dataset(out, shards=("train.tfrecord-00000-of-00001",)):
  os.makedirs(out, exist_ok=True)
  for name in shards:
    (out / name).write_bytes(b"x")
  manifest = {"schema_version": feature_spec.SCHEMA_VERSION, "shards": {"train": list(shards)}}
  (out / feature_spec.MANIFEST_FILENAME).write_text(json.dumps(manifest))
  (out / feature_spec.REJECTS_FILENAME).write_text("")


def test_check_output_dir_replaces_only_a_pdr_tf_dataset(tmp_path):
  out = tmp_path / "out"
  assert runner.check_output_dir(str(out)) == []  # absent
  out.mkdir()
  assert runner.check_output_dir(str(out)) == []  # empty
  _fake_dataset(out)
  with pytest.raises(ValueError, match="--overwrite"):
    runner.check_output_dir(str(out))
  assert sorted(runner.check_output_dir(str(out), overwrite=True)) == sorted(
    ["train.tfrecord-00000-of-00001", feature_spec.MANIFEST_FILENAME, feature_spec.REJECTS_FILENAME]
  )
  (out / "keep.txt").write_text("not ours")
  with pytest.raises(ValueError, match="did not write") as info:
    runner.check_output_dir(str(out), overwrite=True)
  assert "keep.txt" in str(info.value)
  assert (out / "keep.txt").exists() and (out / "train.tfrecord-00000-of-00001").exists()
  a_file = tmp_path / "notes.txt"  # refused before the job converts anything
  a_file.write_text("mine")
  with pytest.raises(ValueError, match="is a file, not a folder"):
    runner.check_output_dir(str(a_file), overwrite=True)
  assert a_file.read_text() == "mine"


def test_an_object_store_output_folder_with_someones_files_is_refused(monkeypatch):
  # gs://bucket/out is a name prefix, no object: FileSystems.exists says no even when objects lie under it.
  import types  # pylint: disable=import-outside-toplevel

  listing = {"gs://bucket/out/": ["gs://bucket/out/notes.txt"], "gs://bucket/new/": []}

  def match(patterns, limits=None):
    found = listing[patterns[0][: -len("**")]]
    return [
      types.SimpleNamespace(metadata_list=[types.SimpleNamespace(path=p) for p in found[: (limits or [None])[0]]])
    ]

  def no_manifest(path, *args, **kwargs):
    raise FileNotFoundError(path)

  monkeypatch.setattr(runner.FileSystems, "exists", lambda path: False)
  monkeypatch.setattr(runner.FileSystems, "match", match)
  monkeypatch.setattr(runner.FileSystems, "open", no_manifest)
  with pytest.raises(ValueError, match=r"gs://bucket/out is not empty .*notes.txt.* holds no pdr_tf dataset"):
    runner.check_output_dir("gs://bucket/out", overwrite=True)
  assert runner.check_output_dir("gs://bucket/new") == []


def test_overwrite_never_hides_or_deletes_what_a_pdr_tf_job_did_not_write(tmp_path):
  """A link to a folder (not walked into) and another tool's manifest.json are the user's: --overwrite refuses."""
  elsewhere = tmp_path / "elsewhere"
  elsewhere.mkdir()
  (elsewhere / "photos.txt").write_text("mine")
  out = tmp_path / "out"
  _fake_dataset(out)
  os.symlink(elsewhere, out / "mylink")
  with pytest.raises(ValueError, match="did not write") as info:
    runner.check_output_dir(str(out), overwrite=True)
  assert "mylink" in str(info.value) and (elsewhere / "photos.txt").read_text() == "mine"
  for shards in ([os.path.join("..", "elsewhere", "photos.txt")], "not a dict", ["train.tfrecord-00000-of-00001x"]):
    other = tmp_path / f"other{len(str(shards))}"
    _fake_dataset(other)
    listing = shards if isinstance(shards, str) else {"train": shards}
    manifest = {"schema_version": feature_spec.SCHEMA_VERSION, "shards": listing}
    (other / feature_spec.MANIFEST_FILENAME).write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="holds no pdr_tf dataset|did not write"):
      runner.check_output_dir(str(other), overwrite=True)
  assert (elsewhere / "photos.txt").read_text() == "mine"


def test_shards_without_a_manifest_are_never_deleted(tmp_path):
  # Shards copied by hand (or by an older tool) are somebody's data: refused even with --overwrite.
  out = tmp_path / "copied"
  out.mkdir()
  for i in range(3):
    (out / f"train.tfrecord-0000{i}-of-00003").write_bytes(b"user data")
  with pytest.raises(ValueError, match="no manifest.json") as info:
    runner.check_output_dir(str(out), overwrite=True)
  assert str(out) in str(info.value)
  assert len(os.listdir(out)) == 3


def test_num_workers_must_be_positive(capsys):
  parser = runner.make_parser("utkface", "doc")
  for bad in ("0", "-2", "two"):
    with pytest.raises(SystemExit):
      parser.parse_known_args(["--input_dir", "i", "--output_dir", "o", "--num_workers", bad])
    assert "--num_workers" in capsys.readouterr().err
  args, _ = parser.parse_known_args(["--input_dir", "i", "--output_dir", "o", "--num_workers", "3"])
  assert args.num_workers == 3


@pytest.mark.parametrize("job", ["shapenet_cars", "utkface", "bbt"])
@pytest.mark.parametrize(
  "flag,bad",
  [("--num_shards", "-3"), ("--num_shards", "three"), ("--images_per_shard", "0"), ("--images_per_shard", "-1")],
)
def test_shard_counts_are_usage_errors_in_every_job(job, flag, bad, capsys):
  module = importlib.import_module(f"beam_pipelines.{job}")
  with pytest.raises(SystemExit) as info:
    module.make_parser().parse_known_args(["--input_dir", "i", "--output_dir", "o", flag, bad])
  assert info.value.code == 2
  err = capsys.readouterr().err
  assert f"argument {flag}:" in err and bad in err and "Traceback" not in err


def test_zero_shards_stays_automatic():
  parser = runner.make_parser("utkface", "doc")
  args, _ = parser.parse_known_args(["--input_dir", "i", "--output_dir", "o", "--num_shards", "0"])
  assert args.num_shards == 0 and args.images_per_shard == runner.DEFAULT_IMAGES_PER_SHARD
  args, _ = parser.parse_known_args(["--input_dir", "i", "--output_dir", "o", "--num_shards=4", "--images_per_shard=7"])
  assert (args.num_shards, args.images_per_shard) == (4, 7)


def test_the_library_form_refuses_what_the_flags_refuse(tmp_path):
  parser = runner.make_parser("utkface", "doc")
  for name, bad in (("num_shards", -3), ("images_per_shard", 0), ("num_workers", 0), ("num_shards", 2.5)):
    with pytest.raises(ValueError, match=f"{name} must be"):
      runner.job_args(parser, tmp_path, tmp_path / "o", **{name: bad})
  args = runner.job_args(parser, tmp_path, tmp_path / "o", num_shards=0, images_per_shard=5, num_workers=None)
  assert (args.num_shards, args.images_per_shard, args.num_workers) == (0, 5, None)


def test_an_unexpected_error_while_building_leaves_no_lock_or_temporary_folder(tmp_path, monkeypatch):
  scratch = tmp_path / "tmp"  # the system temporary folder, private to this test
  scratch.mkdir()
  monkeypatch.setattr(tempfile, "tempdir", str(scratch))
  out = tmp_path / "out"
  parser = runner.make_parser("utkface", "test job")
  args = runner.job_args(parser, tmp_path / "raw", out)

  def build(pipeline, target):
    raise RuntimeError("a bug in a job's transforms")

  with pytest.raises(RuntimeError, match="a bug"):
    runner.run_job("utkface", build, args, [])
  assert not os.path.exists(runner.lock_path(str(out))) and not os.listdir(scratch) and not out.exists()
