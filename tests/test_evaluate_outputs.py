"""evaluate's outputs never overwrite the user's files: pdr_tf.evaluation.output_files, write_report, evaluate_features
and the command line's checks of evaluate.output_dir (before the SavedModel is even loaded)."""

import json
import os

import gin
import numpy as np
import pytest

import fixtures
from pdr_tf import evaluate as ev
from pdr_tf.evaluation import output_files
from pdr_tf.evaluation import report

USER_BYTES = b"my own notes\r\n\x00\xff not pdr_tf's\n"


def _features(rng):
  labels = np.repeat(["a", "b"], 10)
  good = np.where(labels[:, None] == "a", 0.0, 5.0) + 0.1 * rng.randn(20, 3)
  return {"depth": good, "albedo": rng.randn(20, 2)}, labels


def test_write_file_records_and_replaces_only_its_own(tmp_path):
  folder = tmp_path / "out"
  path = output_files.write_text(folder, "a.txt", "one\n")
  assert path == str(folder / "a.txt") and (folder / "a.txt").read_text() == "one\n"
  manifest = json.loads((folder / output_files.MANIFEST).read_text())
  assert list(manifest["files"]) == ["a.txt"]
  assert output_files.write_text(folder, "a.txt", "two\n") == path  # its own: replaced
  assert (folder / "a.txt").read_text() == "two\n"
  (folder / "a.txt").write_text("edited by the user\n")  # its own, changed since: no longer replaced
  with pytest.raises(FileExistsError, match="a.txt, not written by pdr_tf"):
    output_files.write_text(folder, "a.txt", "three\n")
  assert (folder / "a.txt").read_text() == "edited by the user\n"
  assert sorted(os.listdir(folder)) == [output_files.MANIFEST, "a.txt"]  # no temporary file left


@pytest.mark.parametrize("killed", ["before the rename", "after the rename"])
def test_a_write_killed_at_any_point_leaves_outputs_pdr_tf_still_owns(tmp_path, monkeypatch, killed):
  folder = str(tmp_path)
  output_files.write_text(folder, "table.md", "old\n")
  real_replace, real_write = output_files.os.replace, output_files._write_manifest  # pylint: disable=protected-access
  calls = []

  def write_manifest(*args, **kwargs):
    calls.append(1)
    if killed == "after the rename" and len(calls) == 2:  # the final record after the rename
      raise KeyboardInterrupt
    real_write(*args, **kwargs)

  def replace(src, dst):
    if killed == "before the rename" and not dst.endswith(output_files.MANIFEST):
      raise KeyboardInterrupt
    real_replace(src, dst)

  monkeypatch.setattr(output_files, "_write_manifest", write_manifest)
  monkeypatch.setattr(output_files.os, "replace", replace)
  with pytest.raises(KeyboardInterrupt):
    output_files.write_text(folder, "table.md", "new\n")
  monkeypatch.undo()
  expected = "old\n" if killed == "before the rename" else "new\n"
  assert open(os.path.join(folder, "table.md"), encoding="utf-8").read() == expected
  output_files.check_writable(folder, ["table.md"])  # still pdr_tf's own: the next run may replace it
  output_files.write_text(folder, "table.md", "newer\n")
  data = json.load(open(os.path.join(folder, output_files.MANIFEST), encoding="utf-8"))
  assert set(data["files"]) == {"table.md"} and not data.get("pending")
  assert sorted(os.listdir(folder)) == [output_files.MANIFEST, "table.md"]


def test_foreign_things_are_never_replaced(tmp_path):
  (tmp_path / "user.md").write_bytes(USER_BYTES)
  (tmp_path / "dir.md").mkdir()
  os.symlink(tmp_path / "user.md", tmp_path / "link.md")
  for name in ("user.md", "dir.md", "link.md"):
    with pytest.raises(FileExistsError, match=f"{tmp_path / name}, not written by pdr_tf"):
      output_files.write_text(tmp_path, name, "x", hint="use another --out")
  assert (tmp_path / "user.md").read_bytes() == USER_BYTES and os.path.islink(tmp_path / "link.md")
  assert output_files.write_text(tmp_path, "new.md", "x") == str(tmp_path / "new.md")  # other names are fine
  assert (tmp_path / "user.md").read_bytes() == USER_BYTES
  with pytest.raises(ValueError, match="plain file name"):
    output_files.write_text(tmp_path, output_files.MANIFEST, "x")
  with pytest.raises(ValueError, match="plain file name"):
    output_files.write_text(tmp_path, "a/b", "x")


def test_a_file_named_like_the_manifest_is_not_overwritten(tmp_path):
  (tmp_path / output_files.MANIFEST).write_bytes(USER_BYTES)
  with pytest.raises(FileExistsError, match=f"{output_files.MANIFEST} is not a pdr_tf output manifest"):
    output_files.write_text(tmp_path, "a.txt", "x")
  assert fixtures.folder_bytes(tmp_path) == {output_files.MANIFEST: USER_BYTES}


