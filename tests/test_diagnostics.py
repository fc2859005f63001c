"""Smoke tests of the diagnostic scripts under scripts/diagnostics (run on a tiny model and dataset)."""

import sys

import numpy as np
import pytest
import tensorflow as tf

import fixtures


_load = fixtures.load_diagnostic


@pytest.fixture
def tiny_run(tmp_path, monkeypatch, tiny_model):
  from pdr_tf.training import workdir as workdir_lib  # pylint: disable=import-outside-toplevel

  data_dir = fixtures.write_tiny_dataset(tmp_path / "data", num_train=2, num_test=2, num_val=4)
  monkeypatch.setattr(workdir_lib, "restore_model", lambda workdir, step=None: tiny_model)
  return str(tmp_path / "run"), str(data_dir)


def test_depth_template_share_is_zero_for_one_shape_and_one_for_independent_ones():
  template = _load("depth_template")
  rng = np.random.RandomState(0)
  shape = rng.normal(size=(1, 8, 8))
  np.testing.assert_allclose(
    template.image_specific_share(np.repeat(shape, 5, 0) + rng.normal(size=(5, 1, 1))), 0.0, atol=1e-12
  )
  assert template.image_specific_share(rng.normal(size=(400, 8, 8))) == pytest.approx(1.0, abs=0.01)
  np.testing.assert_allclose(template.cell_means(np.ones((2, 16, 16))), np.ones((2, 8, 8)))


def test_depth_template_prints_the_grids_and_the_share(tiny_run, monkeypatch, capsys):
  monkeypatch.setattr(sys, "argv", ["depth_template.py", *tiny_run, "4"])
  _load("depth_template").main()
  printed = capsys.readouterr().out
  assert "4 'val' images" in printed and "image-specific share of the depth's variation" in printed


def test_object_colour_is_the_mean_chroma_of_the_masked_pixels():
  colour = _load("object_colour")
  images = np.zeros((2, 4, 4, 3))
  images[0, :2] = [0.5, -0.1, -0.4]  # a red object on the top half of image 0
  mask = np.zeros((2, 4, 4, 1))
  mask[0, :2] = 1.0
  np.testing.assert_allclose(colour.object_chroma(images, mask), [[0.5, -0.1, -0.4], [0.0, 0.0, 0.0]], atol=1e-12)


def test_object_colour_prints_the_model_beside_the_trivial_predictors(tiny_run, monkeypatch, capsys):
  monkeypatch.setattr(sys, "argv", ["object_colour.py", *tiny_run, "4"])
  _load("object_colour").main()
  printed = capsys.readouterr().out
  assert "4 'val' images" in printed and "R / G / B" in printed
  assert "model " in printed and "grey " in printed and "mean colour " in printed


def test_object_colour_exits_naming_the_data_when_an_image_has_no_object(tiny_run, monkeypatch):
  colour = _load("object_colour")
  monkeypatch.setattr(colour, "BACKGROUND_LUMINANCE", -2.0)  # no pixel is darker: nothing to measure
  monkeypatch.setattr(sys, "argv", ["object_colour.py", *tiny_run, "4"])
  with pytest.raises(SystemExit, match="no object to measure"):
    colour.main()


@pytest.mark.parametrize("region, eps", [("covered", 0.0), ("object", 0.05)])
def test_light_sweep_reports_both_components_and_the_regions(tiny_run, monkeypatch, capsys, region, eps):
  sweep = _load("light_sweep")
  monkeypatch.setattr(sweep, "REGION", region)
  monkeypatch.setattr(sweep, "CHARBONNIER_EPS", eps)
  monkeypatch.setattr(sys, "argv", ["light_sweep.py", *tiny_run, "4"])
  sweep.main()
  printed = capsys.readouterr().out
  assert f"loss on the {region} pixels" in printed and ("Charbonnier" in printed) == (eps > 0)
  assert "lx: loss minimiser" in printed and "ly: loss minimiser" in printed and "not steep, background" in printed
  assert "lx, the reconstruction's gradient at the prediction" in printed and "ly, the flip term's gradient" in printed
  assert "lx, the sum (flip weight" in printed


