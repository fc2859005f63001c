"""Tests of scripts/diagnostics/world_statistics.py on a tiny synthetic cars world and on hand-made records."""

import json
import os
import shutil

import numpy as np
import pytest

from pdr_tf import synthetic
from pdr_tf.data import formats
from pdr_tf.synthetic import cars

import fixtures  # pylint: disable=wrong-import-order  (tests/ is on sys.path)

# Two splits, two views per model: the smallest cars world with a split structure (about 20 s, mostly compilation).
TINY_CARS = {"train_models_per_class": 1, "val_models_per_class": 0, "test_models_per_class": 1, "images_per_model": 2}


_load = fixtures.load_diagnostic


@pytest.fixture(scope="module")
def ws():
  return _load("world_statistics")


@pytest.fixture(scope="module")
def cars_world(tmp_path_factory):
  folder = str(tmp_path_factory.mktemp("cars"))
  synthetic.generate("cars", folder, seed=5, progress=False, **TINY_CARS)
  return folder


def _within(stats, low, high, slack=1e-4):
  assert stats["n"] > 0
  assert low - slack <= stats["min"] <= stats["p5"] <= stats["median"] <= stats["p95"] <= stats["max"] <= high + slack


def test_a_tiny_cars_world_measures_inside_its_sampling_ranges(ws, cars_world):
  stats = ws.world_statistics(cars_world)
  assert stats["world"] == "cars" and stats["images_listed"] == stats["images_measured"] == 20
  assert stats["bad_sidecars"] == {"count": 0, "first": []} and stats["bad_images"]["count"] == 0
  y0, x0, height, width = formats.SYNCAR_CROP  # the Beam job's crop, in pixels of a 128-pixel render
  assert stats["crop_box"] == [x0, y0, x0 + width, y0 + height]
  assert list(stats["splits"]) == ["train", "test"]
  tilt, azimuth = np.degrees(cars.TILT_RANGE), np.degrees(cars.AZIMUTH_RANGE)
  for split in stats["splits"].values():
    assert split["rx tilt (deg)"]["n"] == 10
    _within(split["rx tilt (deg)"], -tilt, tilt)
    _within(split["ry tilt (deg)"], -tilt, tilt)
    _within(split["rz azimuth (deg)"], -azimuth, azimuth)
    _within(split["tx"], -cars.TRANSLATION_RANGE, cars.TRANSLATION_RANGE)
    _within(split["tz"], 0.0, 0.0)
    _within(split["ka"], *cars.AMBIENT_RANGE)
    _within(split["kd"], *cars.DIFFUSE_RANGE)
    _within(split["lx"], -cars.DIRECTION_RANGE, cars.DIRECTION_RANGE)
    _within(split["ly"], -cars.DIRECTION_RANGE, cars.DIRECTION_RANGE)
    steepest = np.degrees(np.arctan(np.hypot(cars.DIRECTION_RANGE, cars.DIRECTION_RANGE)))
    _within(split[ws.LIGHT_ANGLE], 0.0, steepest)
    coverage = split[ws.COVERAGE]
    assert 0.0 < coverage["min"] <= coverage["max"] < 1.0
    _within(split[ws.EXTENT], 0.0, 1.0)
    _within(split[ws.EDGE], 0.0, 1.0)
    _within(split[ws.BACKGROUND_MEAN], 0.0, 1.0)
    _within(split[ws.BACKGROUND_SPREAD], 0.0, 0.01)  # the ground is one plain, lit level per image
  assert "tracks" not in stats


def test_bad_sidecars_and_images_are_counted_and_named_and_the_rest_measured(ws, cars_world, tmp_path):
  folder = str(tmp_path / "world")
  shutil.copytree(cars_world, folder)
  rows = ws.read_labels(folder)
  corrupt, missing, broken_image = (row["image"] for row in rows[:3])
  with open(os.path.join(folder, os.path.splitext(corrupt)[0] + formats.GT_SUFFIX), "wb") as f:
    f.write(b"not a zip archive")
  os.remove(os.path.join(folder, os.path.splitext(missing)[0] + formats.GT_SUFFIX))
  with open(os.path.join(folder, broken_image), "r+b") as f:
    f.truncate(40)
  stats = ws.world_statistics(folder)
  assert stats["images_listed"] == 20 and stats["images_measured"] == 18
  assert stats["bad_sidecars"]["count"] == 2
  named = "\n".join(stats["bad_sidecars"]["first"])
  assert f"{corrupt}: invalid ground truth" in named and f"{missing}: missing or unreadable sidecar" in named
  assert stats["bad_images"]["count"] == 1 and stats["bad_images"]["first"][0].startswith(broken_image)
  train = stats["splits"]["train"]
  assert train[ws.COVERAGE]["n"] == 8 and train[ws.BACKGROUND_MEAN]["n"] == 7  # the broken image has no background
  assert "bad sidecars: 2" in ws.format_report(stats)


