"""Tests of pdr_tf.ablation and its report: the variants, their gin bindings, the paired comparison, the files."""

import json
import os

import numpy as np
import pytest

from pdr_tf import ablation
from pdr_tf import gin_config
from pdr_tf import reproduce
from pdr_tf.data import locks
from pdr_tf.evaluation import ablation_report
from pdr_tf.model import loocc
from pdr_tf.model import objective
from pdr_tf.training import trainer as trainer_lib
from pdr_tf.training import workdir as workdir_lib
from fixtures import write_tiny_dataset  # pylint: disable=wrong-import-order  (tests/ is on sys.path)

CAR_CLASSES = ("police car", "ambulance", "limousine", "jeep", "Ferrari")


@pytest.fixture(scope="module")
def tiny_cars(tmp_path_factory):
  return write_tiny_dataset(
    tmp_path_factory.mktemp("cars") / "tfrecords", num_train=8, num_test=10, classes=CAR_CLASSES
  )


def test_variants_bring_their_reference_and_unknown_names_are_refused():
  names = [v.name for v in ablation.get_variants(["half_length", "plain_ntxent"])]
  # VARIANTS order; each brings the Unsup3D and the released LOOCC of its length
  assert names == ["unsup3d", "released", "plain_ntxent", "unsup3d_half_length", "half_length"]
  variants = {v.name: v for v in ablation.VARIANTS}
  assert ablation.reference_of(variants["weight_x10"]).name == "unsup3d"
  assert ablation.released_of(variants["weight_x10"]).name == "released"
  assert ablation.reference_of(variants["half_length"]).name == "unsup3d_half_length"
  assert ablation.released_of(variants["half_length"]) is None and ablation.reference_of(variants["unsup3d"]) is None
  assert len(set(ablation.VARIANT_NAMES)) == len(ablation.VARIANTS)
  with pytest.raises(ValueError, match="unknown variant.*'nope'"):
    ablation.get_variants(["released", "nope"])
  with pytest.raises(ValueError, match="none given"):
    ablation.get_variants([])
  assert all(v.name in ablation.__doc__ for v in ablation.VARIANTS)  # --help lists them


@pytest.mark.parametrize("suite", ["cars", "faces"])
def test_every_variants_bindings_parse_on_the_suites_gin_stack(suite):
  for variant in ablation.VARIANTS:
    method = ablation.REFERENCE if variant.unsup3d else ablation.LOOCC_METHOD[suite]
    files = reproduce._gin_files(reproduce.get_suite(suite), method, reproduce.get_preset("cpu"), [])
    gin_config.parse(files, list(variant.gin_params))  # an unknown or misspelt binding raises
    config = loocc.LooccConfig()  # a bad value raises here
    assert config.mode == ("none" if variant.unsup3d else ablation.LOOCC_METHOD[suite].replace("loocc_", ""))
    objective.Objective(loocc_config=config)


def test_paired_deltas_match_seeds_and_skip_the_unpaired():
  runs = [{"seed": 0, "accuracy": 0.6}, {"seed": 1, "accuracy": 0.5}, {"seed": 2, "accuracy": 0.4}]
  reference = [{"seed": 1, "accuracy": 0.55}, {"seed": 0, "accuracy": 0.5}]
  assert ablation_report.paired_deltas(runs, reference) == pytest.approx([0.1, -0.05])


def _summary(seed, accuracy, ratios=(0.5, 0.8, 0.7, 0.6), pcc=0.2):
  return {
    "seed": seed,
    "accuracy": accuracy,
    "f1": accuracy,
    "mean_pcc": pcc,
    "derender_ratios": dict(zip(("view", "light", "normals", "depth"), ratios)),
  }


