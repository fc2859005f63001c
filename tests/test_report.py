"""Tests for pdr_tf.evaluation.report: mean ± std, markdown tables, JSON/markdown reports and the Table 1 comparison."""

import json
import math

import numpy as np
import pytest

from pdr_tf.evaluation import report


def test_mean_std_and_format():
  mean, std = report.mean_std([0.5, 0.6, 0.7])
  assert mean == pytest.approx(0.6)
  assert std == pytest.approx(0.1)  # sample std (ddof=1) of three values 0.1 apart
  assert report.mean_std([0.5, 0.7], ddof=0)[1] == pytest.approx(0.1)
  assert report.mean_std([0.42]) == (0.42, 0.0)
  assert report.format_mean_std(0.54849, 0.01234) == "0.5485 ± 0.0123"
  assert report.format_mean_std(0.5, 0.25, "{:.1f}") == "0.5 ± 0.2"
  with pytest.raises(ValueError, match="non-empty"):
    report.mean_std([])
  with pytest.raises(ValueError, match="non-finite"):
    report.mean_std([0.1, float("nan")])


def test_format_table():
  rows = [
    {"method": "Unsup3D", "acc": 0.57541, "runs": 3, "pm": (0.5, 0.01)},
    {"method": "a|b", "acc": float("nan"), "ok": True},
  ]
  table = report.format_table(rows, ["method", ("acc", "Accuracy"), "pm", "runs", "ok"])
  assert table == (
    "| method | Accuracy | pm | runs | ok |\n"
    "|---|---|---|---|---|\n"
    "| Unsup3D | 0.5754 | 0.5000 ± 0.0100 | 3 | - |\n"
    "| a\\|b | nan | - | - | True |\n"
  )
  assert report.format_table([{"x": np.float32(0.25)}], ["x"], float_fmt="{:.2f}").splitlines()[-1] == "| 0.25 |"
  with pytest.raises(ValueError, match="at least one column"):
    report.format_table(rows, [])


def test_write_report(tmp_path):
  results = {
    "wcp": np.float64(0.625),
    "nested": {"n": np.int64(644), "bad": float("nan")},
    "matrix": np.array([[1.0, 0.5], [0.5, 1.0]]),
    "names": ("depth", "albedo"),
  }
  paths = report.write_report(results, tmp_path / "out", "bbt_eval", tables={"Table 1": "| a |\n|---|\n| 1 |\n"})
  assert paths == {"json": str(tmp_path / "out" / "bbt_eval.json"), "markdown": str(tmp_path / "out" / "bbt_eval.md")}
  loaded = json.loads((tmp_path / "out" / "bbt_eval.json").read_text())
  assert loaded == {
    "wcp": 0.625,
    "nested": {"n": 644, "bad": None},
    "matrix": [[1.0, 0.5], [0.5, 1.0]],
    "names": ["depth", "albedo"],
  }
  md = (tmp_path / "out" / "bbt_eval.md").read_text()
  assert md.startswith("# bbt_eval\n")
  assert "| wcp | 0.6250 |" in md
  assert "| nested/n | 644 |" in md
  assert "| nested/bad | nan |" in md
  assert "| matrix | [[1.0, 0.5], [0.5, 1.0]] |" in md
  assert "## Table 1" in md and "| 1 |" in md


def test_write_report_errors(tmp_path):
  with pytest.raises(ValueError, match="plain file name"):
    report.write_report({}, tmp_path, "a/b")
  with pytest.raises(ValueError, match="must be a dict"):
    report.write_report([1], tmp_path, "x")


def test_paper_table1_numbers():
  assert report.PAPER_TABLE1["bbt"]["loocc_light"] == {"accuracy": 0.6252, "f1": 0.6133}
  assert report.PAPER_TABLE1["bbt"]["vq_vae"] == {"accuracy": 0.4168, "f1": 0.2796}
  assert report.PAPER_TABLE1["shapenet_cars"]["loocc_light_view"] == {"accuracy": 0.5485, "f1": 0.4995}
  assert report.PAPER_TABLE1["shapenet_cars"]["unsup3d"] == {"accuracy": 0.5100, "f1": 0.3877}
  assert len(report.PAPER_TABLE1["bbt"]) == 6 and len(report.PAPER_TABLE1["shapenet_cars"]) == 4
  for methods in report.PAPER_TABLE1.values():
    assert set(methods) <= set(report.METHOD_NAMES)


def test_table1_rows_put_measured_beside_paper():
  runs = [{"wcp": 0.60, "weighted_f1": 0.50}, {"wcp": 0.62, "weighted_f1": 0.54}]
  measured = {
    "bbt": {"loocc_light": report.table1_measurement(runs), "unsup3d": {"accuracy": 0.55, "f1": 0.4}},
    "utkface": {"loocc_light": {"accuracy": [0.7], "f1": [0.6]}},
  }
  rows = report.table1_rows(measured)
  assert len(rows) == 6 + 4 + 1
  light = next(r for r in rows if r["dataset"] == "BBT" and r["method"] == "Ours - Light Only")
  assert light["accuracy"][0] == pytest.approx(0.61)
  assert light["accuracy"][1] == pytest.approx(math.sqrt(2) * 0.01)
  assert light["f1"][0] == pytest.approx(0.52)
  assert light["paper_accuracy"] == 0.6252 and light["paper_f1"] == 0.6133 and light["runs"] == 2
  unsup = next(r for r in rows if r["dataset"] == "BBT" and r["method"] == "Unsup3D")
  assert unsup["accuracy"] == 0.55 and unsup["runs"] == 1
  vq = next(r for r in rows if r["dataset"] == "ShapeNet" and r["method"] == "VQ-VAE")
  assert vq["accuracy"] is None and vq["paper_accuracy"] == 0.4915
  extra = rows[-1]
  assert extra["dataset"] == "utkface" and extra["paper_accuracy"] is None and extra["accuracy"] == 0.7
  table = report.format_table(rows, report.TABLE1_COLUMNS)
  assert "| BBT | Ours - Light Only | 0.6100 ± 0.0141 | 0.6252 | 0.5200 ± 0.0283 | 0.6133 | 2 |" in table
  assert "| ShapeNet | VQ-VAE | - | 0.4915 | - | 0.3696 | - |" in table

  only = report.table1_rows(measured, include_unmeasured=False)
  assert [(r["dataset"], r["method"]) for r in only] == [
    ("BBT", "Unsup3D"),
    ("BBT", "Ours - Light Only"),
    ("utkface", "Ours - Light Only"),
  ]


def test_table1_rows_missing_metric():
  with pytest.raises(ValueError, match="has no 'f1'"):
    report.table1_rows({"bbt": {"unsup3d": {"accuracy": 0.5}}})
