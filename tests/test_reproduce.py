"""Tests of pdr_tf.reproduce: one tiny end-to-end cars suite (debug gin, tiny TFRecords), table rows, bad arguments."""

import json
import logging
import os

import gin
import pytest

from pdr_tf.evaluation import report
from pdr_tf.evaluation import table1
from pdr_tf import reproduce
import fixtures  # pylint: disable=wrong-import-order  (tests/ is on sys.path)
from fixtures import write_tiny_dataset  # pylint: disable=wrong-import-order

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEBUG_GIN = os.path.join(REPO, "gin", "debug.gin")
CAR_CLASSES = ("police car", "ambulance", "limousine", "jeep", "Ferrari")
E2E_METHODS = ("loocc_light_view", "unsup3d", "vq_vae", "pixels_pca")
TINY_BASELINES = [
  "VQVAE.hidden = 8",
  "VQVAE.res_hidden = 4",
  "VQVAE.num_res_blocks = 0",
  "VQVAE.embedding_dim = 4",
  "VQVAE.num_embeddings = 8",
  "Trainer.image_summary_every = 0",
]


@pytest.fixture(scope="module")
def tiny_cars(tmp_path_factory):
  return write_tiny_dataset(
    tmp_path_factory.mktemp("cars") / "tfrecords",
    num_train=16,
    num_test=10,
    classes=CAR_CLASSES,
    test_ground_truth=True,
  )


@pytest.mark.slow
@pytest.mark.longest
def test_cars_suite_end_to_end_writes_the_table(tiny_cars, tmp_path, capsys):
  out = str(tmp_path / "runs")
  # One seed, and LOOCC light left out (it differs from light + view only in LooccConfig.mode), keep it near two
  # minutes: tracing the training steps dominates. Mean ± std over seeds is tested below.
  argv = [
    "--suite",
    "cars",
    "--seeds",
    "1",
    "--first_seed",
    "1",
    "--output_dir",
    out,
    "--gin_file",
    DEBUG_GIN,
    "--train_data_dir",
    tiny_cars,
    "--eval_data_dir",
    tiny_cars,
    "--train_steps",
    "2",
    "--vqvae_steps",
    "2",
    "--pca_components",
    "8",
    "--no_progress",
    "--methods",
    ",".join(E2E_METHODS),
  ]
  for binding in TINY_BASELINES:
    argv += ["--gin_param", binding]
  assert reproduce.main(argv) == 0
  markdown_path = os.path.join(out, "cars", "table1.md")
  json_path = os.path.join(out, "cars", "table1.json")
  assert os.path.isfile(markdown_path) and os.path.isfile(json_path)
  markdown = open(markdown_path, encoding="utf-8").read()
  for name in ("Ours - Light + View", "Ours - Light Only", "Unsup3D", "VQ-VAE", "pixels_pca"):
    assert f"| ShapeNet | {name} |" in markdown, name
  assert "Paper accuracy" in markdown and "0.5485" in markdown and "0.3877" in markdown  # the paper's numbers
  assert "LOOCC against Unsup3D" in markdown and "BBT" not in markdown.split("## LOOCC")[0]
  verdicts = markdown.split("## Does each de-renderer de-render?")[1].split("## LOOCC")[0]
  assert all(f"- {name} " in verdicts for name in ("Unsup3D", "Ours - Light + View"))
  assert "- Ours - Light Only " not in verdicts  # not run: its row keeps the paper's numbers only
  printed = capsys.readouterr().out
  assert "| ShapeNet | Unsup3D |" in printed

  data = json.load(open(json_path, encoding="utf-8"))
  assert data["suite"] == "cars" and data["config"]["seeds"] == [1]
  assert data["paper"] == report.PAPER_TABLE1["shapenet_cars"]
  assert set(data["per_seed"]) == set(E2E_METHODS)
  for method, runs in data["per_seed"].items():
    assert [r["seed"] for r in runs] == [1], method
    for r in runs:
      assert 0.2 <= r["accuracy"] <= 1.0 and 0.0 <= r["f1"] <= 1.0, (method, r)  # WCP >= largest class (2 of 10)
      assert r["n_samples"] == 10 and r["nmi"] is not None
      assert os.path.isdir(r["workdir"]) and r["workdir"].endswith(os.path.join("cars", method, f"seed{r['seed']}"))
    assert data["measured"][method]["accuracy"] == [r["accuracy"] for r in runs]
  for method in ("loocc_light_view", "unsup3d"):
    assert [r["train_steps"] for r in data["per_seed"][method]] == [2]
    (run,) = data["per_seed"][method]
    assert set(run["derender_ratios"]) == {"view", "light", "normals", "depth"}, method
    assert all(isinstance(v, float) for v in run["derender_ratios"].values()), run["derender_ratios"]
    assert isinstance(run["side"], float) and isinstance(run["mad_deg"], float)
    assert isinstance(run["mean_pcc"], float)
    assert os.path.isdir(os.path.join(out, "cars", method, "seed1", "export"))
  # The seed reaches the trainer (its default is 0): the operative config of seed 1 says so.
  operative = open(os.path.join(out, "cars", "unsup3d", "seed1", "operative_config.gin")).read()
  assert "Trainer.seed = 1" in operative
  rows = {r["method"]: r for r in data["table"]}
  assert rows["Unsup3D"]["paper_accuracy"] == 0.51 and rows["Unsup3D"]["runs"] == 1
  assert (
    rows["pixels_pca"]["paper_accuracy"] is None
    and rows["pixels_pca"]["accuracy"] == data["per_seed"]["pixels_pca"][0]["accuracy"]
  )
  assert len(data["comparison"]) == 2 and sum("mean PCC" in line for line in data["comparison"]) == 1


