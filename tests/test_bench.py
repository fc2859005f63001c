"""Tests of the benchmark harness `python -m pdr_tf.bench`: helpers in-process, the whole harness in --smoke mode."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import fixtures
from pdr_tf.benchmarks import suite as bench
from pdr_tf.benchmarks import timing
from pdr_tf.evaluation import output_files

SECTIONS = ("rasterizer", "training_step", "input_pipeline", "flops", "serving", "beam")


def _numeric(value):
  return isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)


def _check_section(name, data, required):
  # The smoke run must measure every section: a section that raised is recorded as {"error": ...} by the harness
  # (test_guarded_records_errors_and_passes_results) and fails here.
  assert isinstance(data, dict), name
  assert "error" not in data, (name, data.get("error"))
  for key in required:
    assert _numeric(data[key]) and data[key] > 0, (name, key, data.get(key))


def test_time_call_returns_median_after_warmup(monkeypatch):
  # A fake clock that only the timed function advances: the test reads no wall time, so no load can fail it.
  clock = [0.0]
  monkeypatch.setattr(timing.time, "perf_counter", lambda: clock[0])
  calls = []
  delays = iter([5.0, 0.03, 0.001, 0.01])  # the first (warm-up) call is not timed

  def fn():
    calls.append(1)
    clock[0] += next(delays)

  median = bench.time_call(fn, repeats=3)
  assert len(calls) == 4
  assert median == pytest.approx(0.01)  # the middle of 0.001, 0.01, 0.03; the warm-up's 5 s left out


def test_guarded_records_errors_and_passes_results():
  assert bench._guarded("ok", lambda: {"x": 1}) == {"x": 1}  # pylint: disable=protected-access

  def boom():
    raise RuntimeError("kernel cannot be compiled")

  result = bench._guarded("bad", boom)  # pylint: disable=protected-access
  assert result == {"error": "RuntimeError: kernel cannot be compiled"}


def test_table_shows_values_targets_and_errors():
  sections = {
    "rasterizer": {
      "tfg": {"batch": 64, "triangle_ids_ms": 12.5, "render_forward_ms": 20.0, "render_forward_backward_ms": 60.0},
      "tf": {"error": "XlaError: nope"},
      "agreement": {"equal_ids": 0.9999},
    },
    "training_step": {
      "batch": 16,
      "mode": "tf_xla_render",
      "train_step_ms": 300.0,
      "networks_fwd_bwd_ms": 100.0,
      "ratio": 3.0,
      "pass": False,
      "breakdown": {"losses_ms": 1.5},
      "modes": {"tfg": {"train_step_ms": 400.0, "ratio": 4.0}},
    },
    "input_pipeline": {"pipeline_images_per_s": 2000.0, "train_images_per_s": 50.0, "ratio": 40.0, "pass": True},
    "flops": {"error": "ValueError: x"},
    "serving": {"serving_default_batch1_ms": 4.0},
    "beam": {"workers_1": {"images_per_s": 10.0, "written": 5}},
  }
  table = bench.format_table(sections)
  assert "tfg: triangle ids ms" in table and "12.50" in table
  assert "tf: triangle ids ms" in table and "XlaError: nope" in table
  assert "tf vs tfg equal ids" in table and "mode tf_xla_render" in table and "mode tfg: step ms" in table
  assert "FAIL" in table and "PASS" in table
  assert "breakdown: losses_ms" in table
  assert "ValueError: x" in table


@pytest.mark.parametrize("sections", ["rasterizer,warp_drive", ",", ""])
def test_unknown_or_no_section_is_a_usage_error_before_anything_runs(sections, capsys):
  with pytest.raises(SystemExit) as info:
    bench.main(["--smoke", "--sections", sections])
  assert info.value.code == 2
  err = capsys.readouterr().err
  assert "--sections: unknown or no section(s)" in err and "training_step" in err
  with pytest.raises(ValueError, match="unknown benchmark section"):  # the library function names it too
    bench.run_all(bench.PRESETS["smoke"], ["warp_drive"])


def test_flops_section_without_training_measures_the_machine():
  result = bench.bench_flops(bench.PRESETS["smoke"], training=None)
  assert result["machine_matmul_gflops"] > 0 and result["machine_conv2d_gflops"] > 0
  assert "model_error" in result


def _refused(argv, capsys):
  with pytest.raises(SystemExit) as info:
    bench.main(argv)
  assert info.value.code == 2
  return capsys.readouterr().err


def test_json_into_a_folder_or_a_foreign_file_is_refused_before_anything_runs(tmp_path, monkeypatch, capsys):
  monkeypatch.setattr(bench, "run_all", lambda *args: pytest.fail("a benchmark ran"))
  argv = ["--quick", "--sections", "flops"]
  err = _refused([*argv, "--json", str(tmp_path)], capsys)
  assert f"{tmp_path} is a folder" in err and "Traceback" not in err
  for content in (b'{"machine": {}, "sections": {}}\n', b"my notes", b'{"written_by": "pdr_tf.probe"}'):
    user_file = tmp_path / "user.json"
    user_file.write_bytes(content)
    err = _refused([*argv, f"--json={user_file}"], capsys)
    assert str(user_file) in err and "nothing was written" in err and "another path" in err
    assert user_file.read_bytes() == content
  assert sorted(p.name for p in tmp_path.iterdir()) == ["user.json"]


def test_json_rerun_replaces_the_benchs_own_earlier_report(tmp_path):
  out = tmp_path / "bench.json"
  out.write_text(json.dumps({"written_by": bench.REPORT_WRITER, "sections": {"stale": {}}}))
  assert bench.main(["--quick", "--sections", "flops", "--json", str(out)]) == 0
  report = json.loads(out.read_text())
  assert list(report)[0] == "written_by" and report["written_by"] == bench.REPORT_WRITER
  assert list(report["sections"]) == ["flops"] and report["settings"]["preset"] == "quick"
  assert report["sections"]["flops"]["machine_matmul_gflops"] > 0
  assert sorted(p.name for p in tmp_path.iterdir()) == ["bench.json"]


def test_the_documented_commands_may_rewrite_their_committed_reports():
  """docs name committed reports as `python -m pdr_tf.bench ... --json docs/bench/...`: each is bench's own."""
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  with open(os.path.join(root, "docs", "performance.md"), encoding="utf-8") as f:
    targets = re.findall(r"python -m pdr_tf\.bench [^`]*--json (docs/bench/[^\s`]+)", f.read())
  assert targets
  for target in targets:
    assert output_files.check_json_report(os.path.join(root, target), bench.REPORT_WRITER) is None, target


