"""Tests for pdr_tf.evaluation.scene_stats and the `python -m pdr_tf.probe` command."""

import json

import numpy as np
import pytest

import fixtures
from pdr_tf import probe
from pdr_tf.evaluation import scene_stats


def test_parameter_rows_tell_a_collapse_from_a_shrunk_and_an_unlearnt_prediction():
  rng = np.random.RandomState(0)
  gt = rng.normal(0, 0.5, (200, 3))
  pred = np.stack([np.full(200, -0.7), 0.3 * gt[:, 1], rng.normal(0, 0.5, 200)], 1)
  rows = scene_stats.parameter_rows(pred, gt, ("collapsed", "shrunk", "unlearnt"))
  collapsed, shrunk, unlearnt = rows
  assert collapsed["pred_mean"] == pytest.approx(-0.7) and collapsed["pred_std"] == 0 and np.isnan(collapsed["corr"])
  assert shrunk["corr"] == pytest.approx(1.0) and shrunk["pred_std"] == pytest.approx(0.3 * shrunk["gt_std"])
  assert shrunk["slope"] == pytest.approx(0.3) and collapsed["slope"] == 0.0 and abs(unlearnt["slope"]) < 0.2
  assert abs(unlearnt["corr"]) < 0.2
  assert unlearnt["gt_mean"] == pytest.approx(gt[:, 2].mean()) and unlearnt["gt_std"] == pytest.approx(gt[:, 2].std())
  text = scene_stats.format_rows(rows)
  assert "collapsed" in text and "nan" in text and len(text.splitlines()) == 4


def test_parameter_rows_reject_mismatched_or_too_few_scenes():
  with pytest.raises(ValueError, match=r"\[N, 2\]"):
    scene_stats.parameter_rows(np.zeros((4, 2)), np.zeros((4, 3)), ("a", "b"))
  with pytest.raises(ValueError, match=r"\[N, 2\]"):
    scene_stats.parameter_rows(np.zeros((4, 3)), np.zeros((4, 3)), ("a", "b"))
  with pytest.raises(ValueError, match="at least 2"):
    scene_stats.parameter_rows(np.zeros((1, 2)), np.zeros((1, 2)), ("a", "b"))


def test_masked_std_rows_measure_relief_on_the_masked_pixels_only():
  gt = np.zeros((3, 4, 4))
  gt[:, 1:3, 1:3] = [[1.0, 1.2], [1.0, 1.2]]  # relief std 0.1 on the object, background 0
  pred = np.full((3, 4, 4), 5.0)
  pred[:, 1:3, 1:3] = [[1.0, 1.0], [1.0, 1.4]]
  pred[2, 1:3, 1:3] = [[1.0, 1.0], [1.0, 1.0]]  # a flat prediction: no relief
  (row,) = scene_stats.masked_std_rows(pred, gt, gt > 0)
  assert row["name"] == "depth relief"
  assert row["gt_mean"] == pytest.approx(0.1) and row["gt_std"] == pytest.approx(0.0)
  assert row["pred_mean"] == pytest.approx((2 * np.std([1, 1, 1, 1.4])) / 3)
  with pytest.raises(ValueError, match="fewer than 2 images"):
    scene_stats.masked_std_rows(pred, gt, np.zeros_like(gt))
  with pytest.raises(ValueError, match=r"\[N, H, W\]"):
    scene_stats.masked_std_rows(pred[0], gt[0], gt[0] > 0)


def test_probe_command_prints_and_writes_every_parameter(tmp_path, monkeypatch, capsys, tiny_model):
  from pdr_tf.training import workdir as workdir_lib  # pylint: disable=import-outside-toplevel

  data_dir = fixtures.write_tiny_dataset(tmp_path / "data", num_train=2, num_test=2, num_val=4)
  monkeypatch.setattr(workdir_lib, "restore_model", lambda workdir, step=None: tiny_model)
  out_json = tmp_path / "probe.json"
  assert probe.main(["--workdir", str(tmp_path / "run"), "--data_dir", str(data_dir), "--json", str(out_json)]) == 0
  printed = capsys.readouterr().out
  names = list(scene_stats.LIGHT_NAMES + scene_stats.VIEW_NAMES) + ["depth relief"]
  written = json.loads(out_json.read_text())
  assert [row["name"] for row in written["parameters"]] == names
  assert set(written["depth_errors"]) == set(probe.DEPTH_VIEWS)
  assert all(name in printed for name in names) and "true view" in printed
  # A split without ground truth is a clear error, not a crash.
  assert probe.main(["--workdir", str(tmp_path / "run"), "--data_dir", str(data_dir), "--split", "train"]) == 1
  (tmp_path / "a_file").write_text("the user's")
  with pytest.raises(SystemExit) as info:  # a --json under a file: a usage error before any work
    probe.main(["--workdir", "w", "--data_dir", "d", "--json", str(tmp_path / "a_file" / "p.json")])
  assert info.value.code == 2 and "--json:" in capsys.readouterr().err
  # A --json in a folder that does not exist yet is written there, as by every entry point.
  nested = tmp_path / "reports" / "probe.json"
  assert probe.main(["--workdir", str(tmp_path / "run"), "--data_dir", str(data_dir), "--json", str(nested)]) == 0
  assert json.loads(nested.read_text())["parameters"]


