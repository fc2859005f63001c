"""Tests of pdr_tf.evaluation.reproduce_progress: the progress file a reproduction resumes from."""

import json
import os

import pytest

from pdr_tf.evaluation import reproduce_progress

SETTINGS = {"suite": "cars", "preset": "cpu", "gin_files": ("a.gin",), "pca_components": 64}
JOBS = [("unsup3d", 0), ("pixels_pca", 0), ("unsup3d", 1), ("pixels_pca", 1)]


def test_records_runs_and_estimates_the_time_left(tmp_path):
  path = str(tmp_path / "suite" / "progress.json")
  progress = reproduce_progress.Progress(path, SETTINGS, JOBS)
  assert progress.counts() == (0, 4) and progress.seconds_left() is None and not os.path.exists(path)
  progress.start("unsup3d", 0)
  assert json.load(open(path))["running"]["method"] == "unsup3d"
  progress.record("unsup3d", 0, {"accuracy": 0.5, "seconds": 100.0, "nmi": float("nan")})
  # pixels_pca has no finished run yet: it is estimated at the mean of all finished runs.
  assert progress.seconds_left() == pytest.approx(3 * 100.0)
  progress.record("pixels_pca", 0, {"accuracy": 0.4, "seconds": 10.0})
  assert progress.seconds_left() == pytest.approx(100.0 + 10.0)
  data = json.load(open(path))
  assert data["finished"] == 2 and data["total"] == 4 and data["running"] is None
  assert data["estimated_seconds_left"] == pytest.approx(110.0)
  assert data["runs"]["unsup3d/seed0"]["summary"]["nmi"] is None  # NaN is written as null
  assert os.listdir(os.path.dirname(path)) == ["progress.json"]  # the temporary file was renamed

  reread = reproduce_progress.Progress(path, SETTINGS, JOBS)
  assert reread.finished("unsup3d", 0)["accuracy"] == 0.5 and reread.finished("unsup3d", 1) is None
  assert reread.counts() == (2, 4)


def test_recorded_gives_every_finished_run_by_method_in_seed_order(tmp_path):
  path = str(tmp_path / "progress.json")
  first = reproduce_progress.Progress(path, SETTINGS, [("unsup3d", 2), ("unsup3d", 0)])
  first.record("unsup3d", 2, {"seed": 2, "seconds": 1.0})
  first.record("unsup3d", 0, {"seed": 0, "seconds": 1.0})
  # A later command with other jobs still sees the earlier command's runs.
  later = reproduce_progress.Progress(path, SETTINGS, [("pixels_pca", 1)])
  later.record("pixels_pca", 1, {"seed": 1, "seconds": 1.0})
  recorded = later.recorded(["pixels_pca", "vq_vae", "unsup3d"])
  assert list(recorded) == ["pixels_pca", "unsup3d"]
  assert [r["seed"] for r in recorded["unsup3d"]] == [0, 2]
  assert later.recorded(["vq_vae"]) == {}
  # A hand-edited file with a key or an entry that is not a run's is refused, naming the file and the run.
  data = json.load(open(path))
  for runs, message in (
    ({"unsup3d/seedx": data["runs"]["unsup3d/seed0"]}, "progress.json: 'unsup3d/seedx' is not a run key"),
    ({"unsup3d/seed0": {"finished": "now"}}, "progress.json: run 'unsup3d/seed0' has no per-seed summary"),
  ):
    json.dump(dict(data, runs=runs), open(path, "w"))
    with pytest.raises(ValueError, match=message):
      reproduce_progress.Progress(path, SETTINGS, [])


def test_run_keys_split_back_into_method_and_seed():
  assert reproduce_progress.split_run_key(reproduce_progress.run_key("loocc_light_view", 12)) == (
    "loocc_light_view",
    12,
  )
  for bad in ("unsup3d", "unsup3d/seedx", "/seed1"):
    with pytest.raises(ValueError, match="not a run key"):
      reproduce_progress.split_run_key(bad)