def test_light_sweep_gradient_is_each_images_slope_in_one_component():
  sweep = _load("light_sweep")
  light = np.array([[0.3, 0.7, 0.2, -0.1], [0.4, 0.6, -0.5, 0.3]], np.float32)
  target = np.array([[0.0, 0.0, 0.5, 0.0], [0.0, 0.0, 0.1, 0.0]], np.float32)

  def terms(full):  # per image: squared distances to the target, and the same tripled
    squared = tf.reduce_sum(tf.square(full - target), 1)
    return {"one": squared, "three": 3.0 * squared}

  gradients = sweep.loss_gradients(terms, light, 2)
  np.testing.assert_allclose(gradients["one"], [-0.6, -1.2], rtol=1e-6)
  np.testing.assert_allclose(gradients["three"], [-1.8, -3.6], rtol=1e-6)


def test_diagnostics_exit_with_their_usage_or_name_the_folder_without_a_val_split(tiny_run, tmp_path, monkeypatch):
  trained = _load("trained_run")
  monkeypatch.setattr(sys, "argv", ["depth_template.py", tiny_run[0]])
  with pytest.raises(SystemExit, match="USAGE"):
    trained.restore_with_val_batch("USAGE")
  no_val = fixtures.write_tiny_dataset(tmp_path / "no_val", num_train=2, num_test=2, num_val=0)
  monkeypatch.setattr(sys, "argv", ["depth_template.py", tiny_run[0], str(no_val)])
  with pytest.raises(FileNotFoundError, match="has no 'val' split"):  # the input pipeline's own error, naming the fix
    trained.restore_with_val_batch("USAGE")


def test_diagnostics_restore_the_checkpoint_step_names(tiny_run, monkeypatch):
  from pdr_tf.training import workdir as workdir_lib  # pylint: disable=import-outside-toplevel

  trained = _load("trained_run")
  asked = []
  monkeypatch.setattr(workdir_lib, "restore_model", lambda workdir, step=None: asked.append(step))
  monkeypatch.setattr(sys, "argv", ["light_sweep.py", *tiny_run, "4"])
  trained.restore_with_val_batch("USAGE")
  monkeypatch.setenv("STEP", "400")
  trained.restore_with_val_batch("USAGE")
  assert asked == [None, 400]
  monkeypatch.setenv("STEP", "last")
  with pytest.raises(SystemExit, match="USAGE"):
    trained.restore_with_val_batch("USAGE")


def _ceiling_on_tiny_data(name, tmp_path, monkeypatch):
  """A ceiling script (module, data_dir) that trains on the tiny dataset's records with ground truth, batch 4."""
  ceiling = _load(name)
  data_dir = fixtures.write_tiny_dataset(tmp_path / "data", num_train=2, num_test=2, num_val=8)
  monkeypatch.setattr(ceiling, "TRAIN_SPLIT", "val")  # the tiny dataset's records with ground truth
  monkeypatch.setattr(ceiling, "BATCH", 4)
  return ceiling, data_dir


def test_supervised_ceiling_trains_both_encoders_and_scores_them_beside_the_trivial_predictors(
  tmp_path, monkeypatch, capsys
):
  ceiling, data_dir = _ceiling_on_tiny_data("supervised_ceiling", tmp_path, monkeypatch)
  monkeypatch.setattr(sys, "argv", ["supervised_ceiling.py", data_dir, "4", "4"])
  ceiling.main()
  lines = capsys.readouterr().out.splitlines()
  assert [line.split(" (")[0] for line in lines[:4]] == ["step 1", "step 2", "step 3", "step 4"]
  assert all("x), light " in line and line.endswith("x)") for line in lines[:4])
  assert lines[-1] == "test after 4 steps (nf 4, lr 0.0001): no records with ground truth"


