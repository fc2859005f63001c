"""Tests of pdr_tf.evaluate: end to end on tiny TFRecords with a stand-in export, bad inputs, the eval gin files."""

import json
import os

import gin
import numpy as np
import pytest
import tensorflow as tf

from pdr_tf import evaluate as ev
from pdr_tf import export
from pdr_tf.data import feature_spec
from pdr_tf.evaluation import derender_eval
from pdr_tf.evaluation import table1
from pdr_tf import gin_config
from test_export import StandInModel, encode_png  # pylint: disable=wrong-import-order  (tests/ is on sys.path)

SIZE = 64
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLASS_RG = ((200, 40), (40, 200), (120, 120))  # red/green of each class; blue carries the depth pattern
TRACKS_PER_CLASS, FRAMES_PER_TRACK = 3, 2


def _blue_and_depth():
  yy, xx = np.mgrid[0:SIZE, 0:SIZE]
  r2 = ((yy - 31.5) ** 2 + (xx - 31.5) ** 2) / 24.0**2
  blue = np.round(128 + 100 * np.sqrt(np.clip(1 - r2, 0, 1))).astype(np.uint8)
  # The stand-in's recon_depth is 1 + 0.1 * blue in [-1, 1]: ground truth equal to it inside a disk.
  depth = (1.0 + 0.1 * (blue.astype(np.float32) / 127.5 - 1.0)).astype(np.float32)
  return blue, np.where(r2 < 0.8, depth, 0.0).astype(np.float32)


def make_records(rng, classes=CLASS_RG, unlabelled=2, race_offset=0):
  blue, gt_depth = _blue_and_depth()
  records = []
  for c, (r, g) in enumerate(classes):
    for t in range(TRACKS_PER_CLASS):
      for f in range(FRAMES_PER_TRACK):
        rg = np.clip(np.array([r, g]) + rng.randint(-5, 6, size=2), 0, 255)
        image = np.dstack([np.full((SIZE, SIZE), rg[0]), np.full((SIZE, SIZE), rg[1]), blue]).astype(np.uint8)
        mean = image.reshape(-1, 3).astype(np.float64).mean(0) / 127.5 - 1.0
        records.append(
          {
            "image/encoded": encode_png(image),
            "label/id": c,
            "label/name": f"class{c}",
            "label/race": c + race_offset,
            "track/id": f"c{c}t{t}",
            "track/frame": f,
            "split": "test",
            "gt/has": 1,
            "gt/depth": gt_depth,
            "gt/light": [0.5, 0.5, 0.5 * mean[0], 0.5 * mean[1]],
            "gt/view": [0.1 * mean[0], 0.1 * mean[1], 0, 0, 0, 0],
          }
        )
  for i in range(unlabelled):  # unknown class: embedded for nothing, never clustered
    image = np.full((SIZE, SIZE, 3), 90, np.uint8)
    records.append({"image/encoded": encode_png(image), "track/id": f"u{i}", "split": "test"})
  return records


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  path = str(tmp_path_factory.mktemp("data"))
  feature_spec.write_dataset(path, make_records(np.random.RandomState(0)), dataset="tiny")
  return path


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
  return export.export_model(StandInModel(), str(tmp_path_factory.mktemp("export")), image_size=SIZE)