def test_rows_report_paired_deltas_ratios_verdict_and_failures(tmp_path):
  variants = [
    {"name": "unsup3d", "what": "off", "steps": 1200, "reference": None, "released": None},
    {"name": "released", "what": "on", "steps": 1200, "reference": "unsup3d", "released": None},
    {"name": "weight_x10", "what": "λ 0.1", "steps": 1200, "reference": "unsup3d", "released": "released"},
    {"name": "never_ran", "what": "x", "steps": 1200, "reference": "unsup3d", "released": "released"},
    {"name": "diverged", "what": "y", "steps": 1200, "reference": "unsup3d", "released": "released"},
  ]
  per_seed = {
    "unsup3d": [_summary(0, 0.5), _summary(1, 0.6)],
    "released": [_summary(0, 0.55, ratios=(0.5, 1.2, 0.7, 0.6), pcc=0.1), _summary(1, 0.62, pcc=0.1)],
    "weight_x10": [_summary(1, 0.72)],
  }
  rows = ablation_report.variant_rows(variants, per_seed, failed={"diverged": "non-finite loss at step 7"})
  assert [r["variant"] for r in rows] == ["unsup3d", "released", "weight_x10", "diverged"]
  reference, released, weight, diverged = rows
  assert reference["delta"] is None and reference["de_renders"] and reference["pairs"] == 0
  assert released["delta_per_seed"] == pytest.approx([0.05, 0.02]) and released["delta_released"] is None
  assert released["delta"][0] == pytest.approx(0.035)
  assert released["derender_ratios"]["light"] == pytest.approx(1.0) and not released["de_renders"]
  assert weight["delta_per_seed"] == pytest.approx([0.12]) and weight["delta_released_per_seed"] == pytest.approx([0.1])
  assert weight["runs"] == 1 and weight["pairs"] == 1
  assert diverged["failed"] == "non-finite loss at step 7" and diverged["runs"] == 0
  features = ablation_report.feature_rows({"unsup3d": {"depth_albedo": [0.5, 0.6], "all": [0.4, 0.4]}})
  paths = ablation_report.write_report(rows, features, {"suite": "cars", "seeds": [0, 1], "command": "c"}, tmp_path)
  markdown = open(paths["markdown"], encoding="utf-8").read()
  expected = (
    "| released | on | 1,200 | 0.585 ± 0.049 | 0.585 ± 0.049 | +0.035 ± 0.021 | - | 0.50 / 1.00 / 0.70 / 0.60 (no) |"
  )
  assert expected in markdown
  assert "| weight_x10 | λ 0.1 | 1,200 | 0.720 | 0.720 | +0.120 | +0.100 |" in markdown
  assert "| diverged | y **failed: non-finite loss at step 7** | 1,200 | - |" in markdown
  assert "| unsup3d | all | 0.400 ± 0.000 | 2 |" in markdown
  mine = tmp_path / "mine"
  mine.mkdir()
  (mine / "ablation.json").write_text("{}")
  with pytest.raises(FileExistsError, match="ablation.json"):  # a file of the user's: nothing written
    ablation_report.write_report(rows, features, {"suite": "cars", "seeds": [0, 1], "command": "c"}, mine)
  assert sorted(os.listdir(mine)) == ["ablation.json"]
  data = json.load(open(paths["json"], encoding="utf-8"))
  assert data["rows"][1]["delta_per_seed"] == pytest.approx([0.05, 0.02]) and data["config"]["suite"] == "cars"


def test_cluster_feature_sets_scores_every_set():
  rng = np.random.RandomState(0)
  labels = np.repeat(["a", "b"], 10)
  separated = (labels == "a")[:, None] * 10.0 + rng.normal(size=(20, 3))
  features = {"depth": separated, "albedo": rng.normal(size=(20, 3)), "light": rng.normal(size=(20, 2))}
  features["view"] = rng.normal(size=(20, 2))
  accuracy = ablation.cluster_feature_sets(features, labels)
  assert set(accuracy) == set(ablation.FEATURE_SETS)
  assert accuracy["depth"] == 1.0 and accuracy["albedo"] < 1.0


