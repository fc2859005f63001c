"""Tests of `python -m pdr_tf.probe`'s command line: its --json report and its --gin_param bindings (the numbers it
prints are tested in test_scene_stats.py)."""

import glob
import json
import logging

import pytest

import fixtures
from pdr_tf import probe


@pytest.fixture
def probe_run(tmp_path, monkeypatch, tiny_model):
  """argv prefix of a probe of the tiny model (restore_model stubbed) on a tiny dataset with 6 val records."""
  from pdr_tf.training import workdir as workdir_lib  # pylint: disable=import-outside-toplevel

  data_dir = fixtures.write_tiny_dataset(tmp_path / "data", num_train=2, num_test=2, num_val=6)
  monkeypatch.setattr(workdir_lib, "restore_model", lambda workdir, step=None: tiny_model)
  return ["--workdir", str(tmp_path / "run"), "--data_dir", data_dir]


def _usage_error(argv, capsys):
  with pytest.raises(SystemExit) as info:
    probe.main(argv)
  assert info.value.code == 2
  return capsys.readouterr().err


def test_json_into_a_folder_or_a_foreign_file_is_refused_before_any_work(tmp_path, capsys):
  # The work dir and data do not exist: a refusal must come before anything reads them.
  argv = ["--workdir", str(tmp_path / "no_run"), "--data_dir", str(tmp_path / "no_data"), "--json"]
  err = _usage_error([*argv, str(tmp_path)], capsys)
  assert f"{tmp_path} is a folder" in err and "Traceback" not in err
  for content in (b'{"mine": [1, 2]}\n', b"not json at all", b'{"written_by": "pdr_tf.bench"}'):
    user_file = tmp_path / "user.json"
    user_file.write_bytes(content)
    err = _usage_error([*argv, str(user_file)], capsys)
    assert str(user_file) in err and "nothing was written" in err and "another path" in err
    assert user_file.read_bytes() == content


def test_json_rerun_replaces_the_probes_own_earlier_report(probe_run, tmp_path, caplog):
  out = tmp_path / "probe.json"
  caplog.set_level(logging.INFO)
  assert probe.main([*probe_run, "--json", str(out)]) == 0
  # Each stage of the minutes between the restore and the table says what it is doing.
  assert "Reading up to 64 records with ground truth from split 'val'" in caplog.text
  assert "De-rendering 6 images and scoring their depth (predicted view, true view" in caplog.text
  first = json.loads(out.read_text())
  assert first["written_by"] == probe.TOOL and set(first["depth_errors"]) == set(probe.DEPTH_VIEWS)
  out.write_text(json.dumps({"written_by": probe.TOOL, "stale": True}))
  assert probe.main([*probe_run, "--json", str(out)]) == 0
  second = json.loads(out.read_text())
  assert "stale" not in second and second["parameters"] == first["parameters"]
  assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".pdr_tf-")] == []  # no temporary file left


def test_a_corrupt_shard_is_read_past_with_the_gin_param_its_message_suggests(probe_run, tmp_path, caplog, capsys):
  (shard,) = glob.glob(f"{probe_run[3]}/val.tfrecord-*")
  data = bytearray(open(shard, "rb").read())
  at = len(data) * 5 // 6  # inside the last record: the first five stay readable
  data[at : at + 16] = b"\x00" * 16
  with open(shard, "wb") as f:
    f.write(bytes(data))
  caplog.set_level(logging.ERROR)
  assert probe.main(probe_run) == 1
  advice = "--gin_param='make_dataset.skip_corrupt=True'"
  assert shard in caplog.text and advice in caplog.text
  capsys.readouterr()
  assert probe.main([*probe_run, advice.replace("'", "")]) == 0  # the advice, as a shell passes it
  assert "depth relief" in capsys.readouterr().out
  # A binding probe cannot apply is a usage error naming it, before the model is restored.
  err = _usage_error([*probe_run, "--gin_param=make_dataset.skip_corupt=True"], capsys)
  assert err.splitlines()[-1].startswith("python -m pdr_tf.probe: error: --gin_param 'make_dataset.skip_corupt=True'")


def test_num_images_below_two_is_a_usage_error(tmp_path, capsys):
  argv = ["--workdir", str(tmp_path / "no_run"), "--data_dir", str(tmp_path / "no_data"), "--num_images", "1"]
  assert "--num_images must be at least 2" in _usage_error(argv, capsys)


def test_step_picks_the_checkpoint_that_is_restored(probe_run, tiny_model, monkeypatch):
  from pdr_tf.training import workdir as workdir_lib  # pylint: disable=import-outside-toplevel

  restored = []

  def restore_model(workdir, step=None):
    restored.append((workdir, step))
    return tiny_model

  monkeypatch.setattr(workdir_lib, "restore_model", restore_model)
  assert probe.main([*probe_run, "--step", "200"]) == 0
  assert restored == [(probe_run[1], 200)]