def test_end_to_end_scores_outputs_and_derender_metrics(data_dir, saved_model, tmp_path):
  out = str(tmp_path / "eval")
  results = ev.evaluate(saved_model, data_dir, output_dir=out, name="tiny", batch_size=8)
  n = len(CLASS_RG) * TRACKS_PER_CLASS * FRAMES_PER_TRACK
  assert results["records_read"] == n + 2 and results["n_samples"] == n and results["k"] == 3
  assert results["class_counts"] == {"class0": 6, "class1": 6, "class2": 6}
  assert results["blocks"] == ["depth", "albedo"] and results["dims"]["depth"] == 5
  for key in ("wcp", "hungarian_accuracy", "nmi", "ari", "pairwise_f1", "bcubed_f1", "weighted_f1"):
    assert results["clustering"][key] == pytest.approx(1.0), key
  assert results["accuracy"] == results["clustering"]["wcp"] and results["f1"] == results["clustering"]["weighted_f1"]
  disentangle = results["disentanglement"]
  assert disentangle["names"] == list(ev.FEATURE_NAMES) and disentangle["n_samples"] == n
  assert 0.0 <= disentangle["mean_pcc"] <= 1.0
  derender = results["derender"]
  assert derender["n_images"] == n and derender["empty_masks"] == 0
  # The stand-in reproduces the ground truth: zero errors, each beside its trivial predictor's.
  assert derender["side"]["model"] < 1e-5 and derender["normals_mad_deg"]["model"] < 0.05
  assert derender["light"]["ka_mae"]["model"] < 1e-5 and derender["light"]["direction_deg"]["model"] < 1e-3
  assert derender["view"]["geodesic_deg"]["model"] < 1e-3
  for name in ("view", "light", "normals", "depth"):
    assert derender["ratios"][name] < 0.01, name
  for key in ("json", "markdown", "embedding_png", "confusion_png", "correlation_png", "assignments_csv"):
    assert os.path.getsize(results["outputs"][key]) > 0, key
  with open(results["outputs"]["json"], encoding="utf-8") as f:
    written = json.load(f)
  assert written["clustering"]["wcp"] == pytest.approx(1.0)
  assert written["config"]["saved_model_dir"] == saved_model
  stages = ("load_saved_model_s", "embed_and_de_render_s", "cluster_and_report_s")
  for key in stages + ("embed_images_s", "de_render_s", "derender_scoring_s", "read_s", "total_s"):
    assert written["timings_s"][key] >= 0.0, key  # every stage's time is in the written report
  assert written["timings_s"]["total_s"] == pytest.approx(sum(written["timings_s"][k] for k in stages))
  assert written["de_render_path"] == "xla"  # the check-free function, compiled (exported_derender)
  with open(results["outputs"]["markdown"], encoding="utf-8") as f:
    assert "| cluster accuracy (WCP) | 1.0000 |" in f.read()
  with open(os.path.join(out, "tiny_embedding.png"), "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_a_scene_the_metrics_cannot_score_is_reported_and_the_clustering_goes_on(
  data_dir, saved_model, tmp_path, monkeypatch, caplog
):
  def unscorable(self, recon_depth, *args):
    raise ValueError("recon_depth must be positive and finite inside the mask")

  monkeypatch.setattr(derender_eval.DerenderScorer, "add", unscorable)
  results = ev.evaluate(saved_model, data_dir, output_dir=str(tmp_path / "eval"), name="tiny", batch_size=8)
  assert results["derender"] == {"error": "records 1-8: recon_depth must be positive and finite inside the mask"}
  assert "de-rendering metrics not computed (the clustering goes on)" in caplog.text
  assert results["clustering"]["wcp"] == pytest.approx(1.0) and os.path.isfile(results["outputs"]["json"])
  summary = table1.per_seed_summary(dict(results, seed=0, seconds=1.0, workdir=str(tmp_path)))
  assert "derender_ratios" not in summary  # no ratios for a de-rendering that was not scored


def test_track_averaging_kmeans_and_limits(data_dir, saved_model, tmp_path):
  results = ev.evaluate(
    os.path.dirname(saved_model),
    data_dir,
    average_tracks=True,
    method="kmeans",
    l2_normalize=True,
    feature_set="all",
    output_dir=str(tmp_path),
    name="bbt",
    derender_metrics=False,
  )
  assert results["grouped"] and results["n_samples"] == len(CLASS_RG) * TRACKS_PER_CLASS
  assert results["derender"] is None and results["clustering"]["wcp"] == pytest.approx(1.0)
  with open(results["outputs"]["assignments_csv"], encoding="utf-8") as f:
    lines = f.read().splitlines()
  assert lines[0] == "group_id,label,cluster" and lines[1].startswith("c0t0,class0,")
  limited = ev.evaluate(
    saved_model, data_dir, max_examples=7, output_dir=str(tmp_path), name="few", derender_metrics=False
  )
  assert limited["records_read"] == 7 and limited["n_samples"] == 7