def _fake_derenderer(trained, diverging=None):
  def run(suite, method, seed, workdir, ctx):
    trained.append((method, ctx["train_steps"], workdir))
    if diverging and diverging in ctx["gin_params"]:
      raise trainer_lib.NonFiniteLossError("non-finite loss at step 3; last good checkpoint: none")
    accuracy = 0.5 + 0.1 * ("LooccConfig.weight = 0.1" in ctx["gin_params"]) + 0.01 * seed
    return {"accuracy": accuracy, "f1": accuracy, "clustering": {}, "n_samples": 10}

  return run


def test_run_ablation_trains_each_variant_in_its_own_folder_and_resumes(tiny_cars, tmp_path, monkeypatch):
  trained = []
  monkeypatch.setattr(reproduce, "_run_derenderer", _fake_derenderer(trained))
  kwargs = dict(
    seeds=[0, 1],
    output_dir=str(tmp_path / "runs"),
    preset="quick",
    variants=["weight_x10", "half_length"],
    train_steps=10,
    train_data_dir=tiny_cars,
    eval_data_dir=tiny_cars,
    feature_sets=False,
    progress=False,
  )
  out = ablation.run_ablation("cars", **kwargs)
  assert [(m, steps) for m, steps, _ in trained] == [
    (m, steps)
    for m, steps in [("unsup3d", 10), ("loocc_light_view", 10), ("loocc_light_view", 10), ("unsup3d", 5)]
    + [("loocc_light_view", 5)]
    for _ in (0, 1)
  ]
  suite_dir = os.path.join(str(tmp_path), "runs", "cars")
  assert trained[4][2] == ablation.variant_workdir(suite_dir, "cars", "weight_x10", "loocc_light_view", 0)
  rows = {r["variant"]: r for r in out["rows"]}
  assert rows["weight_x10"]["delta_per_seed"] == pytest.approx([0.1, 0.1])
  assert rows["weight_x10"]["delta_released_per_seed"] == pytest.approx([0.1, 0.1])
  assert rows["half_length"]["delta_per_seed"] == pytest.approx([0.0, 0.0]) and rows["half_length"]["steps"] == 5
  assert os.path.isfile(os.path.join(suite_dir, "ablation.md"))
  trained.clear()
  again = ablation.run_ablation("cars", **kwargs)  # every run is recorded: nothing trains again
  assert trained == [] and again["rows"] == out["rows"]
  assert not os.path.exists(os.path.join(suite_dir, ablation.LOCK_FILENAME))  # released at the end
  # One command per ablation folder: a second one while the first runs stops at once, naming it.
  with locks.FolderLock(os.path.join(suite_dir, ablation.LOCK_FILENAME), "the first ablation"):
    with pytest.raises(locks.LockHeldError, match=r"\(the first ablation\)"):
      ablation.run_ablation("cars", **kwargs)
  assert trained == []