def test_supervised_ceiling_exits_with_its_usage(monkeypatch):
  monkeypatch.setattr(sys, "argv", ["supervised_ceiling.py"])
  with pytest.raises(SystemExit, match="usage: supervised_ceiling.py DATA_DIR"):
    _load("supervised_ceiling").main()


def test_depth_ceiling_loss_is_zero_on_the_truth_and_charges_a_flat_map():
  import tensorflow as tf  # pylint: disable=import-outside-toplevel

  from pdr_tf.render import geometry  # pylint: disable=import-outside-toplevel

  ceiling = _load("depth_ceiling")
  gt = fixtures.bump_depth(0.02, radius=16).astype(np.float32)[None]
  pixels = tf.constant(ceiling.evaluation_pixels(gt), tf.float32)
  intrinsics = geometry.intrinsics_from_fov(64)
  truth = tf.constant(np.where(gt > 0, gt, 1.0))
  assert float(ceiling.depth_loss(truth, gt, pixels, intrinsics)) == pytest.approx(0.0, abs=1e-4)
  # A flat map misses the bump: its normals and its relief.
  flat = tf.ones_like(truth)
  assert float(ceiling.depth_loss(flat, gt, pixels, intrinsics)) > 0.05


def test_depth_ceiling_trains_the_depth_under_the_true_view_and_scores_it_beside_the_flat_map(
  tmp_path, monkeypatch, capsys
):
  ceiling, data_dir = _ceiling_on_tiny_data("depth_ceiling", tmp_path, monkeypatch)
  gin_files = ["--gin_file", ceiling.DEFAULT_GIN[0], "--gin_file", f"{ceiling.GIN_DIR}/debug.gin"]
  ceiling.main([data_dir, "2", *gin_files, "--gin_param", "DeRenderer.depth_size=16"])
  lines = capsys.readouterr().out.splitlines()
  assert lines[0].startswith("val at step 0") and "normals " in lines[0] and "SIDE " in lines[0]
  assert [line.split(" (")[0] for line in lines[1:3]] == ["step 1", "step 2"]
  assert all(" deg (" in line and line.endswith("x)") for line in lines[1:3])
  assert lines[-1] == "test after 2 steps (depth 16x16, lr 0.0001): no records with ground truth"


def test_depth_ceiling_exits_naming_a_bad_step_count_data_folder_or_gin_file(tmp_path):
  ceiling = _load("depth_ceiling")
  with pytest.raises(SystemExit, match="STEPS must be >= 1"):
    ceiling.main([str(tmp_path), "0"])
  with pytest.raises(SystemExit, match=f"data directory {tmp_path}/missing does not exist"):
    ceiling.main([str(tmp_path / "missing"), "2"])
  with pytest.raises(SystemExit, match="gin file 'nope.gin' does not exist"):
    ceiling.main([str(tmp_path), "2", "--gin_file", "nope.gin"])
  no_val = fixtures.write_tiny_dataset(tmp_path / "no_val", num_train=2, num_test=2, num_val=0)
  with pytest.raises(SystemExit, match="'val' split"):
    ceiling.main([no_val, "2"])


def test_rasterizer_regimes_reports_a_runs_scenes(tiny_run, monkeypatch, capsys):
  regimes = _load("rasterizer_regimes")
  monkeypatch.setattr(regimes, "REPEATS", 1)
  scenes = regimes.run_scenes(*tiny_run, 4)
  (name,) = scenes
  clip, faces, size = scenes[name]
  assert clip.shape[0] == 4 and clip.shape[-1] == 4
  regimes.report(name, clip, faces, size)
  line = capsys.readouterr().out
  assert "candidates/image boxes" in line and "ids tf" in line and ("dense" in line or "sparse" in line)