def test_table_rows_put_measurements_beside_the_paper():
  rows = table1.table_rows(
    reproduce.get_suite("faces"),
    {"unsup3d": {"accuracy": [0.5, 0.7], "f1": [0.4, 0.4]}, "pixels_pca": {"accuracy": [0.3], "f1": [0.2]}},
  )
  by_method = {r["method"]: r for r in rows}
  assert all(r["dataset"] == "BBT" for r in rows)
  assert by_method["Unsup3D"]["accuracy"] == pytest.approx((0.6, 0.1414213), abs=1e-6)
  assert by_method["Unsup3D"]["paper_accuracy"] == 0.5754 and by_method["Unsup3D"]["runs"] == 2
  assert by_method["pixels_pca"]["accuracy"] == 0.3 and by_method["pixels_pca"]["paper_f1"] is None
  assert by_method["RIS"]["accuracy"] is None and by_method["RIS"]["paper_accuracy"] == 0.479


def test_write_table_states_whether_loocc_beats_unsup3d(tmp_path):
  runs = lambda acc, f1: [{"seed": 0, "accuracy": acc, "f1": f1, "seconds": 1.0}]
  config = {"command": "x", "machine": "m", "date": "d", "seeds": [0], "preset": "quick"}
  paths, table = table1.write_table(
    reproduce.get_suite("cars"), {"unsup3d": runs(0.5, 0.4), "loocc_light": runs(0.6, 0.3)}, config, str(tmp_path)
  )
  markdown = open(paths["markdown"], encoding="utf-8").read()
  assert "Ours - Light Only beats Unsup3D on accuracy (0.6000 vs 0.5000; ahead in 1 of 1 seeds)" in markdown
  assert "does not beat it on F1 (0.3000 vs 0.4000; ahead in 0 of 1 seeds), over seed 0." in markdown
  assert "| ShapeNet | Unsup3D | 0.5000 | 0.5100 | 0.4000 | 0.3877 | 1 |" in table