class _StandInModel:
  """A stand-in de-renderer: a given canonical depth, grey albedo, a fixed light, and the view it is given."""

  image_size = 64

  def __init__(self, view, depth=None):
    from pdr_tf.render import renderer as renderer_lib  # pylint: disable=import-outside-toplevel

    self.view = np.asarray(view, np.float32)
    self.depth = np.full((64, 64), 1.0, np.float32) if depth is None else np.asarray(depth, np.float32)
    self.renderer = renderer_lib.Renderer()

  def predict_scene(self, images):
    n = len(images)
    return {
      "depth": np.tile(self.depth, (n, 1, 1)),
      "albedo": np.zeros((n, 64, 64, 3), np.float32),
      "light": np.tile(np.float32([[0.5, 0.5, 0.0, 0.0]]), (n, 1)),
      "view": np.tile(self.view, (n, 1)),
    }

  def render(self, depth, albedo, light, view):
    return self.renderer.render(depth, albedo, light, view)


def test_depth_errors_score_the_shape_under_the_true_view_as_well_as_the_predicted_one():
  gt_view = np.float32([[0.0, 0.2, 0.0, 0.0, 0.0, 0.0]] * 2)
  batch = {"image": np.zeros((2, 64, 64, 3), np.float32), "gt_light": np.float32([[0.5, 0.5, 0.0, 0.0]] * 2)}
  truth = _StandInModel(gt_view[0], np.where(fixtures.bump_depth(0.02) > 0, fixtures.bump_depth(0.02), 1.0))
  batch["gt_depth"] = np.where(
    fixtures.bump_depth(0.02)[None] > 0, truth.render(**_scene_args(truth, gt_view))["recon_depth"], 0
  )
  batch["gt_view"] = gt_view
  # A flat canonical depth whose prediction misses the 11-degree tilt.
  flat = _depth_errors(_StandInModel([0.0] * 6), batch)
  # Under the true view it is the flat baseline itself, and under its own untilted view the input-view flat map:
  # ratio 1 in both columns.
  for key in ("normals_mad_deg", "side"):
    assert flat["true view"][key]["ratio"] == pytest.approx(1.0, abs=1e-3)
    assert flat["predicted view"][key]["ratio"] == pytest.approx(1.0, abs=1e-3)
  # The true shape under the true view beats the flat canonical depth under the same view, whose error does not
  # depend on the shape predicted beside it.
  right = _depth_errors(truth, batch)
  assert right["true view"]["normals_mad_deg"]["model"] < 1.0
  assert right["true view"]["normals_mad_deg"]["ratio"] < 0.2
  # Its predicted view is the true one, so both columns score the same shape.
  assert right["predicted view"]["normals_mad_deg"]["model"] == pytest.approx(
    right["true view"]["normals_mad_deg"]["model"], abs=0.5
  )
  assert right["true view"]["normals_mad_deg"]["trivial"] == pytest.approx(
    flat["true view"]["normals_mad_deg"]["model"], abs=0.5
  )
  # The flat canonical depth under the predicted view: the flat prediction's own score, and for the right prediction
  # the true view's baseline, which already beats the input-view flat map by the tilt alone.
  assert flat["flat, predicted view"]["normals_mad_deg"]["ratio"] == pytest.approx(1.0, abs=1e-3)
  tilt_only = right["flat, predicted view"]["normals_mad_deg"]
  assert tilt_only["model"] == pytest.approx(right["true view"]["normals_mad_deg"]["trivial"], abs=0.5)
  assert tilt_only["ratio"] < 1.0
  assert right["predicted view"]["normals_mad_deg"]["model"] < tilt_only["model"]
  text = probe.format_depth_errors(flat)
  assert "true view" in text and "SIDE" in text and "1.00x" in text


def _depth_errors(model, batch):
  scene = model.predict_scene(batch["image"])
  return probe.depth_errors(model, scene, batch, probe.render_depth(model, scene, scene["depth"], scene["view"]))


def _scene_args(model, views):
  scene = model.predict_scene(np.zeros((len(views), 64, 64, 3)))
  return {"depth": scene["depth"], "albedo": scene["albedo"], "light": scene["light"], "view": views}