def test_evaluate_features_feature_sets_and_baselines(rng):
  labels = np.repeat(["a", "b"], 10)
  good = np.where(labels[:, None] == "a", 0.0, 5.0) + 0.1 * rng.randn(20, 3)
  albedo = rng.randn(20, 1)
  features = {"depth": good, "albedo": albedo, "light": 3.0 * albedo - 2.0, "view": rng.randn(20, 2)}
  assert ev.evaluate_features(features, labels, feature_set="depth")["accuracy"] == 1.0
  assert ev.evaluate_features(features, labels, feature_set="depth")["blocks"] == ["depth"]
  light = ev.evaluate_features(features, labels, feature_set="light")
  assert light["accuracy"] < 1.0  # light carries no class information here
  assert light["disentanglement"]["matrix"][1][2] == pytest.approx(1.0)  # light is a linear function of albedo
  assert ev.evaluate_features(features, labels, feature_set=["depth", "view"])["blocks"] == ["depth", "view"]
  baseline = ev.evaluate_features({"vqvae": good}, labels, method="kmeans")
  assert baseline["accuracy"] == 1.0 and baseline["disentanglement"] is None
  dead = dict(features, view=np.zeros((20, 2)))  # a dead encoder: reported, not fatal
  assert "no varying dimension" in ev.evaluate_features(dead, labels)["disentanglement"]["error"]
  with pytest.raises(ValueError, match="unknown feature_set"):
    ev.evaluate_features(features, labels, feature_set="depth_light")


def test_evaluate_features_bad_inputs(rng):
  features = {"depth": rng.randn(4, 3), "albedo": rng.randn(4, 2)}
  with pytest.raises(ValueError, match="no labelled samples"):
    ev.evaluate_features({"depth": np.zeros((0, 3))}, np.array([], dtype=int))
  with pytest.raises(ValueError, match="only one class"):
    ev.evaluate_features(features, [1, 1, 1, 1])
  with pytest.raises(ValueError, match="k=5 clusters is larger than the number of samples N=4"):
    ev.evaluate_features(features, [0, 1, 0, 1], num_clusters=5)
  with pytest.raises(ValueError, match="k=3 clusters is larger than the number of groups N=2"):
    ev.evaluate_features(features, [0, 1, 0, 1], group_ids=["a", "b", "a", "b"], num_clusters=3)
  with pytest.raises(ValueError, match="labels must have shape"):
    ev.evaluate_features(features, [0, 1])


def test_diverged_or_collapsed_features_are_named_not_scored_silently(rng, caplog):
  labels = np.repeat(["a", "b"], 4)
  depth = np.where(labels[:, None] == "a", 0.0, 5.0) + 0.1 * rng.randn(8, 3)
  features = {"depth": depth, "albedo": rng.randn(8, 2), "light": rng.randn(8, 2)}
  nan_light = dict(features, light=np.where(np.arange(8)[:, None] < 3, np.nan, 1.0) * np.ones((8, 2)))
  for groups in (None, list("wwxxyyzz")):  # with and without track averaging: the same outcome
    with pytest.raises(ValueError, match=r"feature block 'albedo' has non-finite values .* in 3 of 8 samples"):
      ev.evaluate_features(
        dict(features, albedo=nan_light["light"]), labels, group_ids=groups, feature_set="depth_albedo"
      )
    result = ev.evaluate_features(nan_light, labels, group_ids=groups, feature_set="depth_albedo")  # PCC void only
    assert "non-finite" in result["disentanglement"]["error"] and result["dims"]["light"] == 2
  assert result["distinct_feature_rows"] == 4
  dead = dict(features, depth=np.ones((8, 3)), albedo=np.ones((8, 2)))
  collapsed = ev.evaluate_features(dead, labels, feature_set="depth_albedo")
  assert collapsed["distinct_feature_rows"] == 1
  assert "take only 1 distinct values, fewer than the k = 2 clusters" in caplog.text