def test_loocc_is_compared_with_unsup3d_over_the_seeds_both_ran(tmp_path):
  def run(seed, accuracy, pcc):
    return {"seed": seed, "accuracy": accuracy, "f1": accuracy, "mean_pcc": pcc, "seconds": 1.0}

  per_seed = {
    "unsup3d": [run(0, 0.50, 0.20), run(1, 0.90, 0.40), run(2, 0.90, 0.40)],
    "loocc_light": [run(0, 0.60, 0.10)],  # its mean (0.60) is below Unsup3D's three-seed mean (0.77)...
    "loocc_light_view": [run(5, 0.99, 0.10)],
  }
  config = {"command": "x", "machine": "m", "date": "d", "seeds": [0, 1, 2, 5], "preset": "cpu"}
  paths, _ = table1.write_table(reproduce.get_suite("cars"), per_seed, config, str(tmp_path))
  markdown = open(paths["markdown"], encoding="utf-8").read()
  # ...but on the one seed both ran it is ahead, and that is the comparison made.
  assert "Ours - Light Only beats Unsup3D on accuracy (0.6000 vs 0.5000; ahead in 1 of 1 seeds)" in markdown
  assert (
    "Ours - Light Only: mean PCC 0.100 against Unsup3D's 0.200 (-50%; the paper: 0.26 -> 0.18, -31 %), over seed 0."
    in markdown
  )
  assert "Ours - Light + View shares no seed with Unsup3D: not compared." in markdown


@pytest.mark.parametrize(
  "argv",
  [
    ["--suite", "planes"],
    ["--suite", "cars", "--methods", "loocc_light,dalle"],
    ["--suite", "cars", "--seeds", "0"],
    ["--suite", "cars", "--train_steps", "-3"],
    ["--suite", "cars", "--preset", "gpu"],
    ["--suite", "cars", "--quick", "--preset", "cpu"],
  ],
)
def test_bad_arguments_exit_2(argv, tmp_path):
  assert reproduce.main(argv + ["--output_dir", str(tmp_path)]) == 2
  assert not os.listdir(tmp_path)  # nothing trained or written


def test_run_suite_rejects_unknown_suite_method_and_seeds():
  with pytest.raises(ValueError, match="unknown suite 'planes'"):
    reproduce.run_suite("planes")
  with pytest.raises(ValueError, match="unknown method"):
    reproduce.run_suite("cars", methods=["nope"])
  with pytest.raises(ValueError, match="seeds"):
    reproduce.run_suite("cars", seeds=[1, 1])
  with pytest.raises(ValueError, match="gin file"):
    reproduce.run_suite("cars", gin_files=["/nonexistent.gin"])


def test_an_output_folder_that_cannot_take_the_table_is_refused_before_any_run(tiny_cars, tmp_path, caplog):
  argv = ["--suite", "cars", "--seeds", "1", "--methods", "pixels_pca", "--no_progress"]
  argv += ["--train_data_dir", tiny_cars, "--eval_data_dir", tiny_cars]
  mine = tmp_path / "mine"
  (mine / "cars").mkdir(parents=True)
  (mine / "cars" / "table1.md").write_text("my notes")
  before = fixtures.folder_bytes(mine)
  assert reproduce.main(argv + ["--output_dir", str(mine)]) == 1
  assert "table1.md, not written by pdr_tf" in caplog.text
  assert fixtures.folder_bytes(mine) == before  # no run, no progress file: refused before the work, not after it
  a_file = tmp_path / "notes.txt"
  a_file.write_text("mine")
  assert reproduce.main(argv + ["--output_dir", str(a_file)]) == 1
  assert f"{a_file} is a file, not a folder" in caplog.text and a_file.read_text() == "mine"


def test_missing_data_dir_is_a_clear_error(tmp_path):
  with pytest.raises(FileNotFoundError, match=str(tmp_path / "none")):
    reproduce.run_suite(
      "cars",
      train_data_dir=str(tmp_path / "none"),
      eval_data_dir=str(tmp_path / "none"),
      output_dir=str(tmp_path / "out"),
    )