def test_main_prints_the_report_and_writes_json_for_a_subset(ws, cars_world, tmp_path, capsys):
  out = tmp_path / "stats.json"
  assert ws.main([cars_world, "--max_images", "6", "--json", str(out)]) == 0
  printed = capsys.readouterr().out
  assert "20 images listed, 6 read, 6 measured" in printed
  assert "[train]" in printed and "[test]" in printed and "object coverage of the crop" in printed
  written = json.loads(out.read_text())
  assert written["images_read"] == 6 and written["crop_box"] == ws.world_statistics(cars_world, 6)["crop_box"]


def test_main_exits_naming_a_folder_without_a_world(ws, tmp_path):
  with pytest.raises(SystemExit, match=synthetic.SUMMARY_FILENAME):
    ws.main([str(tmp_path)])
  with pytest.raises(SystemExit, match="--max_images"):
    ws.main([str(tmp_path), "--max_images", "0"])


def test_light_angle_coverage_and_crop_helpers(ws):
  assert ws.light_angle_degrees(0.0, 0.0) == pytest.approx(0.0)
  assert ws.light_angle_degrees(1.0, 0.0) == pytest.approx(45.0)
  depth = np.zeros((10, 10))
  depth[4:6, 2:8] = 1.0  # a 2 x 6 object inside the crop (1, 1, 9, 9)
  cover, extent, edge = ws.coverage(depth, (1, 1, 9, 9))
  assert (cover, extent, edge) == (pytest.approx(12 / 64), pytest.approx(6 / 8), False)
  assert ws.coverage(depth, (3, 0, 10, 10))[2]  # the object crosses this crop's left edge
  assert ws.coverage(np.zeros((4, 4)), (0, 0, 4, 4)) == (0.0, 0.0, False)
  side = formats.FACE_CENTER_CROP * formats.UTKFACE_RAW_SIZE
  margin = int(round((formats.UTKFACE_RAW_SIZE - side) / 2))
  size = formats.UTKFACE_RAW_SIZE
  assert ws.crop_pixels("faces", size, size) == (margin, margin, size - margin, size - margin)
  image = np.full((10, 10, 3), 255, np.uint8)
  mean, spread = ws.background_brightness(image, depth, (0, 0, 10, 10))
  assert (mean, spread) == (pytest.approx(1.0), pytest.approx(0.0))


def test_track_variation_separates_within_from_between_track_spread_and_subsamples_whole_tracks(ws):
  records, rows = [], []
  for track, (yaw, frames) in enumerate([(-20.0, 3), (0.0, 4), (20.0, 5)]):
    for k in range(frames):
      view = np.radians([0.0, yaw + (k % 2) * 2.0, 0.0, 0.0, 0.0, 0.0])  # yaw alternates by 2 degrees in a track
      light = np.array([0.5, 0.5, 0.1 * track, 0.0])  # light constant within a track
      records.append({"object_id": str(track), "view": view, "light": light})
      rows.append({"image": f"tracks/{track}/{k}.jpg", "split": "", "label": "raj" if track else "penny"})
      rows[-1]["object_id"] = str(track)
  variation = ws.track_variation(records, "bbt")
  assert variation["tracks_measured"] == 3
  assert variation["ry yaw"]["median_track_range"] == pytest.approx(2.0)
  assert 0.9 < variation["ry yaw"]["within_track_std"] <= 1.0 < 10.0 < variation["ry yaw"]["between_track_std"]
  assert variation["lx"]["within_track_std"] == pytest.approx(0.0, abs=1e-12)
  assert variation["lx"]["between_track_std"] > 0.0 and variation["ka"]["within_over_between"] is None
  lengths = ws.track_lengths(rows)
  assert lengths["num_tracks"] == 3 and lengths["tracks_per_label"] == {"penny": 1, "raj": 2}
  assert lengths["frames_per_track"]["median"] == 4
  subset = ws.subsample(rows, 5, whole_objects=True)
  kept = {row["object_id"] for row in subset}
  assert len(subset) == sum(1 for row in rows if row["object_id"] in kept)  # whole tracks only
  assert ws.subsample(rows, 5) == ws.subsample(rows, 5) and len(ws.subsample(rows, 5)) == 5
  assert ws.subsample(rows, None) == rows