@pytest.mark.slow
@pytest.mark.longest
def test_smoke_run_writes_every_section(tmp_path):
  out = tmp_path / "bench.json"
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
  proc = subprocess.run(
    [sys.executable, "-m", "pdr_tf.bench", "--smoke", "--json", str(out)],
    env=env,
    capture_output=True,
    text=True,
    timeout=fixtures.HANG_GUARD_S,
    check=False,
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "ratio step / networks" in proc.stdout
  report = json.loads(out.read_text())
  assert report["written_by"] == bench.REPORT_WRITER
  assert report["machine"]["cpus"] >= 1 and report["machine"]["tensorflow"]
  assert report["settings"]["preset"] == "smoke"
  sections = report["sections"]
  assert set(SECTIONS) <= set(sections)
  assert {"tf", "tf+xla", "tfg"} <= set(sections["rasterizer"])
  assert sections["rasterizer"]["agreement"]["equal_ids"] > 0.99
  candidates = sections["rasterizer"].pop("edge_on_candidates_per_image")
  assert 0 < candidates["span"] < candidates["box"]
  for backend, data in sections["rasterizer"].items():
    if backend != "agreement":
      _check_section(
        f"rasterizer[{backend}]",
        data,
        ("triangle_ids_ms", "triangle_ids_edge_on_ms", "render_forward_ms", "render_forward_backward_ms"),
      )
  training = sections["training_step"]
  _check_section("training_step", training, ("train_step_ms", "networks_fwd_bwd_ms", "ratio", "train_images_per_s"))
  assert training["ratio"] == pytest.approx(training["train_step_ms"] / training["networks_fwd_bwd_ms"], rel=0.01)
  assert training["pass"] == (training["ratio"] <= bench.TARGET_STEP_RATIO)
  assert all(_numeric(v) for v in training["breakdown"].values())
  assert training["mode"] == "tf_xla_render" and set(training["modes"]) == {"tf_xla_render", "tfg"}
  assert all(m["train_step_ms"] > 0 for m in training["modes"].values())
  _check_section("input_pipeline", sections["input_pipeline"], ("pipeline_images_per_s", "ratio"))
  _check_section(
    "flops",
    sections["flops"],
    ("machine_matmul_gflops", "machine_conv2d_gflops", "train_step_gflop_per_image", "model_train_step_gflops"),
  )
  _check_section(
    "serving",
    sections["serving"],
    ("serving_default_batch1_ms", "embed_images_per_s", "evaluation_de_render_images_per_s", "evaluation_images_per_s"),
  )
  assert sections["serving"]["evaluation_de_render_path"] == "xla"
  serving = sections["serving"]
  ratio = serving["evaluation_images_per_s"] / training["train_images_per_s"]
  assert serving["evaluation_over_training"] == pytest.approx(ratio, rel=0.02)
  assert serving["evaluation_pass"] == (serving["evaluation_over_training"] >= bench.TARGET_EVALUATION_RATIO)
  for workers in (1, 2):
    _check_section(f"beam[{workers}]", sections["beam"][f"workers_{workers}"], ("images_per_s",))


def test_default_modes_put_the_shipped_backend_first(monkeypatch):
  from pdr_tf.render import rasterizer  # pylint: disable=import-outside-toplevel
  from pdr_tf.benchmarks import training  # pylint: disable=import-outside-toplevel

  for resolved, headline in (("tfg", "tfg"), ("tf", "tf_xla_render")):
    monkeypatch.setattr(rasterizer, "resolve_backend", lambda name, r=resolved: r)
    modes = training.default_modes()
    assert modes[0] == headline and sorted(modes) == sorted(training.MODES)


def test_quick_model_is_the_quick_presets_network():
  """The benchmarks time gin/quick.gin's network: every DeRenderer binding gin itself applies for the quick preset."""
  import gin  # pylint: disable=import-outside-toplevel

  from pdr_tf import gin_config  # pylint: disable=import-outside-toplevel
  from pdr_tf import train  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
  from pdr_tf.benchmarks import training  # pylint: disable=import-outside-toplevel

  gin_config.parse([os.path.join(gin_config.GIN_DIR, name) for name in ("cars_light_view.gin", "quick.gin")])
  try:
    model = training.QUICK_MODEL
    assert {"nf", "zdim", "depth_size", "flat_depth_init"} <= set(model)
    for key, value in model.items():
      assert gin.query_parameter(f"DeRenderer.{key}") == value, key
  finally:
    gin.clear_config()


@pytest.mark.parametrize(
  "argv", [["--workers", "two"], ["--workers", "0,2"], ["--workers", ","], ["--workdir", "/no/such"]]
)
def test_data_benchmark_refuses_bad_flags_before_running(argv, capsys):
  from pdr_tf.benchmarks import data as data_bench  # pylint: disable=import-outside-toplevel

  with pytest.raises(SystemExit) as info:
    data_bench.main(argv)
  assert info.value.code == 2 and argv[0] in capsys.readouterr().err


def test_data_benchmark_runs_every_step_and_writes_its_report(tmp_path, capsys):
  from pdr_tf.benchmarks import data as data_bench  # pylint: disable=import-outside-toplevel

  out = tmp_path / "data.json"
  argv = ["--workers", "1", "--num_images", "3", "--pipeline_images", "16", "--batch_size", "4", "--num_batches", "2"]
  assert data_bench.main(argv + ["--workdir", str(tmp_path), "--json", str(out)]) == 0
  report = json.loads(out.read_text())
  assert report["written_by"] == data_bench.REPORT_WRITER and len(report["results"]) == 3  # Beam, tf.data x 2
  beam = report["results"][0]
  assert beam["num_workers"] == 1 and beam["written"] == 3 and beam["images_per_s"] > 0
  assert all(_numeric(r[k]) for r in report["results"][1:] for k in r if k.endswith("_per_s"))
  assert "images/s" in capsys.readouterr().out