def _summary(seed, accuracy, ratios=None, pcc=None):
  out = {"seed": seed, "accuracy": accuracy, "f1": accuracy - 0.1, "seconds": 1.0, "mean_pcc": pcc}
  if ratios is not None:
    out["derender_ratios"] = dict(zip(table1.RATIO_NAMES, ratios))
  return out


def test_per_seed_summary_carries_the_derendering_ratios():
  results = {
    "seed": 2,
    "accuracy": 0.5,
    "f1": 0.4,
    "clustering": {},
    "n_samples": 10,
    "seconds": 3.0,
    "workdir": "w",
    "disentanglement": {"mean_pcc": 0.2},
    "derender": {
      "side": {"model": 0.01, "trivial": 0.0125, "ratio": 0.8},
      "normals_mad_deg": {"model": 23.4, "trivial": 26.0, "ratio": 0.9},
      "ratios": {"view": 0.5, "light": 0.99, "normals": 0.9, "depth": 0.8},
    },
  }
  summary = table1.per_seed_summary(results)
  assert summary["side"] == 0.01 and summary["mad_deg"] == 23.4  # the model's errors (the ratios come next)
  assert summary["derender_ratios"] == {"view": 0.5, "light": 0.99, "normals": 0.9, "depth": 0.8}
  assert summary["mean_pcc"] == 0.2
  line = table1.summary_line(summary)
  assert "0.50 / 0.99 / 0.90 / 0.80" in line and "mean PCC 0.200" in line
  results.pop("derender")
  assert "derender_ratios" not in table1.per_seed_summary(results)  # a baseline: no de-rendering


def test_write_table_gives_every_derenderer_its_ratios_pcc_and_verdict(tmp_path):
  per_seed = {
    "unsup3d": [_summary(0, 0.5, (0.5, 1.0, 0.9, 0.8), 0.3), _summary(1, 0.6, (0.7, 0.98, 0.7, 0.6), 0.1)],
    "loocc_light_view": [_summary(0, 0.6, (0.5, 0.6, 0.6, 0.5), 0.1), _summary(1, 0.6, (0.3, 0.4, 0.5, 0.5), 0.1)],
    "pixels_pca": [_summary(0, 0.4), _summary(1, 0.5)],
  }
  config = {"command": "x", "machine": "m", "date": "d", "seeds": [0, 1], "preset": "cpu"}
  paths, table = table1.write_table(reproduce.get_suite("cars"), per_seed, config, str(tmp_path))
  rows = {r["method"]: r for r in json.load(open(paths["json"], encoding="utf-8"))["table"]}
  assert rows["Unsup3D"]["derender"] == "0.60 / 0.99 / 0.80 / 0.70"  # the mean over seeds of each ratio
  assert rows["Unsup3D"]["mean_pcc"] == pytest.approx([0.2, 0.1414213], abs=1e-6)
  assert rows["pixels_pca"].get("derender") is None and rows["pixels_pca"].get("mean_pcc") is None
  assert "| 0.60 / 0.99 / 0.80 / 0.70 | 0.2000 ± 0.1414 |" in table
  markdown = open(paths["markdown"], encoding="utf-8").read()
  assert "preset: cpu" in markdown
  assert "Unsup3D does not de-render: light 0.99x the trivial predictors' error" in markdown
  assert "Ours - Light + View de-renders: 0.40 / 0.50 / 0.55 / 0.50" in markdown
  assert "Ours - Light + View: mean PCC 0.100 against Unsup3D's 0.200 (-50%" in markdown
  # Rewritten in place (each finished run rewrites it), but a table1.md of the user's is never replaced.
  assert table1.write_table(reproduce.get_suite("cars"), per_seed, config, str(tmp_path))[0] == paths
  mine = tmp_path / "mine"
  mine.mkdir()
  (mine / "table1.md").write_text("my notes")
  with pytest.raises(FileExistsError, match="table1.md"):
    table1.write_table(reproduce.get_suite("cars"), per_seed, config, str(mine))
  assert sorted(os.listdir(mine)) == ["table1.md"] and (mine / "table1.md").read_text() == "my notes"