def test_a_later_command_keeps_the_earlier_variants_in_the_report_and_leaves_out_other_settings(
  tiny_cars, tmp_path, monkeypatch
):
  trained = []
  monkeypatch.setattr(reproduce, "_run_derenderer", _fake_derenderer(trained))
  common = dict(
    output_dir=str(tmp_path / "runs"),
    preset="quick",
    train_steps=4,
    train_data_dir=tiny_cars,
    eval_data_dir=tiny_cars,
    feature_sets=False,
    progress=False,
  )
  ablation.run_ablation("cars", seeds=[0], variants=["weight_x10"], **common)
  ablation.run_ablation("cars", seeds=[0], variants=["half_length"], **common)  # a narrower, other command
  trained.clear()
  later = ablation.run_ablation("cars", seeds=[1], variants=["plain_ntxent"], **common)
  assert sorted(m for m, _, _ in trained) == ["loocc_light_view", "loocc_light_view", "unsup3d"]  # seed 1 only
  rows = {r["variant"]: r for r in later["rows"]}
  assert list(rows) == ["unsup3d", "released", "weight_x10", "plain_ntxent", "unsup3d_half_length", "half_length"]
  assert rows["unsup3d"]["runs"] == 2 and rows["weight_x10"]["runs"] == 1 and rows["plain_ntxent"]["runs"] == 1
  assert rows["weight_x10"]["delta_per_seed"] == pytest.approx([0.1])  # paired with the earlier seed-0 reference
  markdown = open(later["paths"]["markdown"], encoding="utf-8").read()
  assert "this command did not run them): weight_x10, unsup3d_half_length, half_length." in markdown
  # A variant folder trained with other settings (here: another length) is named and left out, never mixed in.
  other = dict(common, output_dir=str(tmp_path / "other"))
  ablation.run_ablation("cars", seeds=[0], variants=["weight_x10"], **other)
  longer = ablation.run_ablation("cars", seeds=[0], variants=["half_length"], **dict(other, train_steps=8))
  assert [r["variant"] for r in longer["rows"]] == ["unsup3d_half_length", "half_length"]
  left_out = json.load(open(longer["paths"]["json"], encoding="utf-8"))["config"]["left_out"]
  assert sorted(left_out) == ["released", "unsup3d", "weight_x10"] and "train_steps" in left_out["weight_x10"]
  markdown = open(longer["paths"]["markdown"], encoding="utf-8").read()
  assert "Left out: the runs of weight_x10, trained with other settings" in markdown


def test_a_diverging_variant_is_reported_and_the_others_still_run(tiny_cars, tmp_path, monkeypatch):
  trained = []
  monkeypatch.setattr(reproduce, "_run_derenderer", _fake_derenderer(trained, diverging="LooccConfig.weight = 0.1"))
  out = ablation.run_ablation(
    "cars",
    seeds=[0],
    output_dir=str(tmp_path / "runs"),
    preset="quick",
    variants=["weight_x10", "plain_ntxent"],
    train_steps=4,
    train_data_dir=tiny_cars,
    eval_data_dir=tiny_cars,
    feature_sets=False,
    progress=False,
  )
  assert out["failed"] == {"weight_x10": "non-finite loss at step 3; last good checkpoint: none"}
  assert [r["variant"] for r in out["rows"]] == ["unsup3d", "released", "weight_x10", "plain_ntxent"]
  assert out["per_seed"]["plain_ntxent"][0]["accuracy"] == 0.5
  assert "**failed: non-finite loss at step 3" in open(out["paths"]["markdown"], encoding="utf-8").read()
  # A later, narrower command into the same folder still reports the failure; a run that then finishes clears it.
  common = dict(preset="quick", train_steps=4, train_data_dir=tiny_cars, eval_data_dir=tiny_cars, progress=False)
  later = ablation.run_ablation(
    "cars", seeds=[0], output_dir=str(tmp_path / "runs"), variants=["plain_ntxent"], feature_sets=False, **common
  )
  assert later["failed"] == out["failed"] and "weight_x10" in [r["variant"] for r in later["rows"]]
  monkeypatch.setattr(reproduce, "_run_derenderer", _fake_derenderer(trained))
  again = ablation.run_ablation(
    "cars", seeds=[0], output_dir=str(tmp_path / "runs"), variants=["weight_x10"], feature_sets=False, **common
  )
  assert again["failed"] == {} and again["per_seed"]["weight_x10"][0]["accuracy"] == 0.6