def test_a_damaged_saved_model_graph_is_named(tmp_path):
  folder = tmp_path / "1"
  folder.mkdir()
  (folder / "saved_model.pb").write_bytes(b"\x0a\xff\xff garbage, or an interrupted copy")
  with pytest.raises(ValueError, match=r"saved_model.pb is not a readable SavedModel graph .* export the model again"):
    export.saved_model_op_types(str(folder))


def test_evaluate_bad_inputs(saved_model, data_dir, tmp_path):
  rng = np.random.RandomState(1)
  unlabelled = str(tmp_path / "unlabelled")
  feature_spec.write_dataset(unlabelled, make_records(rng, classes=(), unlabelled=3))
  with pytest.raises(ValueError, match=r"no labelled records \(label_id >= 0\) among the 3 records"):
    ev.evaluate(saved_model, unlabelled, output_dir=str(tmp_path / "o"))
  one_class = str(tmp_path / "one")
  feature_spec.write_dataset(one_class, make_records(rng, classes=CLASS_RG[:1], unlabelled=0))
  with pytest.raises(ValueError, match="only one class"):
    ev.evaluate(saved_model, one_class, output_dir=str(tmp_path / "o"), derender_metrics=False)
  with pytest.raises(ValueError, match="k=50 clusters is larger than the number of samples N=18"):
    ev.evaluate(saved_model, data_dir, num_clusters=50, output_dir=str(tmp_path / "o"), derender_metrics=False)
  with pytest.raises(ValueError, match="unknown evaluate.label_field 'identity'"):  # before the model is loaded
    ev.evaluate(str(tmp_path / "nothing"), data_dir, label_field="identity", output_dir=str(tmp_path / "o"))
  with pytest.raises(ValueError, match="saved_model_dir is not set"):
    ev.evaluate(None, data_dir)
  with pytest.raises(FileNotFoundError, match="does not exist"):
    ev.evaluate(str(tmp_path / "nothing"), data_dir)
  for binding, value in (("batch_size", "64"), ("batch_size", 0), ("max_examples", 2.5), ("num_clusters", 1)):
    with pytest.raises(ValueError, match=f"evaluate.{binding} must be an integer"):  # before the model is loaded
      ev.evaluate(str(tmp_path / "nothing"), data_dir, **{binding: value})


def test_saved_model_without_signature_is_rejected(data_dir, tmp_path):
  module = tf.Module()
  module.fn = tf.function(lambda x: {"y": x * 2.0}, input_signature=[tf.TensorSpec([None], tf.float32)])
  path = str(tmp_path / "other" / "1")
  tf.saved_model.save(module, path, signatures={"serving_default": module.fn})
  with pytest.raises(ValueError, match=f"SavedModel {path} has no signature \\['embed_images'\\]"):
    ev.evaluate(path, data_dir, output_dir=str(tmp_path / "o"))
  encoder_only = export.export_model(StandInModel(), str(tmp_path / "enc"), include_de_render=False)
  with pytest.raises(ValueError, match="has no de_render signature but .* has ground truth"):
    ev.evaluate(encoder_only, data_dir, output_dir=str(tmp_path / "o"))
  assert ev.evaluate(encoder_only, data_dir, output_dir=str(tmp_path / "o"), derender_metrics=False)["k"] == 3


@pytest.mark.parametrize(
  "gin_name, grouped, n", [("eval_cars.gin", False, 18), ("eval_bbt.gin", True, 9), ("eval_faces.gin", False, 18)]
)
def test_eval_gin_files_run_with_paths_overridden(gin_name, grouped, n, saved_model, tmp_path):
  data = str(tmp_path / "data")
  # race labels 2..4 so that names come from formats.UTKFACE_RACES for the faces file
  feature_spec.write_dataset(data, make_records(np.random.RandomState(2), race_offset=2))
  out = str(tmp_path / "out")
  params = [
    f"evaluate.saved_model_dir = '{saved_model}'",
    f"evaluate.data_dir = '{data}'",
    f"evaluate.output_dir = '{out}'",
  ]
  try:
    assert ev.main(["--gin_file", os.path.join(REPO, "gin", gin_name)] + [f"--gin_param={p}" for p in params]) == 0
    name = gin.query_parameter("evaluate.name")
    assert gin.query_parameter("evaluate.average_tracks") == grouped
  finally:
    gin.clear_config()
  with open(os.path.join(out, f"{name}.json"), encoding="utf-8") as f:
    results = json.load(f)
  assert results["n_samples"] == n and results["clustering"]["wcp"] == pytest.approx(1.0)
  with open(os.path.join(out, f"{name}_config.gin"), encoding="utf-8") as f:
    operative = f.read()
  assert "evaluate.data_dir =" in operative and f"'{data}'" in operative
  if gin_name == "eval_faces.gin":
    assert results["config"]["label_field"] == "race"
    assert sorted(results["class_counts"]) == ["Asian", "Indian", "Others"]