def test_presets_layer_their_gin_file_after_the_suites():
  suite = reproduce.get_suite("cars")
  files = reproduce._gin_files(suite, "unsup3d", reproduce.get_preset("cpu"), ["extra.gin"])
  assert [os.path.basename(f) for f in files] == ["cars_unsup3d.gin", "cpu.gin", "extra.gin"]
  assert [os.path.basename(f) for f in reproduce._gin_files(suite, "unsup3d", reproduce.get_preset("none"), [])] == [
    "cars_unsup3d.gin"
  ]
  assert reproduce.get_preset("quick").train_steps == reproduce.QUICK_TRAIN_STEPS
  with pytest.raises(ValueError, match="unknown preset 'gpu'"):
    reproduce.get_preset("gpu")
  for preset in reproduce.PRESETS.values():
    assert preset.gin_file is None or os.path.isfile(os.path.join(REPO, "gin", preset.gin_file))


def test_a_users_gin_file_sets_the_steps_even_under_a_preset_with_its_own(tmp_path):
  suite = reproduce.get_suite("cars")
  ctx = {"preset": "quick", "gin_files": [], "gin_params": []}
  reproduce._parse_method_config(suite, "unsup3d", ctx)
  assert gin.query_parameter("Trainer.train_steps") == reproduce.QUICK_TRAIN_STEPS
  assert gin.query_parameter("DeRenderer.nf") == 16  # the preset's file is in the stack
  mine = tmp_path / "short.gin"
  mine.write_text("Trainer.train_steps = 7\n", encoding="utf-8")
  reproduce._parse_method_config(suite, "unsup3d", dict(ctx, gin_files=[str(mine)]))
  assert gin.query_parameter("Trainer.train_steps") == 7
  assert gin.query_parameter("DeRenderer.nf") == 16
  reproduce._parse_method_config(
    suite, "unsup3d", dict(ctx, gin_files=[str(mine)], gin_params=["Trainer.train_steps=9"])
  )
  assert gin.query_parameter("Trainer.train_steps") == 9
  gin.clear_config()


def test_a_rerun_skips_the_finished_runs_and_refuses_other_settings(tiny_cars, tmp_path, monkeypatch):
  kwargs = dict(
    seeds=[1],
    output_dir=str(tmp_path / "runs"),
    methods=["pixels_pca"],
    train_data_dir=tiny_cars,
    eval_data_dir=tiny_cars,
    pca_components=4,
    progress=False,
  )
  first = reproduce.run_suite("cars", **kwargs)
  assert first["skipped"] == []
  progress = json.load(open(tmp_path / "runs" / "cars" / "progress.json", encoding="utf-8"))
  assert progress["finished"] == progress["total"] == 1 and progress["running"] is None
  assert progress["runs"]["pixels_pca/seed1"]["summary"]["accuracy"] == first["per_seed"]["pixels_pca"][0]["accuracy"]

  def must_not_run(*args, **kw):
    raise AssertionError("a finished run was run again")

  monkeypatch.setattr(reproduce, "_run_pca", must_not_run)
  again = reproduce.run_suite("cars", **kwargs)
  assert again["skipped"] == [("pixels_pca", 1)]
  assert again["per_seed"]["pixels_pca"][0]["accuracy"] == first["per_seed"]["pixels_pca"][0]["accuracy"]
  assert os.path.isfile(again["paths"]["markdown"])
  with pytest.raises(ValueError, match="other settings.*pca_components: 4 there, 8 now"):
    reproduce.run_suite("cars", **dict(kwargs, pca_components=8))