def test_reuse_dir_hands_a_reproductions_finished_runs_to_the_reference_and_released_variants(
  tiny_cars, tmp_path, monkeypatch
):
  def fake_derenderer(suite, method, seed, workdir, ctx):
    marker = os.path.join(workdir, "made_by")
    if not os.path.exists(marker):  # a fresh run; a taken-over one keeps its marker
      os.makedirs(workdir_lib.export(workdir), exist_ok=True)
      with open(marker, "w", encoding="utf-8") as f:
        f.write(workdir)
    return {"accuracy": 0.5, "f1": 0.5, "clustering": {}, "n_samples": 10}

  monkeypatch.setattr(reproduce, "_run_derenderer", fake_derenderer)
  common = dict(preset="quick", train_steps=6, train_data_dir=tiny_cars, eval_data_dir=tiny_cars, progress=False)
  reproduction = str(tmp_path / "repro")
  reproduce.run_suite("cars", seeds=[0], output_dir=reproduction, methods=["unsup3d", "loocc_light_view"], **common)
  source = os.path.join(reproduction, "cars", "unsup3d", "seed0")
  runs = str(tmp_path / "runs")
  # A copy that an earlier command left half done is made anew, not resumed from; a folder of the user's beside it,
  # whatever its name, stays.
  parent, name = os.path.split(ablation.variant_workdir(os.path.join(runs, "cars"), "cars", "unsup3d", "unsup3d", 0))
  stale = os.path.join(parent, f".{name}.pdr_tf-copy-0123abcd")
  users = os.path.join(parent, f"{name}.partial")
  for folder in (stale, users):
    os.makedirs(folder)
    open(os.path.join(folder, "made_by"), "w", encoding="utf-8").write("half a copy")
  ablation.run_ablation(
    "cars", seeds=[0, 1], output_dir=runs, variants=["weight_x10"], feature_sets=False, reuse_dir=reproduction, **common
  )
  suite_dir = os.path.join(runs, "cars")

  def made_by(variant, method, seed):
    with open(os.path.join(ablation.variant_workdir(suite_dir, "cars", variant, method, seed), "made_by")) as f:
      return f.read()

  assert made_by("unsup3d", "unsup3d", 0) == source  # copied, then only evaluated
  assert not os.path.exists(stale) and os.listdir(users) == ["made_by"]
  assert made_by("released", "loocc_light_view", 0) == os.path.join(reproduction, "cars", "loocc_light_view", "seed0")
  assert made_by("unsup3d", "unsup3d", 1).startswith(suite_dir)  # a seed the reproduction lacks trains
  assert made_by("weight_x10", "loocc_light_view", 0).startswith(suite_dir)  # a variant with bindings always trains
  assert sorted(os.listdir(source)) == ["export", "made_by"]  # the reproduction's folder is left as it was
  with pytest.raises(ValueError, match=r"train_steps"):  # another length: refused, nothing taken over
    ablation.run_ablation(
      "cars",
      seeds=[0],
      output_dir=str(tmp_path / "other"),
      variants=["weight_x10"],
      feature_sets=False,
      reuse_dir=reproduction,
      **dict(common, train_steps=7),
    )
  # A reproduction of the folder's own length, but the variant folder holds runs of another length: the folder's
  # settings refuse it before anything is copied in (a copy there would have been resumed as a run of that length).
  reproduction_7 = str(tmp_path / "repro7")
  reproduce.run_suite("cars", seeds=[2], output_dir=reproduction_7, methods=["unsup3d"], **dict(common, train_steps=7))
  mixed = str(tmp_path / "mixed")
  ablation.run_ablation("cars", seeds=[3], output_dir=mixed, variants=["unsup3d"], feature_sets=False, **common)
  with pytest.raises(ValueError, match=r"train_steps"):
    ablation.run_ablation(
      "cars",
      seeds=[2],
      output_dir=mixed,
      variants=["unsup3d"],
      feature_sets=False,
      reuse_dir=reproduction_7,
      **dict(common, train_steps=7),
    )
  assert not os.path.exists(ablation.variant_workdir(os.path.join(mixed, "cars"), "cars", "unsup3d", "unsup3d", 2))
  with pytest.raises(ValueError, match=r"no readable reproduce progress file"):
    ablation.run_ablation("cars", seeds=[0], output_dir=runs, feature_sets=False, reuse_dir=runs, **common)