def test_other_settings_or_a_foreign_file_are_refused(tmp_path):
  path = str(tmp_path / "progress.json")
  reproduce_progress.Progress(path, SETTINGS, JOBS).record("unsup3d", 0, {"accuracy": 0.5, "seconds": 1.0})
  with pytest.raises(ValueError, match=r"other settings \(preset: 'cpu' there, 'quick' now\)"):
    reproduce_progress.Progress(path, dict(SETTINGS, preset="quick"), JOBS)
  # More seeds or methods are not other settings: the same folder grows.
  assert reproduce_progress.Progress(path, SETTINGS, JOBS + [("vq_vae", 2)]).counts() == (1, 5)

  with open(path, "w") as f:
    f.write("{not json")
  with pytest.raises(ValueError, match="not a readable progress file.*Rename it"):
    reproduce_progress.Progress(path, SETTINGS, JOBS)
  with open(path, "w") as f:
    json.dump({"version": 99, "runs": {}}, f)
  with pytest.raises(ValueError, match="not a version-1 progress file"):
    reproduce_progress.Progress(path, SETTINGS, JOBS)


def test_settings_of_keeps_only_what_changes_a_result():
  config = dict(SETTINGS, seeds=[0, 1], methods=["unsup3d"], command="x", date="d")
  settings = reproduce_progress.settings_of(config)
  assert set(settings) == set(reproduce_progress.SETTINGS_KEYS)
  assert settings["preset"] == "cpu" and "seeds" not in settings and settings["train_steps"] is None
  assert {"pca_max_images", "gin_digest"} <= set(settings)


def test_the_estimate_leaves_out_resumed_runs_and_falls_back_to_the_group(tmp_path):
  jobs = [("unsup3d", 0), ("loocc_light", 0), ("pixels_pca", 0), ("vq_vae", 0)]
  groups = {"unsup3d": "de-renderer", "loocc_light": "de-renderer"}
  progress = reproduce_progress.Progress(str(tmp_path / "p.json"), SETTINGS, jobs, groups=groups)
  progress.record("unsup3d", 0, {"accuracy": 0.5, "seconds": 40.0, "resumed": True})
  assert progress.seconds_left() is None  # a resumed run's time says nothing about a whole run
  progress.record("pixels_pca", 0, {"accuracy": 0.3, "seconds": 2.0})
  assert progress.seconds_left() == pytest.approx(2.0 + 2.0)  # nothing else known yet: the overall mean
  progress.record("unsup3d", 0, {"accuracy": 0.5, "seconds": 1000.0})
  # loocc_light: its group's mean (unsup3d's 1,000 s), not PCA's; vq_vae: the overall mean.
  assert progress.seconds_left() == pytest.approx(1000.0 + (1000.0 + 2.0) / 2)


def test_an_older_form_of_a_setting_is_accepted_and_rewritten_and_dict_differences_are_named(tmp_path):
  path = str(tmp_path / "progress.json")
  old = dict(SETTINGS, gin_digest="abc")
  reproduce_progress.Progress(path, old, JOBS).record("unsup3d", 0, {"accuracy": 0.5, "seconds": 1.0})
  new = dict(SETTINGS, gin_digest={"unsup3d": "1", "loocc_light": "2"})
  with pytest.raises(ValueError, match="other settings"):
    reproduce_progress.Progress(path, new, JOBS)
  accepted = reproduce_progress.Progress(path, new, JOBS, accept={"gin_digest": lambda value: value == "abc"})
  assert accepted.finished("unsup3d", 0)["accuracy"] == 0.5
  accepted.record("pixels_pca", 0, {"accuracy": 0.4, "seconds": 1.0})
  assert json.load(open(path))["settings"]["gin_digest"] == {"unsup3d": "1", "loocc_light": "2"}
  changed = dict(SETTINGS, gin_digest={"unsup3d": "1", "loocc_light": "3"})
  with pytest.raises(ValueError, match=r"other settings \(gin_digest\[loocc_light\] changed\)"):
    reproduce_progress.Progress(path, changed, JOBS)