def test_a_bad_binding_fails_before_the_folder_records_its_settings_and_paths_match_resolved(
  tiny_cars, tmp_path, monkeypatch
):
  """A misspelt binding or a value a configurable refuses fails before progress.json is written, so the corrected
  command is not refused as "other settings"; the same data folder written another way is the same setting."""
  kwargs = dict(seeds=[1], output_dir=str(tmp_path / "runs"), eval_data_dir=tiny_cars, progress=False)
  kwargs.update(train_data_dir=tiny_cars, pca_components=4)
  progress = tmp_path / "runs" / "cars" / "progress.json"
  monkeypatch.setattr(reproduce, "_run_derenderer", lambda *a: pytest.fail("a run started"))
  with pytest.raises(reproduce.gin_config.GinConfigError, match="wieght"):
    reproduce.run_suite("cars", methods=["unsup3d"], gin_params=["LooccConfig.wieght = 0.1"], **kwargs)
  with pytest.raises(ValueError, match="LooccConfig"):
    reproduce.run_suite("cars", methods=["unsup3d"], gin_params=["LooccConfig.mode = 'colour'"], **kwargs)
  with pytest.raises(ValueError, match="global_batch_size"):
    reproduce.run_suite("cars", methods=["pixels_pca"], gin_params=["Trainer.global_batch_size = -1"], **kwargs)
  assert not progress.exists()
  # Evaluation data the suite cannot cluster (faces averages per track; these records have no track ids) is found
  # before the first run too, not after hours of training.
  with pytest.raises(ValueError, match="averages features per track but 10 labelled test records .* no track id"):
    reproduce.run_suite("faces", methods=["unsup3d"], **kwargs)
  assert not (tmp_path / "runs" / "faces" / "progress.json").exists()
  reproduce.run_suite("cars", methods=["pixels_pca"], **kwargs)
  monkeypatch.chdir(os.path.dirname(tiny_cars))
  relative = dict(kwargs, train_data_dir=os.path.join(".", os.path.basename(tiny_cars)))
  assert reproduce.run_suite("cars", methods=["pixels_pca"], **relative)["skipped"] == [("pixels_pca", 1)]


def test_more_methods_extend_a_suite_folder(tiny_cars, tmp_path, monkeypatch):
  def fake_derenderer(suite, method, seed, workdir, ctx):
    return {"accuracy": 0.5, "f1": 0.4, "clustering": {}, "n_samples": 10}

  monkeypatch.setattr(reproduce, "_run_derenderer", fake_derenderer)
  kwargs = dict(seeds=[0], output_dir=str(tmp_path / "runs"), train_data_dir=tiny_cars, eval_data_dir=tiny_cars)
  reproduce.run_suite("cars", methods=["unsup3d"], progress=False, **kwargs)
  more = reproduce.run_suite("cars", methods=["unsup3d", "loocc_light"], progress=False, **kwargs)
  assert more["skipped"] == [("unsup3d", 0)]
  # A command with other methods and seeds keeps the earlier commands' rows in the table.
  other = reproduce.run_suite("cars", methods=["loocc_light"], progress=False, **dict(kwargs, seeds=[1]))
  assert other["per_seed"] == {"loocc_light": [other["per_seed"]["loocc_light"][0]]}
  saved = json.load(open(other["paths"]["json"], encoding="utf-8"))
  assert {m: [r["seed"] for r in runs] for m, runs in saved["per_seed"].items()} == {
    "loocc_light": [0, 1],
    "unsup3d": [0],
  }
  markdown = open(other["paths"]["markdown"], encoding="utf-8").read()
  assert "Seeds in the table: [0, 1] (every finished run the folder records; this command's: [1])" in markdown
  assert "| ShapeNet | Unsup3D | 0.5000 |" in markdown
  suite = reproduce.get_suite("cars")
  assert set(reproduce._gin_digest(suite, "cpu", [])) == set(reproduce.DERENDERERS)
  assert reproduce._gin_digest(suite, "cpu", []) != reproduce._gin_digest(suite, "quick", [])