@pytest.mark.parametrize(
  "argv, message",
  [
    (["--suite", "boats"], "boats"),
    (["--suite", "cars", "--variants", "nope"], "nope"),
    (["--suite", "cars", "--preset", "gpu"], "gpu"),
    (["--suite", "cars", "--seeds", "0"], "must be positive"),
    (["--suite", "cars", "--train_steps", "0"], "must be positive"),
    (["--suite", "cars", "--first_seed", "-1"], "--first_seed non-negative"),
  ],
)
def test_main_refuses_bad_arguments_before_writing_anything(argv, message, tmp_path, caplog, monkeypatch):
  def must_not_run(*args, **kwargs):
    raise AssertionError("a refused command started the ablation")

  monkeypatch.setattr(ablation, "run_ablation", must_not_run)
  assert ablation.main(argv + ["--output_dir", str(tmp_path / "out"), "--no_progress"]) == 2
  assert message in caplog.text
  assert not os.listdir(tmp_path)


def test_a_users_file_named_like_the_report_stops_the_ablation_before_any_run(tmp_path, monkeypatch):
  def must_not_run(*args, **kwargs):
    raise AssertionError("a run started although the report could not be written")

  monkeypatch.setattr(ablation.reproduce, "run_suite", must_not_run)
  (tmp_path / "cars").mkdir()
  (tmp_path / "cars" / "ablation.md").write_text("my notes")
  with pytest.raises(FileExistsError, match="ablation.md"):
    ablation.run_ablation("cars", seeds=[0], output_dir=str(tmp_path), feature_sets=False, progress=False)
  assert (tmp_path / "cars" / "ablation.md").read_text() == "my notes"
  with pytest.raises(ValueError, match="non-negative integers, got \\[-1\\]"):
    ablation.run_ablation("cars", seeds=[-1], output_dir=str(tmp_path / "o"), feature_sets=False, progress=False)


def test_main_passes_its_flags_to_the_ablation_and_prints_the_report(tmp_path, monkeypatch, capsys):
  report = tmp_path / "ablation.md"
  report.write_text("| variant | accuracy |\n")
  calls = []

  def fake_run_ablation(suite, **kwargs):
    calls.append(dict(kwargs, suite=suite))
    return {"paths": {"markdown": str(report), "json": str(tmp_path / "ablation.json")}, "failed": {}}

  monkeypatch.setattr(ablation, "run_ablation", fake_run_ablation)
  argv = ["--suite", "faces", "--seeds", "2", "--first_seed", "3", "--preset", "quick"]
  argv += ["--variants", "weight_x10, plain_ntxent,"]
  argv += ["--output_dir", str(tmp_path / "out"), "--gin_file", "a.gin", "--gin_param", "LooccConfig.weight=0.1"]
  argv += ["--train_steps", "7", "--reuse_dir", "runs/reproduce", "--no_feature_sets", "--no_progress"]
  assert ablation.main(argv) == 0
  (call,) = calls
  assert call["suite"] == "faces" and list(call["seeds"]) == [3, 4] and call["preset"] == "quick"
  assert call["variants"] == ["weight_x10", "plain_ntxent"]
  assert call["output_dir"] == str(tmp_path / "out") and call["reuse_dir"] == "runs/reproduce"
  assert call["gin_files"] == ["a.gin"] and call["gin_params"] == ["LooccConfig.weight=0.1"]
  assert call["train_steps"] == 7 and call["feature_sets"] is False and call["progress"] is False
  assert call["command"].startswith("python -m pdr_tf.ablation --suite faces")
  assert "| variant | accuracy |" in capsys.readouterr().out