@pytest.mark.parametrize("argv", [["WORKDIR"], ["WORKDIR", "DATA", "many"], ["A", "B", "1", "C"]])
def test_rasterizer_regimes_exits_with_its_usage(monkeypatch, argv):
  monkeypatch.setattr(sys, "argv", ["rasterizer_regimes.py", *argv])
  with pytest.raises(SystemExit, match="rasterizer_regimes.py \\[WORKDIR DATA_DIR"):
    _load("rasterizer_regimes").main()


def test_light_view_leak_recovers_a_known_leak_and_the_left_right_sign():
  leak = _load("light_view_leak")
  rng = np.random.RandomState(0)
  truth, lx = rng.normal(size=(200, 2)), rng.uniform(-1, 1, 200)
  a, b = leak.leak_coefficients(np.stack([0.5 * truth[:, 0] + 0.2 * lx, truth[:, 1]], 1), truth, lx)
  np.testing.assert_allclose(a, [0.5, 1.0], atol=1e-9)
  np.testing.assert_allclose(b, [0.2, 0.0], atol=1e-9)
  images = np.zeros((1, 16, 16))
  images[:, :, :8] = 1.0  # bright left half
  assert leak.left_right(images)[0] == pytest.approx(1.0)


def test_light_view_leak_prints_every_view_component(tiny_run, monkeypatch, capsys):
  monkeypatch.setattr(sys, "argv", ["light_view_leak.py", *tiny_run, "4"])
  _load("light_view_leak").main()
  printed = capsys.readouterr().out
  assert all(f"  {name}: a " in printed for name in ("rx", "ry", "rz", "tx", "ty"))
  assert "canonical shading" in printed


def test_light_budget_measures_each_side_and_the_depth_tilt():
  budget = _load("light_budget")
  images = np.zeros((1, 16, 16, 3))
  images[:, :8] = 1.0  # bright top half
  assert budget.side_difference(images, "ly")[0] == pytest.approx(1.0)
  assert budget.side_difference(images, "lx")[0] == pytest.approx(0.0)
  ys, xs = np.mgrid[0:16, 0:16]
  depth = (1.0 + 0.002 * xs - 0.003 * ys)[None]
  assert budget.plane_tilt(depth, "lx")[0] == pytest.approx(0.002)
  assert budget.plane_tilt(depth, "ly")[0] == pytest.approx(-0.003)


def test_light_budget_prints_both_components(tiny_run, monkeypatch, capsys):
  monkeypatch.setattr(sys, "argv", ["light_budget.py", *tiny_run, "4"])
  _load("light_budget").main()
  printed = capsys.readouterr().out
  for component in ("lx (left minus right", "ly (top minus bottom"):
    assert component in printed
  for name in ("input", "reconstruction", "canonical shading", "canonical albedo", "canonical depth tilt"):
    assert printed.count(f"  {name}:") == 2, name


def test_vertical_light_parts_score_each_component():
  vertical = _load("vertical_light")
  rng = np.random.default_rng(0)
  gt = np.stack([np.full(200, 0.4), np.full(200, 0.7), rng.uniform(-0.8, 0.8, 200), rng.uniform(-0.8, 0.8, 200)], -1)
  shifted = gt.copy()
  shifted[:, 3] += 0.5  # the truth with one vertical offset shared by every image
  parts = vertical.direction_parts(shifted, gt, np.eye(3))
  assert parts["as predicted"] > 0.5
  assert parts["shared vertical offset removed"] == pytest.approx(0.0, abs=1e-6)
  assert parts["predicted lx, exact ly"] == pytest.approx(0.0, abs=1e-6)
  assert 0.3 < parts["exact lx, ly constant (the truth's mean)"] < 1.0