def test_a_folder_recorded_with_the_older_single_digest_resumes(tiny_cars, tmp_path, monkeypatch):
  kwargs = dict(
    seeds=[1],
    output_dir=str(tmp_path / "runs"),
    methods=["pixels_pca"],
    train_data_dir=tiny_cars,
    eval_data_dir=tiny_cars,
    pca_components=4,
    progress=False,
  )
  reproduce.run_suite("cars", **kwargs)
  path = tmp_path / "runs" / "cars" / "progress.json"
  data = json.load(open(path, encoding="utf-8"))
  suite = reproduce.get_suite("cars")
  files = [
    f for m in ("loocc_light_view", "unsup3d") for f in reproduce._gin_files(suite, m, reproduce.PRESETS["none"], [])
  ]
  data["settings"]["gin_digest"] = reproduce.gin_config.stack_digest(files)  # as --methods loocc_light_view,unsup3d,...
  json.dump(data, open(path, "w", encoding="utf-8"))
  assert reproduce.run_suite("cars", **kwargs)["skipped"] == [("pixels_pca", 1)]
  assert json.load(open(path, encoding="utf-8"))["settings"]["gin_digest"] == reproduce._gin_digest(suite, "none", [])
  data["settings"]["gin_digest"] = "0" * 64  # a digest of other gin files
  json.dump(data, open(path, "w", encoding="utf-8"))
  with pytest.raises(ValueError, match="gin_digest"):
    reproduce.run_suite("cars", **kwargs)


def test_a_ratio_that_is_not_finite_reads_the_same_fresh_and_from_the_progress_file(tmp_path):
  fresh = _summary(0, 0.5, (0.5, float("nan"), 0.6, 0.6), 0.2)
  reread = report.jsonable(fresh)  # NaN is stored as null
  config = {"command": "x", "machine": "m", "date": "d", "seeds": [0], "preset": "cpu"}
  verdicts = []
  for i, summary in enumerate((fresh, reread)):
    paths, _ = table1.write_table(reproduce.get_suite("cars"), {"unsup3d": [summary]}, config, str(tmp_path / str(i)))
    verdicts.append(json.load(open(paths["json"], encoding="utf-8"))["derendering"])
  assert verdicts[0] == verdicts[1] and "Unsup3D does not de-render: light -" in verdicts[0][0]


def test_a_derenderer_resumed_from_checkpoints_is_flagged_and_warned_about(tiny_cars, tmp_path, monkeypatch, caplog):
  out = tmp_path / "runs"
  saved = out / "cars" / "unsup3d" / "seed0" / "checkpoints"  # left by an earlier, unrecorded run
  saved.mkdir(parents=True)
  (saved / "ckpt-5.index").write_bytes(b"")
  (saved / "checkpoint").write_text('model_checkpoint_path: "ckpt-5"\n')
  (out / "cars" / "unsup3d" / "seed1" / "checkpoints").mkdir(parents=True)  # a run killed before its first save

  def fake_derenderer(suite, method, seed, workdir, ctx):
    return {"accuracy": 0.5, "f1": 0.4, "clustering": {}, "n_samples": 10}

  monkeypatch.setattr(reproduce, "_run_derenderer", fake_derenderer)
  with caplog.at_level("WARNING", logger="pdr_tf.reproduce"):
    result = reproduce.run_suite(
      "cars",
      seeds=[0, 1],
      output_dir=str(out),
      methods=["unsup3d"],
      train_data_dir=tiny_cars,
      eval_data_dir=tiny_cars,
      progress=False,
    )
  assert [r["resumed"] for r in result["per_seed"]["unsup3d"]] == [True, False]
  warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
  assert len(warned) == 1 and "seed0" in warned[0] and "does not record as finished" in warned[0]