@pytest.mark.parametrize("suite", ["cars", "faces"])
def test_the_reference_and_released_models_are_clustered_on_every_feature_set(suite, tiny_cars, tmp_path, monkeypatch):
  def fake_derenderer(suite, method, seed, workdir, ctx):
    return {"accuracy": 0.5, "f1": 0.5, "clustering": {}, "n_samples": 10}

  embedded, clustered = [], []

  def fake_embed(loaded, data_dir, split, **kwargs):
    embedded.append((loaded, split, kwargs["derender_metrics_on"]))
    rng = np.random.RandomState(len(embedded))
    features = {name: rng.normal(size=(10, 3)) for name in ("depth", "albedo", "light", "view")}
    tracks = np.array([f"t{i // 2}" for i in range(10)])  # five tracks of two frames, one class each
    return features, np.repeat(np.array(CAR_CLASSES), 2), tracks, 10, None

  def fake_cluster(features, labels, group_ids=None, seed=0):
    clustered.append(group_ids)
    return {name: 0.5 for name in ablation.FEATURE_SETS}

  monkeypatch.setattr(reproduce, "_run_derenderer", fake_derenderer)
  monkeypatch.setattr(ablation.export, "load_export", lambda path, signatures: (path, path))
  monkeypatch.setattr(ablation.export, "resolve_saved_model_dir", lambda path: path)
  monkeypatch.setattr(ablation.evaluate_lib, "embed_dataset", fake_embed)
  if suite == "faces":
    monkeypatch.setattr(ablation, "cluster_feature_sets", fake_cluster)
  kwargs = dict(
    seeds=[0],
    output_dir=str(tmp_path / "runs"),
    preset="quick",
    variants=["released"],
    train_steps=4,
    train_data_dir=tiny_cars,
    eval_data_dir=tiny_cars,
    progress=False,
  )
  if suite == "faces":  # BBT-like evaluation data: every labelled record has a track id (checked before any run)
    tracks_dir = tmp_path / "tracks" / "tfrecords"
    kwargs["eval_data_dir"] = write_tiny_dataset(tracks_dir, num_train=4, num_test=10, classes=CAR_CLASSES, tracks=True)
  out = ablation.run_ablation(suite, **kwargs)
  suite_dir = os.path.join(str(tmp_path), "runs", suite)
  method = ablation.LOOCC_METHOD[suite]
  assert embedded == [
    (workdir_lib.export(ablation.variant_workdir(suite_dir, suite, name, m, 0)), "test", False)
    for name, m in (("unsup3d", "unsup3d"), ("released", method))
  ]
  if suite == "faces":  # BBT: features averaged per track
    assert [list(g) for g in clustered] == [[f"t{i // 2}" for i in range(10)]] * 2
  assert {(r["variant"], r["feature_set"]) for r in out["feature_rows"]} == {
    (v, f) for v in ("unsup3d", "released") for f in ablation.FEATURE_SETS
  }
  assert "## Feature sets" in open(out["paths"]["markdown"], encoding="utf-8").read()
  again = ablation.run_ablation(suite, **kwargs)  # cached in each run's eval/: no second embedding
  assert len(embedded) == 2 and again["feature_rows"] == out["feature_rows"]
  # Another SavedModel (a newer export version) is embedded again; the cache is pdr_tf's own file, replaced.
  monkeypatch.setattr(ablation.export, "resolve_saved_model_dir", lambda path: os.path.join(path, "2"))
  ablation.run_ablation(suite, **kwargs)
  assert len(embedded) == 4
  reference = ablation.variant_workdir(suite_dir, suite, "unsup3d", "unsup3d", 0)
  cache = json.load(open(os.path.join(workdir_lib.eval_dir(reference), ablation.FEATURE_SETS_FILE), encoding="utf-8"))
  assert cache["saved_model_dir"] == os.path.join(workdir_lib.export(reference), "2")


def test_the_length_before_a_variants_factor_is_the_presets_unless_given():
  suite = reproduce.get_suite("cars")
  assert ablation._preset_steps(suite, "cpu", [], [], None) == 4000  # gin/cpu.gin
  assert ablation._preset_steps(suite, "quick", [], [], None) == reproduce.QUICK_TRAIN_STEPS
  assert ablation._preset_steps(suite, "cpu", [], ["Trainer.train_steps = 30"], None) == 30
  assert ablation._preset_steps(suite, "cpu", [], [], 7) == 7
