"""Tests of pdr_tf.ablation and its report: the variants, their gin bindings, the paired comparison, the files."""

import json
import os

import numpy as np
import pytest

from pdr_tf import ablation
from pdr_tf import gin_config
from pdr_tf import reproduce
from pdr_tf.evaluation import ablation_report
from fixtures import write_tiny_dataset  # pylint: disable=wrong-import-order  (tests/ is on sys.path)

CAR_CLASSES = ("police car", "ambulance", "limousine", "jeep", "Ferrari")


@pytest.fixture(scope="module")
def tiny_cars(tmp_path_factory):
  return write_tiny_dataset(
    tmp_path_factory.mktemp("cars") / "tfrecords", num_train=8, num_test=10, classes=CAR_CLASSES
  )


def test_variants_bring_their_reference_and_unknown_names_are_refused():
  names = [v.name for v in ablation.get_variants(["half_length", "plain_ntxent"])]
  assert names == ["unsup3d", "plain_ntxent", "unsup3d_half_length", "half_length"]  # VARIANTS order, references in
  assert ablation.reference_of(ablation.VARIANTS[2]).name == "unsup3d"
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


def test_rows_report_the_paired_delta_ratios_and_verdict(tmp_path):
  variants = [
    {"name": "unsup3d", "what": "off", "reference": None},
    {"name": "released", "what": "on", "reference": "unsup3d"},
    {"name": "never_ran", "what": "x", "reference": "unsup3d"},
  ]
  per_seed = {
    "unsup3d": [_summary(0, 0.5), _summary(1, 0.6)],
    "released": [_summary(0, 0.55, ratios=(0.5, 1.2, 0.7, 0.6), pcc=0.1), _summary(1, 0.62, pcc=0.1)],
  }
  rows = ablation_report.variant_rows(variants, per_seed)
  assert [r["variant"] for r in rows] == ["unsup3d", "released"]
  reference, released = rows
  assert reference["delta"] is None and reference["de_renders"]
  assert released["delta_per_seed"] == pytest.approx([0.05, 0.02])
  assert released["delta"][0] == pytest.approx(0.035)
  assert released["derender_ratios"]["light"] == pytest.approx(1.0) and not released["de_renders"]
  features = ablation_report.feature_rows({"unsup3d": {"depth_albedo": [0.5, 0.6], "all": [0.4, 0.4]}})
  paths = ablation_report.write_report(rows, features, {"suite": "cars", "seeds": [0, 1], "command": "c"}, tmp_path)
  markdown = open(paths["markdown"], encoding="utf-8").read()
  assert "| released | on | 0.585 ± 0.049 | +0.035 ± 0.021 | 0.50 / 1.00 / 0.70 / 0.60 (no) |" in markdown
  assert "| unsup3d | all | 0.400 ± 0.000 | 2 |" in markdown
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


def test_run_ablation_trains_each_variant_in_its_own_folder_and_resumes(tiny_cars, tmp_path, monkeypatch):
  trained = []

  def fake_derenderer(suite, method, seed, workdir, ctx):
    trained.append((method, ctx["gin_params"], ctx["train_steps"], workdir))
    accuracy = 0.5 + 0.1 * ("LooccConfig.weight = 0.1" in ctx["gin_params"]) + 0.01 * seed
    return {"accuracy": accuracy, "f1": accuracy, "clustering": {}, "n_samples": 10}

  monkeypatch.setattr(reproduce, "_run_derenderer", fake_derenderer)
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
  assert [(m, steps) for m, _, steps, _ in trained] == [
    ("unsup3d", 10),
    ("unsup3d", 10),
    ("loocc_light_view", 10),
    ("loocc_light_view", 10),
    ("unsup3d", 5),
    ("unsup3d", 5),
    ("loocc_light_view", 5),
    ("loocc_light_view", 5),
  ]
  assert all(os.sep + os.path.join("cars", "weight_x10", "cars") in w for m, p, _, w in trained[2:4])
  rows = {r["variant"]: r for r in out["rows"]}
  assert rows["weight_x10"]["delta_per_seed"] == pytest.approx([0.1, 0.1])
  assert rows["half_length"]["delta_per_seed"] == pytest.approx([0.0, 0.0])
  assert os.path.isfile(os.path.join(tmp_path, "runs", "cars", "ablation.md"))
  trained.clear()
  again = ablation.run_ablation("cars", **kwargs)  # every run is recorded: nothing trains again
  assert trained == [] and again["rows"] == out["rows"]


def test_main_refuses_bad_arguments(capsys):
  assert ablation.main(["--suite", "boats"]) == 2
  assert ablation.main(["--suite", "cars", "--variants", "nope"]) == 2
  assert ablation.main(["--suite", "cars", "--preset", "gpu"]) == 2
  assert ablation.main(["--suite", "cars", "--seeds", "0"]) == 2


def test_the_reference_and_released_models_are_clustered_on_every_feature_set(tiny_cars, tmp_path, monkeypatch):
  def fake_derenderer(suite, method, seed, workdir, ctx):
    return {"accuracy": 0.5, "f1": 0.5, "clustering": {}, "n_samples": 10}

  embedded = []

  def fake_embed(loaded, data_dir, split, **kwargs):
    embedded.append((loaded, data_dir, split, kwargs["derender_metrics_on"]))
    rng = np.random.RandomState(len(embedded))
    features = {name: rng.normal(size=(10, 3)) for name in ("depth", "albedo", "light", "view")}
    return features, np.repeat(np.array(CAR_CLASSES), 2), np.array([""] * 10), 10, None

  monkeypatch.setattr(reproduce, "_run_derenderer", fake_derenderer)
  monkeypatch.setattr(ablation.export, "load_export", lambda path, signatures: (path, path))
  monkeypatch.setattr(ablation.evaluate_lib, "embed_dataset", fake_embed)
  out = ablation.run_ablation(
    "cars",
    seeds=[0],
    output_dir=str(tmp_path / "runs"),
    preset="quick",
    variants=["released"],
    train_steps=4,
    train_data_dir=tiny_cars,
    eval_data_dir=tiny_cars,
    progress=False,
  )
  assert [(os.path.basename(os.path.dirname(os.path.dirname(path))), split, on) for path, _, split, on in embedded] == [
    ("unsup3d", "test", False),
    ("loocc_light_view", "test", False),
  ]
  assert {(r["variant"], r["feature_set"]) for r in out["feature_rows"]} == {
    (v, f) for v in ("unsup3d", "released") for f in ablation.FEATURE_SETS
  }
  assert "## Feature sets" in open(out["paths"]["markdown"], encoding="utf-8").read()


def test_the_length_before_a_variants_factor_is_the_presets_unless_given():
  suite = reproduce.get_suite("cars")
  assert ablation._preset_steps(suite, "cpu", [], [], None) == 4000  # gin/cpu.gin
  assert ablation._preset_steps(suite, "quick", [], [], None) == reproduce.QUICK_TRAIN_STEPS
  assert ablation._preset_steps(suite, "cpu", [], ["Trainer.train_steps = 30"], None) == 30
  assert ablation._preset_steps(suite, "cpu", [], [], 7) == 7