def test_one_command_per_suite_folder_and_arguments_checked_first(tiny_cars, tmp_path, caplog):
  out = str(tmp_path / "runs")
  os.makedirs(os.path.join(out, "cars"))
  kwargs = dict(output_dir=out, methods=["pixels_pca"], train_data_dir=tiny_cars, eval_data_dir=tiny_cars)
  with reproduce.locks.FolderLock(reproduce.lock_path(out, "cars"), "another reproduce command"):
    with pytest.raises(reproduce.locks.LockHeldError, match=r"cars is in use by pid .*another reproduce command"):
      reproduce.run_suite("cars", seeds=[0], progress=False, **kwargs)
  for bad, message in [
    (dict(seeds=[-1]), "non-negative integers, got \\[-1\\]"),
    (dict(seeds=[0], vqvae_steps=0), "vqvae_steps must be a positive integer, got 0"),
    (dict(seeds=[0], pca_components=-2), "pca_components must be a positive integer, got -2"),
  ]:
    with pytest.raises(ValueError, match=message):
      reproduce.run_suite("cars", progress=False, **kwargs, **bad)
  assert os.listdir(os.path.join(out, "cars")) == []  # nothing written, the lock released
  for flags in (["--first_seed", "-1"], ["--vqvae_steps", "0"], ["--pca_components", "0"]):
    assert reproduce.main(["--suite", "cars", "--output_dir", out] + flags) == 2
  assert "--first_seed -1" in caplog.text and "--vqvae_steps 0" in caplog.text and "--pca_components 0" in caplog.text


def test_the_per_seed_table_reads_side_recorded_in_the_older_dict_form(tmp_path):
  older = dict(_summary(0, 0.5, (0.5, 1.0, 0.9, 0.8), 0.3), side={"model": 0.0123, "trivial": 0.02}, seconds=876.2)
  config = {"command": "x", "machine": "m", "date": "d", "seeds": [0], "preset": "cpu"}
  paths, _ = table1.write_table(reproduce.get_suite("cars"), {"unsup3d": [older]}, config, str(tmp_path))
  markdown = open(paths["markdown"], encoding="utf-8").read()
  assert "| 0.0123 |" in markdown and "'trivial'" not in markdown and "| 876 |" in markdown


def test_entry_points_turn_known_errors_into_exit_codes_and_log_them(caplog):
  log = logging.getLogger("pdr_tf.test_entry")

  def raising(error):
    raise error

  assert reproduce.run_reporting_errors(log, lambda x: x + 1, 1) == (0, 2)
  with caplog.at_level("ERROR", logger="pdr_tf.test_entry"):
    assert reproduce.run_reporting_errors(log, raising, reproduce.gin_config.GinConfigError("bad binding")) == (2, None)
    assert reproduce.run_reporting_errors(log, raising, FileNotFoundError("no data")) == (1, None)
    assert reproduce.run_reporting_errors(log, raising, ValueError("other settings")) == (1, None)
    for error in (
      reproduce.input_pipeline.CorruptDataError("corrupt shard"),
      reproduce.locks.LockHeldError("run going"),
      reproduce.kernel_build.KernelBuildError("no compiler"),
      NotADirectoryError("a file"),
      FileExistsError("user file"),
      PermissionError("unwritable output"),
      reproduce.datasets.ConversionError("conversion failed"),
    ):
      assert reproduce.run_reporting_errors(log, raising, error) == (1, None)
  assert [r.getMessage() for r in caplog.records] == [
    "bad binding",
    "no data",
    "other settings",
    "corrupt shard",
    "run going",
    "no compiler",
    "a file",
    "user file",
    "unwritable output",
    "conversion failed",
  ]
  with pytest.raises(KeyError):  # anything else is a bug: it is not swallowed
    reproduce.run_reporting_errors(log, raising, KeyError("x"))