def test_main_reruns_into_its_own_folder_and_never_overwrites_the_users_files(saved_model, data_dir, tmp_path, caplog):
  def run(out):
    params = [f"evaluate.saved_model_dir = '{saved_model}'", f"evaluate.data_dir = '{data_dir}'"]
    params += [f"evaluate.output_dir = '{out}'", "evaluate.derender_metrics = False"]
    try:
      return ev.main(["--gin_file", os.path.join(REPO, "gin", "eval_cars.gin")] + [f"--gin_param={p}" for p in params])
    finally:
      gin.clear_config()

  out = tmp_path / "eval"
  assert run(out) == 0
  first = sorted(os.listdir(out))
  assert "cars_light_view_config.gin" in first and "cars_light_view.md" in first
  assert run(out) == 0 and sorted(os.listdir(out)) == first  # a re-run replaces its own outputs
  with open(out / "cars_light_view.json", encoding="utf-8") as f:
    assert f.read().count("cars_light_view_config.gin") == 1  # the config file is among the written outputs
  user = tmp_path / "D"  # the audit's case: the user's own file named like an output
  user.mkdir()
  (user / "cars_light_view.md").write_bytes(b"my notes\n")
  assert run(user) == 1
  assert f"{user / 'cars_light_view.md'}, not written by pdr_tf" in caplog.text and "evaluate.output_dir" in caplog.text
  assert os.listdir(user) == ["cars_light_view.md"] and (user / "cars_light_view.md").read_bytes() == b"my notes\n"


def test_unknown_gin_binding_is_named(caplog):
  try:
    with pytest.raises(ValueError, match="bogus_parameter"):
      gin_config.parse([], ["evaluate.bogus_parameter = 1"])
    assert ev.main(["--gin_param=evaluate.bogus_parameter = 1"]) == 2
    assert "bogus_parameter" in caplog.text
    assert ev.main(["--gin_file=/no/such/file.gin"]) == 2
    assert "/no/such/file.gin" in caplog.text
  finally:
    gin.clear_config()


def test_an_empty_shard_is_an_error_not_a_silent_subset(tmp_path, saved_model):
  copy = str(tmp_path / "data")
  feature_spec.write_dataset(copy, make_records(np.random.RandomState(0)), dataset="tiny", num_shards=2)
  shards = sorted(os.path.join(copy, p) for p in os.listdir(copy) if p.startswith("test"))
  open(shards[0], "wb").close()  # a full disk or an interrupted copy: TFRecordDataset reads it as no records
  loaded, _ = export.load_export(saved_model)
  with pytest.raises(ev.input_pipeline.CorruptDataError, match=r"read \d+ 'test' records, but its manifest.json lists"):
    ev.embed_dataset(loaded, copy, "test", derender_metrics_on=False)
  # Asked to read past damage, it scores what it read and says how much that was.
  gin.parse_config("make_dataset.skip_corrupt = True")
  assert 0 < ev.embed_dataset(loaded, copy, "test", derender_metrics_on=False)[3] < 24
  gin.clear_config()
  open(shards[1], "wb").close()  # every shard empty: refused before any reading, by the shard listing
  with pytest.raises(ValueError, match=r"its 2 shard\(s\) are empty \(0 bytes\), yet the manifest counts"):
    ev.embed_dataset(loaded, copy, "test", derender_metrics_on=False)