def test_output_folder_that_is_a_file(tmp_path):
  (tmp_path / "f").write_bytes(USER_BYTES)
  with pytest.raises(NotADirectoryError, match=f"output folder {tmp_path / 'f'} is a file, not a folder: hint"):
    output_files.check_writable(tmp_path / "f", ["a.txt"], "hint")
  with pytest.raises(NotADirectoryError, match=f"cannot be created: {tmp_path / 'f'} is a file"):
    output_files.write_text(tmp_path / "f" / "sub", "a.txt", "x")
  assert fixtures.folder_bytes(tmp_path) == {"f": USER_BYTES}


def test_write_report_refuses_a_foreign_file_before_writing_either(tmp_path):
  (tmp_path / "r.md").write_bytes(USER_BYTES)
  with pytest.raises(FileExistsError, match=f"{tmp_path / 'r.md'}"):
    report.write_report({"wcp": 0.5}, tmp_path, "r")
  assert fixtures.folder_bytes(tmp_path) == {"r.md": USER_BYTES}  # r.json not written either
  paths = report.write_report({"wcp": 0.5}, tmp_path / "new", "r")
  assert report.write_report({"wcp": 0.75}, tmp_path / "new", "r") == paths  # its own: rewritten
  assert json.loads((tmp_path / "new" / "r.json").read_text()) == {"wcp": 0.75}


@pytest.mark.parametrize("suffix", ["_assignments.csv", ".json", "_correlation.png"])
def test_evaluate_features_refuses_foreign_outputs_and_rewrites_its_own(suffix, rng, tmp_path):
  features, labels = _features(rng)
  out = tmp_path / "eval"
  first = ev.evaluate_features(features, labels, output_dir=str(out), name="cars")
  assert sorted(first["outputs"]) == sorted(set(ev.OUTPUT_SUFFIXES) - {"config_gin"})
  again = ev.evaluate_features(features, labels, output_dir=str(out), name="cars")  # re-run: its own outputs
  assert again["outputs"] == first["outputs"]
  user = tmp_path / "user"
  user.mkdir()
  (user / f"cars{suffix}").write_bytes(USER_BYTES)
  (user / "unrelated.txt").write_bytes(USER_BYTES)
  with pytest.raises(FileExistsError, match=f"{user / ('cars' + suffix)}, not written by pdr_tf") as e:
    ev.evaluate_features(features, labels, output_dir=str(user), name="cars")
  assert "evaluate.output_dir" in str(e.value)
  assert fixtures.folder_bytes(user) == {f"cars{suffix}": USER_BYTES, "unrelated.txt": USER_BYTES}
  written = ev.evaluate_features(features, labels, output_dir=str(user), name="other")  # beside the user's files
  assert os.path.isfile(written["outputs"]["json"])
  assert (user / f"cars{suffix}").read_bytes() == USER_BYTES


def test_a_rerun_without_a_correlation_matrix_removes_its_own_earlier_plot_only(rng, tmp_path):
  features, labels = _features(rng)
  out = tmp_path / "eval"
  first = ev.evaluate_features(features, labels, output_dir=str(out), name="cars")
  plot = first["outputs"]["correlation_png"]
  assert os.path.isfile(plot)
  # One block: no correlation between blocks. The earlier run's plot would describe other features.
  again = ev.evaluate_features({"depth": features["depth"]}, labels, output_dir=str(out), name="cars")
  assert "correlation_png" not in again["outputs"] and not os.path.lexists(plot)
  assert "cars_correlation.png" not in output_files.read_manifest(out)
  user = tmp_path / "user"
  user.mkdir()
  (user / "cars_correlation.png").write_bytes(USER_BYTES)  # not pdr_tf's: kept
  ev.evaluate_features({"depth": features["depth"]}, labels, output_dir=str(user), name="other")
  assert output_files.remove_own(user, "cars_correlation.png") is None
  assert (user / "cars_correlation.png").read_bytes() == USER_BYTES


def _main(tmp_path, output_dir, name="cars_light_view"):
  params = [
    f"evaluate.saved_model_dir = '{tmp_path / 'no_model'}'",
    f"evaluate.data_dir = '{tmp_path / 'no_data'}'",
    f"evaluate.output_dir = '{output_dir}'",
    f"evaluate.name = '{name}'",
  ]
  try:
    return ev.main([f"--gin_param={p}" for p in params])
  finally:
    gin.clear_config()


def test_main_refuses_a_foreign_output_before_loading_anything(tmp_path, caplog):
  out = tmp_path / "D"
  out.mkdir()
  (out / "cars_light_view_config.gin").write_bytes(USER_BYTES)  # written by main only
  assert _main(tmp_path, out) == 1
  assert f"{out / 'cars_light_view_config.gin'}, not written by pdr_tf" in caplog.text
  assert "evaluate.output_dir" in caplog.text and "no_model" not in caplog.text  # before the SavedModel
  assert fixtures.folder_bytes(out) == {"cars_light_view_config.gin": USER_BYTES}


def test_main_output_dir_that_is_a_file(tmp_path, caplog):
  (tmp_path / "D").write_bytes(USER_BYTES)
  assert _main(tmp_path, tmp_path / "D") == 1
  assert f"output folder {tmp_path / 'D'} is a file, not a folder" in caplog.text
  assert (tmp_path / "D").read_bytes() == USER_BYTES