def test_vertical_light_repaint_keeps_the_canonical_image_and_counts_what_it_clips():
  vertical = _load("vertical_light")
  rng = np.random.default_rng(1)
  albedo = rng.uniform(-1, 0, (2, 4, 4, 3))
  before, after = rng.uniform(0.5, 1.0, (2, 4, 4, 1)), rng.uniform(0.5, 1.0, (2, 4, 4, 1))
  repainted, clipped = vertical.repaint(albedo, before, after)
  np.testing.assert_allclose((repainted + 1) / 2 * after, (albedo + 1) / 2 * before)
  assert clipped == 0.0
  assert vertical.repaint(np.ones((1, 2, 2, 3)), np.ones((1, 2, 2, 1)), np.full((1, 2, 2, 1), 0.5))[1] == 1.0
  assert vertical.asymmetry(np.ones((1, 2, 4, 3))) == 0.0
  assert vertical.asymmetry(np.concatenate([np.ones((1, 2, 2, 3)), -np.ones((1, 2, 2, 3))], 2)) == 1.0


def test_vertical_light_prints_the_parts_and_the_losses(tiny_run, monkeypatch, capsys):
  monkeypatch.setattr(sys, "argv", ["vertical_light.py", *tiny_run, "4"])
  _load("vertical_light").main()
  printed = capsys.readouterr().out
  assert "exact lx, ly constant" in printed
  for row in ("predicted scene", "true ly, albedo repainted", "true lx, albedo repainted"):
    assert f"  {row}" in printed and printed.count("l1_flip") == 5


def test_light_in_features_reads_a_linear_target_and_not_noise():
  read_out = _load("light_in_features")
  rng = np.random.default_rng(2)
  features = rng.normal(size=(200, 8))
  assert read_out.cross_validated_r2(features, features @ rng.normal(size=8)) > 0.99
  assert read_out.cross_validated_r2(features, rng.normal(size=200)) < 0.1
  assert read_out.cross_validated_r2(features, np.ones(200)) == 0.0
  assert read_out.cross_validated_r2(np.zeros((200, 3)), features[:, 0]) == 0.0
  # A sparse unit, active on two images, must not blow the read-out up.
  sparse = np.zeros((200, 1))
  sparse[:2] = 5.0
  assert read_out.cross_validated_r2(np.concatenate([features, sparse], 1), features @ np.ones(8)) > 0.99
  table = read_out.read_out_table({"a": features}, {"x": features[:, 0], "y": rng.normal(size=200)})
  assert table["a"]["x"] > 0.99 and table["a"]["y"] < 0.1


def test_light_in_features_prints_a_row_per_block(tiny_run, monkeypatch, capsys):
  monkeypatch.setattr(sys, "argv", ["light_in_features.py", *tiny_run, "4"])
  _load("light_in_features").main()
  printed = capsys.readouterr().out
  assert all(f"\n{block:8s} " in printed for block in ("depth", "albedo", "light", "view"))


@pytest.mark.parametrize(
  "script", ["light_view_leak", "depth_template", "light_sweep", "light_budget", "vertical_light", "light_in_features"]
)
def test_trained_run_scripts_exit_with_their_usage_on_a_bad_image_count(monkeypatch, script):
  monkeypatch.setattr(sys, "argv", [f"{script}.py", "WORKDIR", "DATA", "many"])
  with pytest.raises(SystemExit, match=f"{script}.py WORKDIR DATA_DIR"):
    _load(script).main()


def test_relief_ambiguity_products_of_a_drift_along_the_valley():
  ambiguity = _load("relief_ambiguity")

  def rows(relief, lx_slope):
    params = [{"name": n, "slope": 0.5} for n in ("ly", "rx", "ry")] + [{"name": "lx", "slope": lx_slope}]
    return params + [{"name": "depth relief", "pred_mean": relief * 0.02, "gt_mean": 0.02}]

  early, late = ambiguity.ambiguity_row(rows(1.0, 0.48)), ambiguity.ambiguity_row(rows(1.6, 0.30))
  assert late["relief"] == pytest.approx(1.6) and late["lx"] == 0.30
  assert early["relief_x_lx"] == pytest.approx(late["relief_x_lx"])  # deeper relief, flatter light: the same shading
  assert late["relief_x_ry"] == pytest.approx(0.8)
  assert "relief 1.60x the truth's" in ambiguity.format_row(800, late)


