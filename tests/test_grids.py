"""Tests for pdr_tf.grids and summaries.read_image_grids: a run's image grids read back and written as PNG files."""

import glob
import io
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from pdr_tf import grids
from pdr_tf.training import summaries
from pdr_tf.training import workdir as workdir_lib

NAMES = ("input", "reconstruction", "canonical_depth_shaded")


def _strip(value, width):
  return tf.fill([1, 8, width, 3], value)


def _write_run(workdir, steps, extra_scalar=True):
  """A work dir whose train logs hold the grids NAMES at `steps` (grid k of step s filled with (s + k) / 1000)."""
  writer = tf.summary.create_file_writer(workdir_lib.train_logs(str(workdir)))
  with writer.as_default():
    for step in steps:
      for k, name in enumerate(NAMES):
        tf.summary.image(summaries.IMAGE_TAG_PREFIX + name, _strip((step + k) / 1000.0, 8 * (k + 1)), step=step)
      if extra_scalar:
        tf.summary.scalar("loss/total", 1.0, step=step)
  writer.close()


def _pixel(path):
  return np.asarray(Image.open(path))[0, 0, 0]


def test_read_image_grids_returns_each_step_in_order_with_png_strips(tmp_path):
  _write_run(tmp_path, [200, 400])
  read = summaries.read_image_grids(workdir_lib.train_logs(str(tmp_path)))
  assert list(read) == [200, 400]
  assert list(read[400]) == list(NAMES)
  image = Image.open(io.BytesIO(read[400]["reconstruction"]))
  assert image.size == (16, 8)
  assert np.asarray(image)[0, 0, 0] == round(401 / 1000 * 255)


def test_export_writes_the_latest_step_and_a_stacked_image(tmp_path):
  _write_run(tmp_path, [200, 400])
  paths = grids.export_grids(str(tmp_path))
  folder = os.path.join(str(tmp_path), grids.OUT_DIRNAME, "step_400")
  assert paths == [os.path.join(folder, f"{name}.png") for name in NAMES] + [os.path.join(folder, grids.STACKED)]
  stacked = Image.open(paths[-1])
  # Widest strip 24 px; three strips of 8 rows with two gaps of 4.
  assert stacked.size == (24, 3 * 8 + 2 * 4)
  assert _pixel(paths[0]) == round(400 / 1000 * 255)


def test_export_picks_a_given_step_and_names_the_steps_it_has(tmp_path):
  _write_run(tmp_path, [200, 400])
  paths = grids.export_grids(str(tmp_path), step=200, out_dir=str(tmp_path / "out"))
  assert _pixel(paths[0]) == round(200 / 1000 * 255)
  with pytest.raises(ValueError, match=r"no image grids at step 300.*\[200, 400\]"):
    grids.export_grids(str(tmp_path), step=300)


def test_export_writes_again_into_its_own_folder_but_not_into_a_foreign_one(tmp_path):
  _write_run(tmp_path, [200])
  first = grids.export_grids(str(tmp_path))
  assert grids.export_grids(str(tmp_path)) == first
  foreign = tmp_path / "mine" / "step_200"
  foreign.mkdir(parents=True)
  (foreign / "input.png").write_bytes(b"a user's file")
  with pytest.raises(FileExistsError, match="not written by pdr_tf.grids"):
    grids.export_grids(str(tmp_path), out_dir=str(tmp_path / "mine"))
  assert (foreign / "input.png").read_bytes() == b"a user's file"


def test_a_run_without_grids_or_logs_gets_a_clear_error(tmp_path):
  _write_run(tmp_path, [], extra_scalar=False)
  writer = tf.summary.create_file_writer(workdir_lib.train_logs(str(tmp_path)))
  with writer.as_default():
    tf.summary.scalar("loss/total", 1.0, step=10)
  writer.close()
  with pytest.raises(ValueError, match="holds no image grids"):
    grids.export_grids(str(tmp_path))
  with pytest.raises(FileNotFoundError, match="not a training work dir"):
    grids.export_grids(str(tmp_path / "missing"))
  assert grids.main(["--workdir", str(tmp_path / "missing")]) == 1


def test_a_truncated_event_file_keeps_the_grids_before_the_damage(tmp_path, caplog):
  _write_run(tmp_path, [200, 400])
  (path,) = glob.glob(os.path.join(workdir_lib.train_logs(str(tmp_path)), "events.out.tfevents.*"))
  data = open(path, "rb").read()
  with open(path, "wb") as f:
    f.write(data[:-20])
  read = summaries.read_image_grids(workdir_lib.train_logs(str(tmp_path)))
  assert 200 in read and list(read[200]) == list(NAMES)
  assert "damaged" in caplog.text and os.path.basename(path) in caplog.text


def test_main_prints_the_files_it_wrote(tmp_path, capsys):
  _write_run(tmp_path, [200, 400])
  assert grids.main(["--workdir", str(tmp_path)]) == 0
  printed = capsys.readouterr().out.split()
  assert printed[-1].endswith(os.path.join("step_400", grids.STACKED)) and all(os.path.exists(p) for p in printed)
  assert grids.main(["--workdir", str(tmp_path), "--step", "200", "--out", str(tmp_path / "early")]) == 0
  printed = capsys.readouterr().out.split()
  assert printed[-1] == str(tmp_path / "early" / "step_200" / grids.STACKED) and os.path.exists(printed[-1])
  a_file = tmp_path / "notes.txt"
  a_file.write_text("mine")
  with pytest.raises(SystemExit) as info:
    grids.main(["--workdir", str(tmp_path), "--out", str(a_file)])
  assert info.value.code == 2 and "is a file, not a folder" in capsys.readouterr().err
  assert a_file.read_text() == "mine"
  # An --out under a file cannot be made: exit 1 with the reason (it was a NotADirectoryError traceback).
  assert grids.main(["--workdir", str(tmp_path), "--out", str(a_file / "grids")]) == 1
  assert a_file.read_text() == "mine"


def test_a_grid_name_with_a_slash_becomes_one_file_in_the_step_folder(tmp_path):
  writer = tf.summary.create_file_writer(workdir_lib.train_logs(str(tmp_path)))
  with writer.as_default():
    tf.summary.image(summaries.IMAGE_TAG_PREFIX + "loocc/augmented", _strip(0.4, 8), step=10)
  writer.close()
  paths = grids.export_grids(str(tmp_path))
  assert paths[0] == os.path.join(str(tmp_path), grids.OUT_DIRNAME, "step_10", "loocc_augmented.png")
  assert _pixel(paths[0]) == round(0.4 * 255)