@pytest.mark.parametrize("argv", [["WORKDIR", "DATA"], ["WORKDIR", "DATA", "last"]])
def test_relief_ambiguity_exits_with_its_usage(monkeypatch, argv):
  monkeypatch.setattr(sys, "argv", ["relief_ambiguity.py", *argv])
  with pytest.raises(SystemExit, match="relief_ambiguity.py WORKDIR DATA_DIR STEP"):
    _load("relief_ambiguity").main()


def test_relief_ambiguity_prints_a_row_per_step(tiny_run, monkeypatch, capsys):
  monkeypatch.setattr(sys, "argv", ["relief_ambiguity.py", *tiny_run, "0", "10"])
  _load("relief_ambiguity").main()
  printed = capsys.readouterr().out
  assert "step      0: relief" in printed and "step     10: relief" in printed and "relief x ry" in printed


def test_train_with_true_scene_parses_its_oracles_and_names_a_bad_one():
  script = _load("train_with_true_scene")
  assert script.parse_oracle(["--gin_file=g.gin"]) == (("light",), ["--gin_file=g.gin"])
  assert script.parse_oracle(["--oracle=light_side,view", "--gin_param=x"]) == (
    ("light_side", "view"),
    ["--gin_param=x"],
  )
  for bad in ("--oracle=depth", "--oracle=light,light_side", "--oracle="):
    with pytest.raises(SystemExit, match="--oracle takes light or light_side"):
      script.parse_oracle([bad])


def test_train_with_true_scene_substitutes_the_side_light_and_keeps_the_predicted_vertical_one():
  import tensorflow as tf  # pylint: disable=import-outside-toplevel

  script = _load("train_with_true_scene")
  predicted = {"light": tf.constant([[0.1, 0.6, 0.0, -0.8]]), "view": tf.zeros([1, 6]), "depth": tf.ones([1, 2, 2])}
  true_light, true_view = tf.constant([[0.4, 0.7, 0.5, 0.2]]), tf.fill([1, 6], 0.3)
  side = script.substitute(predicted, {"light_side": true_light, "view": true_view})
  np.testing.assert_allclose(side["light"], [[0.4, 0.7, 0.5, -0.8]])
  np.testing.assert_allclose(side["view"], true_view)
  assert side["depth"] is predicted["depth"]
  np.testing.assert_allclose(script.substitute(predicted, {"light": true_light})["light"], true_light)
  np.testing.assert_allclose(predicted["light"], [[0.1, 0.6, 0.0, -0.8]])  # the prediction itself is untouched


def test_train_with_true_scene_mirrors_the_truth_with_the_image():
  import tensorflow as tf  # pylint: disable=import-outside-toplevel

  from pdr_tf.render import scene  # pylint: disable=import-outside-toplevel

  script = _load("train_with_true_scene")
  example = {"gt_light": tf.constant([0.4, 0.7, 0.5, 0.2]), "gt_view": tf.constant([0.1, 0.2, 0.3, 0.01, 0.02, 0.0])}
  kept = script.mirrored_truth(example, ("light_side", "view"), tf.constant(False))
  flipped = script.mirrored_truth(example, ("light_side", "view"), tf.constant(True))
  assert sorted(kept) == ["gt_light", "gt_view"]
  np.testing.assert_allclose(kept["gt_light"], example["gt_light"])
  np.testing.assert_allclose(flipped["gt_light"], example["gt_light"] * np.array(scene.LIGHT_MIRROR_SIGNS))
  np.testing.assert_allclose(flipped["gt_view"], example["gt_view"] * np.array(scene.VIEW_MIRROR_SIGNS), rtol=1e-6)
