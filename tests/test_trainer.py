"""Tests for pdr_tf.training.trainer and the train entry point on tiny data with gin/debug.gin."""

import glob
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import types

import keras
import numpy as np
import pytest
import tensorflow as tf

import fixtures
from pdr_tf import config_checks
from pdr_tf import gin_config
from pdr_tf.data import input_pipeline
from pdr_tf import train
from pdr_tf.training import trainer as trainer_lib
from pdr_tf.training import workdir as workdir_lib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GIN = os.path.join(REPO, "gin")
# The trainer's robustness tests (resume, kill, NaN, lock, corrupt data, no compiler) train with LOOCC off: they test
# the trainer, not the objective, and LOOCC's second re-render doubles the step's tracing (about 33 s against 16 s for
# a 2-step debug run on the 2-core CPU). test_train_main_writes_every_artifact and the two-worker test train the main
# job, LOOCC light + view, end to end.
NO_LOOCC = "LooccConfig.mode='none'"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  return fixtures.write_tiny_dataset(tmp_path_factory.mktemp("data"), num_train=16, num_test=8)


def _argv(workdir, data_dir, *params, experiment="cars_light_view.gin"):
  argv = [
    f"--gin_file={GIN}/{experiment}",
    f"--gin_file={GIN}/debug.gin",
    f"--workdir={workdir}",
    f"--gin_param=Trainer.data_dir={str(data_dir)!r}",
    "--gin_param=Trainer.synthetic_world=None",
  ]
  return argv + [f"--gin_param={p}" for p in params]


def _trainer(workdir, data_dir, *params, experiment="cars_light_view.gin"):
  gin_config.parse(
    [f"{GIN}/{experiment}", f"{GIN}/debug.gin"],
    [f"Trainer.workdir={str(workdir)!r}", f"Trainer.data_dir={str(data_dir)!r}", "Trainer.synthetic_world=None"]
    + list(params),
  )
  return trainer_lib.Trainer()


@pytest.mark.slow
def test_train_main_writes_every_artifact(tmp_path, data_dir):
  workdir = tmp_path / "work"
  assert train.main(_argv(workdir, data_dir)) == 0
  assert (workdir / "operative_config.gin").read_text().count("LooccConfig.mode = 'light_view'") == 1
  assert tf.train.latest_checkpoint(str(workdir / "checkpoints")).endswith("ckpt-4")
  assert glob.glob(str(workdir / "logs" / "train" / "events.out.tfevents.*"))
  assert (workdir / "export" / "1" / "saved_model.pb").exists()
  assert train.main(_argv(workdir, data_dir)) == 0  # the finished command again: nothing to train or export
  assert sorted(os.listdir(workdir / "export")) == ["1"]
  tags = set()
  for event_file in glob.glob(str(workdir / "logs" / "train" / "events.out.tfevents.*")):
    for event in tf.compat.v1.train.summary_iterator(event_file):
      tags.update(v.tag for v in event.summary.value)
  for tag in (
    "loss/total",
    "loss/l1",
    "loss/loocc",
    "loss/loocc_accuracy",
    "learning_rate",
    "images_per_second",
    "images/input",
    "images/reconstruction",
    "images/loocc_augmented",
    "images/new_view_yaw_plus30",
  ):
    assert tag in tags, tag


def _losses(trainer):
  """Begins `trainer` and runs it to the end in loops of 5 steps; the mean total loss of each loop."""
  trainer.begin()
  losses = []
  while int(trainer.step.numpy()) < trainer.train_steps:
    losses.append(trainer.run_steps(5)["total"])
  assert np.isfinite(losses).all()
  return losses


_FAST_FIT = (
  "Trainer.steps_per_loop=5",
  "Trainer.learning_rate=1e-3",
  "Trainer.export_at_end=False",
  "Trainer.checkpoint_every=100",
  "Trainer.image_summary_every=0",
  NO_LOOCC,
)


@pytest.mark.slow
def test_validation_scores_a_fixed_batch_against_ground_truth_and_trivial_predictors(tmp_path):
  data = fixtures.write_tiny_dataset(tmp_path / "data", num_train=8, num_test=2, num_val=6)
  workdir = tmp_path / "work"
  trainer = _trainer(
    workdir,
    data,
    "Trainer.validation_every=2",
    "Trainer.validation_size=4",
    "Trainer.export_at_end=False",
    NO_LOOCC,
  )
  trainer.run()
  lines = (workdir / workdir_lib.VALIDATION_LOG).read_text().splitlines()
  assert len(lines) == 2  # steps 2 and 4
  entry = json.loads(lines[-1])
  assert entry["step"] == 4 and set(entry["ratios"]) == {"view", "light", "normals", "depth"}
  for name in ("view", "light", "normals", "depth"):
    assert entry[f"{name}_trivial"] > 0 and np.isfinite(entry[f"{name}_ratio"]), name
  assert trainer.last_validation["n_images"] == 4 and trainer.last_validation["step"] == 4
  tags = set()
  for event_file in glob.glob(str(workdir / "logs" / "train" / "events.out.tfevents.*")):
    for event in tf.compat.v1.train.summary_iterator(event_file):
      tags.update(v.tag for v in event.summary.value)
  assert {"validation/view_ratio", "validation/normals_trivial", "validation/light_error"} <= tags


def test_validation_is_off_without_ground_truth(tmp_path, data_dir, caplog):
  trainer = _trainer(tmp_path / "work", data_dir, "Trainer.validation_every=2", "Trainer.validation_split='test'")
  with caplog.at_level("INFO"):
    trainer.begin()
  assert trainer.validate() is None
  assert "De-rendering validation off" in caplog.text


@pytest.mark.slow
def test_tiny_run_loss_falls(tmp_path, data_dir):
  losses = _losses(_trainer(tmp_path / "work", data_dir, "Trainer.train_steps=40", *_FAST_FIT))
  assert np.mean(losses[-2:]) < 0.8 * np.mean(losses[:2]), losses


@pytest.mark.slow
@pytest.mark.parametrize(
  "switches",
  [
    ("Renderer.backend='tf'", "Renderer.jit_compile=True"),
    ("Renderer.backend='tf'", "Renderer.jit_compile=True", "Trainer.jit_compile=True"),
    ("Renderer.backend='tf'", "Renderer.jit_compile=True", "Trainer.precision='mixed_bfloat16'"),
    ("Trainer.precision='mixed_float16'",),
  ],
  ids=["renderer_xla", "step_xla", "mixed_bfloat16", "mixed_float16"],
)
def test_performance_switches_train(tmp_path, data_dir, switches):
  trainer = _trainer(tmp_path / "work", data_dir, "Trainer.train_steps=20", *_FAST_FIT, *switches)
  losses = _losses(trainer)
  assert np.mean(losses[-2:]) < 0.8 * np.mean(losses[:2]), losses
  precision = trainer.precision
  assert trainer.model.depth_net.dtype_policy.name == precision  # the networks compute in the policy's dtype
  assert trainer.model.dtype_policy.name == "float32"  # the model's inputs, renderer and outputs do not
  assert all(v.dtype == tf.float32 for v in trainer.model.trainable_variables)
  assert keras.mixed_precision.global_policy().name == "float32"  # restored after building
  assert isinstance(trainer.optimizer, keras.optimizers.LossScaleOptimizer) == (precision == "mixed_float16")
  assert trainer.compiled_step == ("Trainer.jit_compile=True" in switches) and trainer.compiled_update
  out = trainer.model.encode(tf.zeros([1, 64, 64, 3]))
  assert all(v.dtype == tf.float32 for v in out.values())


def test_switch_errors_and_fallbacks_name_the_setting(tmp_path, data_dir, caplog):
  with pytest.raises(ValueError, match="Trainer.precision"):
    _trainer(tmp_path / "a", data_dir, "Trainer.precision='float16'")
  trainer = _trainer(tmp_path / "b", data_dir, "Trainer.jit_compile=True", "Renderer.backend='tfg'")
  trainer.begin()
  assert not trainer.compiled_step and trainer.compiled_update  # one device: the update is still compiled
  assert "Trainer.jit_compile is on, but the step runs uncompiled" in caplog.text and "'tfg'" in caplog.text


def test_a_resumed_run_trains_as_an_uninterrupted_one_and_keeps_the_checkpoint_schedule(tmp_path, data_dir):
  # The data stream is replayed to the resumed step (the same shuffle and flips from the seed), so stopping and
  # resuming changes nothing: the weights after step 8 equal those of a run that never stopped. The stop here is
  # off the checkpoint schedule (step 3, as a preemption save would be); the resumed run saves at the loops reaching
  # multiples of checkpoint_every (4: loops of 2 from step 3 reach it at 5; 8), not every 4 steps from 3.
  common = (
    "Trainer.checkpoint_every=4",
    "Trainer.keep_checkpoints=5",
    "Trainer.export_at_end=False",
    "Trainer.image_summary_every=0",
    NO_LOOCC,
  )
  straight = _trainer(tmp_path / "straight", data_dir, "Trainer.train_steps=8", *common)
  straight.run()
  _trainer(tmp_path / "resumed", data_dir, "Trainer.train_steps=3", *common).run()
  resumed = _trainer(tmp_path / "resumed", data_dir, "Trainer.train_steps=8", *common)
  resumed.run()
  for a, b in zip(straight.model.trainable_variables, resumed.model.trainable_variables):
    np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
  pattern = str(tmp_path / "resumed" / "checkpoints" / "*.index")
  assert sorted(int(p.split("ckpt-")[1].split(".")[0]) for p in glob.glob(pattern)) == [3, 5, 8]


def test_a_resumed_run_drops_the_validation_records_of_the_steps_it_trains_again(tmp_path, data_dir):
  trainer = _trainer(tmp_path / "work", data_dir, NO_LOOCC)
  log = workdir_lib.validation_log(trainer.workdir)
  os.makedirs(trainer.workdir)
  records = [json.dumps({"step": s, "ratios": {"view": 0.5}}) + "\n" for s in (2, 4, 6)]
  with open(log, "w", encoding="utf-8") as f:
    f.writelines(records + ['{"step": 8, "rat'])  # the last line cut off by a kill
  trainer._drop_validations_after(4)  # pylint: disable=protected-access
  with open(log, encoding="utf-8") as f:
    assert f.readlines() == records[:2]
  trainer._drop_validations_after(4)  # nothing more to drop: the file is left as it is
  with open(log, encoding="utf-8") as f:
    assert f.readlines() == records[:2]


def test_restart_resumes_at_saved_step_with_optimizer_state(tmp_path, data_dir, caplog):
  workdir = tmp_path / "work"
  first = _trainer(workdir, data_dir, "Trainer.train_steps=2", "Trainer.export_at_end=False", NO_LOOCC)
  first.run()
  saved_iterations = int(first.optimizer.iterations.numpy())
  saved_weight = first.model.depth_net.trainable_variables[0].numpy()
  # As a multi-worker run saves it: with tf.distribute's preemption count beside the model (test_distributed.py
  # resumes such runs on two workers). One process resumes it too, restoring everything else strictly.
  setattr(first.checkpoint, trainer_lib.PREEMPTION_COUNT_KEY, tf.Variable(7, dtype=tf.int64))
  first.manager.save(checkpoint_number=3)
  second = _trainer(workdir, data_dir, "Trainer.train_steps=4", "Trainer.export_at_end=False", NO_LOOCC)
  second.begin()
  assert int(second.step.numpy()) == 2 and second.manager.latest_checkpoint.endswith("ckpt-3")
  assert int(second.optimizer.iterations.numpy()) == saved_iterations == 2
  np.testing.assert_array_equal(second.model.depth_net.trainable_variables[0].numpy(), saved_weight)
  caplog.set_level(logging.INFO, logger=trainer_lib.logger.name)
  second.train()
  assert int(second.step.numpy()) == 4
  assert "step 4/4 (100 %): loss " in caplog.text  # no terminal here: where the run is goes to the log
  assert "other settings than the run before it" not in caplog.text  # a longer run is the same run
  second.release_workdir()
  config = workdir / workdir_lib.OPERATIVE_CONFIG
  before = config.read_text()
  third = _trainer(workdir, data_dir, "Trainer.train_steps=6", "Trainer.learning_rate=3e-4", NO_LOOCC)
  third.begin()
  third.release_workdir()
  assert "Resuming at step 4 with other settings than the run before it: Trainer.learning_rate." in caplog.text
  assert (workdir / f"{workdir_lib.OPERATIVE_CONFIG}.step-4").read_text() == before  # what steps 1-4 trained with
  assert "Trainer.learning_rate = 0.0003" in config.read_text()
  assert not [p for p in os.listdir(workdir) if ".tmp-" in p]


@pytest.mark.slow
def test_killed_run_resumes_at_its_saved_step(tmp_path, data_dir):
  workdir = tmp_path / "work"
  argv = _argv(
    workdir,
    data_dir,
    "Trainer.train_steps=400",
    "Trainer.export_at_end=False",
    "Trainer.image_summary_every=0",
    NO_LOOCC,
  )
  proc = subprocess.Popen(
    [sys.executable, "-m", "pdr_tf.train"] + argv,
    cwd=REPO,
    stdout=subprocess.DEVNULL,
    stderr=subprocess.DEVNULL,
    env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
  )

  def latest_step():  # the checkpoint state file names a checkpoint only once its files are complete
    latest = tf.train.latest_checkpoint(str(workdir / "checkpoints"))
    return int(latest.rsplit("-", 1)[1]) if latest else 0

  # Wait for the run, however slow the machine: until it has saved step 4 or has ended by itself (then the assertion
  # below names the failure). The deadline only keeps a hung run from hanging CI.
  deadline = time.monotonic() + fixtures.HANG_GUARD_S
  while time.monotonic() < deadline and proc.poll() is None and latest_step() < 4:
    time.sleep(0.5)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  saved = latest_step()
  assert 4 <= saved < 400
  resumed = _trainer(workdir, data_dir, "Trainer.train_steps=400", NO_LOOCC)
  resumed.begin()
  assert int(resumed.step.numpy()) == saved


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, data_dir):
  workdir = tmp_path / "work"
  trainer = _trainer(
    workdir,
    data_dir,
    "Trainer.train_steps=6",
    "Trainer.inject_nan_at_step=2",
    "Trainer.image_summary_every=0",
    NO_LOOCC,
  )
  with pytest.raises(trainer_lib.NonFiniteLossError, match=r"steps 3-4.*Last good checkpoint: .*ckpt-2"):
    trainer.run()
  assert sorted(os.path.basename(p) for p in glob.glob(str(workdir / "checkpoints" / "ckpt-*.index"))) == [
    "ckpt-2.index"
  ]
  assert not (workdir / "export").exists()


def test_non_finite_weights_after_a_finite_loss_stop_before_any_save(tmp_path, data_dir):
  # An update can overflow after its step's loss was computed: the loss is finite and the weights are not. The
  # weights are checked after every loop, before the checkpoint hook could save (or the end export) them.
  workdir = tmp_path / "work"
  trainer = _trainer(workdir, data_dir, "Trainer.train_steps=4", "Trainer.image_summary_every=0", NO_LOOCC)
  trainer.begin()
  good_loop = trainer._train_loop  # pylint: disable=protected-access

  def overflowing_loop(iterator, num_steps):
    scalars = good_loop(iterator, num_steps)
    if int(trainer.step.numpy()) > 2:
      variable = trainer.model.trainable_variables[0]
      variable.assign(tf.fill(tf.shape(variable), np.inf))
    return scalars

  trainer._train_loop = overflowing_loop  # pylint: disable=protected-access
  try:
    with pytest.raises(trainer_lib.NonFiniteLossError, match=r"Non-finite weights after steps 3-4.*ckpt-2"):
      trainer.train()
  finally:
    trainer.release_workdir()
  assert [os.path.basename(p) for p in glob.glob(str(workdir / "checkpoints" / "ckpt-*.index"))] == ["ckpt-2.index"]


def test_nan_loss_exit_code_from_main(tmp_path, data_dir, caplog):
  code = train.main(_argv(tmp_path / "w", data_dir, "Trainer.inject_nan_at_step=0", NO_LOOCC))
  assert code == 1
  assert "Non-finite loss" in caplog.text


def test_gin_typo_in_binding_is_reported_by_name(tmp_path, data_dir, caplog):
  assert train.main(_argv(tmp_path / "w", data_dir, "Trainer.train_stepz=3")) == 2
  assert "train_stepz" in caplog.text
  assert train.main(_argv(tmp_path / "w", data_dir, "Trainr.train_steps=3")) == 2
  assert "Trainr" in caplog.text


def test_gin_typo_in_file_is_reported_by_name(tmp_path, data_dir, caplog):
  bad = tmp_path / "bad.gin"
  bad.write_text("include 'cars_light.gin'\nDeRenderer.zdimm = 3\n")
  assert train.main([f"--gin_file={bad}", f"--workdir={tmp_path / 'w'}"]) == 2
  assert "zdimm" in caplog.text and str(bad) in caplog.text
  assert train.main([f"--gin_file={tmp_path / 'missing.gin'}"]) == 2
  assert "does not exist" in caplog.text


def test_missing_data_names_path_and_command(tmp_path, caplog):
  code = train.main(_argv(tmp_path / "w", tmp_path / "nowhere"))
  assert code == 1
  assert str(tmp_path / "nowhere") in caplog.text and "python -m beam_pipelines" in caplog.text


def test_every_experiment_gin_file_parses():
  for name in ("cars_light_view", "cars_light", "cars_unsup3d", "faces_light_view", "faces_light", "faces_unsup3d"):
    gin_config.parse([f"{GIN}/{name}.gin", f"{GIN}/quick.gin"])
    trainer = trainer_lib.Trainer()
    assert trainer.workdir == f"runs/{name}"
    from pdr_tf.model import loocc

    mode = loocc.LooccConfig().mode
    assert mode == {
      "cars_light_view": "light_view",
      "faces_light_view": "light_view",
      "cars_light": "light",
      "faces_light": "light",
    }.get(name, "none")


def test_help_text():
  out = subprocess.run([sys.executable, "-m", "pdr_tf.train", "--help"], capture_output=True, text=True, cwd=REPO)
  assert out.returncode == 0 and "--gin_file" in out.stdout and "cars_light_view.gin" in out.stdout


def test_jit_compile_falls_back_under_a_distribution_strategy(tmp_path, data_dir, caplog):
  trainer = _trainer(tmp_path / "c", data_dir, "Trainer.jit_compile=True", "Renderer.backend='tf'")
  trainer.model = types.SimpleNamespace(renderer=types.SimpleNamespace(backend="tf"))
  trainer.strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
  assert trainer._check_step_compilable(one_device=True)
  assert not trainer._check_step_compilable(one_device=False)
  assert "MirroredStrategy puts cross-replica collectives in the step" in caplog.text


# --- one workdir, one trainer; bad data and bad configuration are named ---------------------------------------------


def test_a_workdir_in_use_by_another_live_process_is_refused(tmp_path, data_dir, caplog):
  workdir = tmp_path / "work"
  workdir.mkdir()
  other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
  try:
    with open(workdir / workdir_lib.TRAIN_LOCK, "w", encoding="utf-8") as f:
      json.dump({"pid": other.pid, "host": socket.gethostname(), "started": "now", "purpose": "the other run"}, f)
    assert train.main(_argv(workdir, data_dir)) == 1
    assert f"pid {other.pid}" in caplog.text and "the other run" in caplog.text
    assert not (workdir / "checkpoints").exists()  # nothing written
  finally:
    other.kill()
    other.wait()


def test_a_stale_workdir_lock_is_taken_over_with_a_log_line(tmp_path, data_dir, caplog):
  workdir = tmp_path / "work"
  workdir.mkdir()
  dead = subprocess.Popen([sys.executable, "-c", "pass"])
  dead.wait()
  with open(workdir / workdir_lib.TRAIN_LOCK, "w", encoding="utf-8") as f:
    json.dump({"pid": dead.pid, "host": socket.gethostname(), "started": "earlier"}, f)
  trainer = _trainer(workdir, data_dir, "Trainer.export_at_end=False", "Trainer.train_steps=2", NO_LOOCC)
  trainer.run()
  assert "stale lock" in caplog.text and not (workdir / workdir_lib.TRAIN_LOCK).exists()


def _foreign_checkpoints(workdir):
  """Another project's tf.train checkpoints ckpt-100/200/300 (all listed in the state file) and a user's notes."""
  folder = workdir / "checkpoints"
  foreign = tf.train.Checkpoint(weights=tf.Variable(tf.ones([3, 5])), counter=tf.Variable(7, dtype=tf.int64))
  manager = tf.train.CheckpointManager(foreign, str(folder), max_to_keep=None)
  for step in (100, 200, 300):
    manager.save(checkpoint_number=step)
  (folder / "notes.txt").write_text("my notes\n")
  return folder


def test_foreign_checkpoints_in_the_workdir_are_refused_and_kept(tmp_path, data_dir, caplog):
  workdir = tmp_path / "work"
  folder = _foreign_checkpoints(workdir)
  before = fixtures.folder_bytes(workdir)
  assert train.main(_argv(workdir, data_dir, NO_LOOCC)) == 1
  assert f"{folder} holds checkpoints that pdr_tf did not write" in caplog.text
  assert "will not adopt, resume from or prune" in caplog.text and "Resumed from" not in caplog.text
  assert fixtures.folder_bytes(workdir) == before  # every foreign file still there, byte for byte, and nothing added


def test_foreign_checkpoints_behind_a_pdr_tf_looking_config_are_not_resumed(tmp_path, data_dir, caplog):
  """Even when the work dir looks like an earlier pdr_tf run's, a checkpoint that is not this model's is refused."""
  workdir = tmp_path / "work"
  _foreign_checkpoints(workdir)
  (workdir / workdir_lib.OPERATIVE_CONFIG).write_text("DeRenderer.nf = 8\n")
  before = fixtures.folder_bytes(workdir)
  trainer = _trainer(workdir, data_dir, NO_LOOCC)
  with pytest.raises(
    workdir_lib.CheckpointMismatchError,
    match=r"cannot resume from .*ckpt-300: this run's model or optimizer settings differ",
  ):
    trainer.begin()
  trainer.release_workdir()
  assert "Resumed from" not in caplog.text
  assert fixtures.folder_bytes(workdir) == before  # not even pdr_tf's marker is added to a folder it may not adopt


def test_an_operative_config_pdr_tf_did_not_write_is_not_overwritten(tmp_path):
  workdir = tmp_path / "work"
  workdir.mkdir()
  (workdir / workdir_lib.OPERATIVE_CONFIG).write_text("train.steps = 10\n")
  with pytest.raises(workdir_lib.ForeignWorkdirError, match="operative_config.gin was not written by pdr_tf"):
    workdir_lib.claim_for_training(str(workdir))
  assert fixtures.folder_bytes(workdir) == {workdir_lib.OPERATIVE_CONFIG: b"train.steps = 10\n"}


def test_a_checkpoint_of_other_model_settings_is_named_and_kept(tmp_path, data_dir, caplog):
  """A work dir of an earlier pdr_tf (operative config, no marker) resumes; with other model sizes it is refused."""
  workdir = tmp_path / "work"
  _trainer(workdir, data_dir, "Trainer.train_steps=2", "Trainer.export_at_end=False", NO_LOOCC).run()
  assert (workdir / workdir_lib.CHECKPOINTS_MARKER).is_file()
  (workdir / workdir_lib.CHECKPOINTS_MARKER).unlink()  # as an earlier pdr_tf left it
  before = fixtures.folder_bytes(workdir)
  assert train.main(_argv(workdir, data_dir, "DeRenderer.nf=16", NO_LOOCC)) == 1
  assert "cannot resume from" in caplog.text
  # The operative config still describes the checkpoint: it is this run's settings that are named as different.
  assert (
    f"{workdir / 'checkpoints' / 'ckpt-2'}: this run's model or optimizer settings differ from those it was trained "
    f"with (recorded in {workdir / workdir_lib.OPERATIVE_CONFIG})" in caplog.text
  )
  assert "shape" in caplog.text and "Resumed from" not in caplog.text
  assert fixtures.folder_bytes(workdir) == before
  resumed = _trainer(workdir, data_dir, "Trainer.train_steps=4", NO_LOOCC)
  resumed.begin()
  resumed.release_workdir()
  assert int(resumed.step.numpy()) == 2 and (workdir / workdir_lib.CHECKPOINTS_MARKER).is_file()
  # export and probe restore through workdir.restore_model: a config that does not fit its checkpoint is named, and
  # so is a checkpoint index that is not one at all.
  edited = tmp_path / "edited"
  shutil.copytree(workdir, edited)
  with open(edited / workdir_lib.OPERATIVE_CONFIG, "a", encoding="utf-8") as f:
    f.write("\nDeRenderer.nf = 16\n")
  caplog.clear()
  with pytest.raises(workdir_lib.CheckpointMismatchError, match=r"cannot restore .*ckpt-2: .* than .*gin describes"):
    workdir_lib.restore_model(str(edited))
  assert "could not be found in the restored object" not in caplog.text  # no warnings piled on the error
  (edited / "checkpoints" / "ckpt-2.index").write_bytes(b"junk")
  with pytest.raises(workdir_lib.CheckpointReadError, match="not a TensorFlow checkpoint"):
    workdir_lib.restore_model(str(edited))
  for damage in (b"DeRenderer.nf = (\n", b"\xff\xfe garbage\n"):  # cut off mid-binding; not text at all
    (edited / workdir_lib.OPERATIVE_CONFIG).write_bytes(damage)
    with pytest.raises(workdir_lib.WorkdirError, match=f"{edited / workdir_lib.OPERATIVE_CONFIG} cannot be read"):
      workdir_lib.restore_model(str(edited))
  # A cut-off checkpoint is named as unreadable, by training and by everything that restores a model.
  (data_file,) = glob.glob(str(workdir / "checkpoints" / "ckpt-2.data-*"))
  with open(data_file, "r+b") as f:
    f.truncate(os.path.getsize(data_file) // 2)
  before = fixtures.folder_bytes(workdir)
  assert train.main(_argv(workdir, data_dir, NO_LOOCC)) == 1
  assert f"cannot read checkpoint {workdir / 'checkpoints' / 'ckpt-2'}: its files are cut off" in caplog.text
  with pytest.raises(workdir_lib.CheckpointReadError, match="cut off or damaged"):
    workdir_lib.restore_model(str(workdir))
  assert fixtures.folder_bytes(workdir) == before
  a_file = tmp_path / "notes.txt"
  a_file.write_text("mine")
  assert train.main(_argv(a_file, data_dir, NO_LOOCC)) == 1
  assert "is a file, not a folder" in caplog.text and a_file.read_text() == "mine"


def _corrupt_copy(data_dir, tmp_path):
  copy = tmp_path / "corrupt_data"
  shutil.copytree(data_dir, copy)
  shard = sorted(glob.glob(str(copy / "train.tfrecord-*")))[0]
  data = bytearray(open(shard, "rb").read())
  middle = len(data) // 2
  data[middle : middle + 16] = b"\x00" * 16
  with open(shard, "wb") as f:
    f.write(bytes(data))
  return copy, shard


def test_a_data_dir_that_is_a_file_is_refused_before_the_work_dir_is_made(tmp_path):
  a_file = tmp_path / "notes.txt"
  a_file.write_text("mine")
  with pytest.raises(FileNotFoundError, match="notes.txt is a file, not a folder"):
    _trainer(tmp_path / "work", str(a_file)).begin()
  assert not (tmp_path / "work").exists() and a_file.read_text() == "mine"


def test_a_corrupt_shard_is_named_with_its_offset_and_the_recovery(tmp_path, data_dir):
  copy, shard = _corrupt_copy(data_dir, tmp_path)
  trainer = _trainer(tmp_path / "work", copy, "Trainer.export_at_end=False", "Trainer.train_steps=40", NO_LOOCC)
  with pytest.raises(input_pipeline.CorruptDataError) as info:
    trainer.run()
  message = str(info.value)
  assert shard in message and "corrupted record at byte" in message
  assert "--overwrite" in message and "make_dataset.skip_corrupt=True" in message
  # With the switch on, training goes on past the corrupt record and says what it skipped.
  trainer = _trainer(
    tmp_path / "work2",
    copy,
    "Trainer.export_at_end=False",
    "Trainer.train_steps=4",
    "make_dataset.skip_corrupt=True",
    NO_LOOCC,
  )
  trainer.run()
  assert int(trainer.step.numpy()) == 4


def test_the_default_optimizer_takes_the_learning_rate_multipliers_and_how_long_they_hold(tmp_path, data_dir):
  trainer = _trainer(
    tmp_path / "work", data_dir, "Trainer.lr_multipliers={'depth_net': 0.1}", "Trainer.lr_multiplier_steps=5"
  )
  optimizer = trainer_lib.default_optimizer(trainer)
  assert optimizer.lr_multipliers == {"depth_net": 0.1} and optimizer.multiplier_steps == 5
  assert trainer.settings()["lr_multiplier_steps"] == 5


@pytest.mark.parametrize(
  "binding, expected",
  [
    ("Trainer.global_batch_size='4'", "Trainer.global_batch_size must be an integer >= 1, got '4' (str)"),
    ("LooccConfig.mode='lights'", "LooccConfig.mode must be one of"),
    ("Trainer.strategy='mirored'", "Trainer.strategy must be one of"),
    ("Renderer.backend='kernel'", "Renderer.backend must be one of"),
    ("Trainer.lr_multiplier_steps=0", "Trainer.lr_multiplier_steps must be an integer >= 1, got 0"),
  ],
)
def test_configuration_errors_name_the_binding_before_any_work(tmp_path, binding, expected, caplog):
  workdir = tmp_path / "work"
  missing_data = tmp_path / "data" / "cars" / "tfrecords"
  argv = [
    f"--gin_file={GIN}/cars_light_view.gin",
    f"--gin_file={GIN}/debug.gin",
    f"--workdir={workdir}",
    f"--gin_param=Trainer.data_dir={str(missing_data)!r}",
    f"--gin_param={binding}",
  ]
  assert train.main(argv) == 2
  assert expected in caplog.text
  assert not workdir.exists() and not missing_data.exists()  # stopped before start-up and data generation


def test_collaborators_are_injected_and_hooks_run(tmp_path, data_dir):
  """The loop takes its strategy, model, objective, optimizer and dataset from builders, and calls hooks."""
  from pdr_tf.model import de_renderer as model_lib  # pylint: disable=import-outside-toplevel
  from pdr_tf.model import objective as objective_lib  # pylint: disable=import-outside-toplevel

  gin_config.parse([f"{GIN}/cars_unsup3d.gin", f"{GIN}/debug.gin"], [])
  built = []

  def model_builder():
    built.append("model")
    return model_lib.DeRenderer(nf=8, zdim=16, encoder_nf=8)

  def optimizer_builder(trainer):
    built.append("optimizer")
    return keras.optimizers.SGD(learning_rate=1e-3)

  def dataset_builder(strategy, directory, split, batch_size, seed, start_step):
    built.append(("dataset", split, batch_size))
    return trainer_lib.training_dataset(strategy, directory, split, batch_size, seed, start_step)

  class Recorder(trainer_lib.Hook):
    def __init__(self):
      self.loops, self.ended = [], False

    def after_loop(self, trainer, step_before, step, scalars):
      self.loops.append((step_before, step, "total" in scalars))

    def at_end(self, trainer, outputs):
      self.ended = "saved_model" not in outputs  # export_at_end=False: no ExportHook before this one

  recorder = Recorder()
  trainer = trainer_lib.Trainer(
    workdir=str(tmp_path / "work"),
    data_dir=str(data_dir),
    synthetic_world=None,
    train_steps=4,
    global_batch_size=4,
    steps_per_loop=2,
    export_at_end=False,
    strategy=tf.distribute.get_strategy(),
    model_builder=model_builder,
    objective_builder=lambda: objective_lib.Objective(),
    optimizer_builder=optimizer_builder,
    dataset_builder=dataset_builder,
    hooks=[recorder],
  )
  trainer.run()
  assert built == ["model", "optimizer", ("dataset", "train", 4)]
  assert isinstance(trainer.optimizer, keras.optimizers.SGD) and trainer.model.nf == 8
  assert recorder.loops == [(0, 2, True), (2, 4, True)] and recorder.ended
  assert [type(h).__name__ for h in trainer.hooks] == ["SummaryHook", "ValidationHook", "CheckpointHook", "Recorder"]
  assert workdir_lib.latest_checkpoint(str(tmp_path / "work")).endswith("ckpt-4")


def test_the_trainer_does_not_provision_data_the_entry_point_does(tmp_path, monkeypatch):
  calls = []
  monkeypatch.setattr(train.datasets, "ensure_synthetic", lambda world, data_dir: calls.append((world, data_dir)))
  gin_config.parse([f"{GIN}/cars_unsup3d.gin", f"{GIN}/debug.gin"], [])
  trainer = trainer_lib.Trainer(workdir=str(tmp_path / "w"), data_dir=str(tmp_path / "d"), synthetic_world="cars")
  with pytest.raises(FileNotFoundError):
    trainer.begin()  # no data and no provisioning inside the trainer
  trainer.release_workdir()
  assert calls == []
  train.prepare_data(trainer)
  assert calls == [("cars", str(tmp_path / "d"))]


def test_main_names_a_missing_workdir_and_refuses_to_generate_over_foreign_data(tmp_path, caplog):
  # Trainer.workdir is required: a gin stack without it (and no --workdir) is an incomplete configuration.
  assert train.main([f"--gin_file={GIN}/debug.gin"]) == 2
  assert "Configuration incomplete" in caplog.text and "workdir" in caplog.text
  # The synthetic world is never generated into a folder holding data pdr_tf did not write: exit 1, data untouched.
  data = tmp_path / "data"
  data.mkdir()
  (data / "mine.txt").write_text("the user's")
  argv = [f"--gin_file={GIN}/cars_unsup3d.gin", f"--gin_file={GIN}/debug.gin", f"--workdir={tmp_path / 'work'}"]
  assert train.main(argv + [f"--gin_param=Trainer.data_dir={str(data)!r}"]) == 1
  assert f"Data for {data}" in caplog.text and "never writes the synthetic cars world" in caplog.text
  assert os.listdir(data) == ["mine.txt"] and (data / "mine.txt").read_text() == "the user's"
  assert not (tmp_path / "work").exists()


def test_main_refuses_an_empty_workdir_a_bad_log_level_and_unreadable_data_with_one_line(tmp_path, data_dir, caplog):
  """An empty --workdir (an unset shell variable) is refused, not ignored in favour of the gin file's; a log level
  that is not one is a usage error; a data folder whose manifest is not JSON, or a work dir under a file, is exit 1
  naming the path (a ValueError and an OSError out of the run were tracebacks)."""
  gin_files = [f"--gin_file={GIN}/cars_unsup3d.gin", f"--gin_file={GIN}/debug.gin"]
  assert train.main(gin_files + ["--workdir="]) == 2
  assert "Trainer.workdir must be a non-empty string" in caplog.text
  with pytest.raises(SystemExit) as raised:
    train.main(gin_files + ["--workdir=x", "--log_level=verbose"])
  assert raised.value.code == 2
  data = tmp_path / "data"
  data.mkdir()
  (data / "manifest.json").write_text("{not json")
  no_world = [f"--gin_param=Trainer.data_dir={str(data)!r}", "--gin_param=Trainer.synthetic_world=None"]
  assert train.main(gin_files + no_world + [f"--workdir={tmp_path / 'work'}"]) == 1
  assert f"{data / 'manifest.json'} is not a readable manifest" in caplog.text
  assert "where it was raised" not in caplog.text
  caplog.set_level(logging.DEBUG, logger=train.logger.name)  # what --log_level=debug sets up outside pytest
  assert train.main(gin_files + no_world + [f"--workdir={tmp_path / 'work'}", "--log_level=debug"]) == 1
  assert "where it was raised (--log_level=debug)" in caplog.text and "Traceback" in caplog.text
  caplog.clear()
  (tmp_path / "a_file").write_text("the user's")
  blocked = [f"--workdir={tmp_path / 'a_file' / 'run'}", f"--gin_param=Trainer.data_dir={data_dir!r}", no_world[1]]
  assert train.main(gin_files + blocked) == 1
  assert str(tmp_path / "a_file") in caplog.text.splitlines()[-1]
  assert (tmp_path / "a_file").read_text() == "the user's"


@pytest.mark.slow
def test_training_needs_no_cpp_compiler(tmp_path, data_dir):
  """With no compiler on PATH (nor in CXX) and no cached kernel, the shipped Renderer.backend='auto' trains with the
  pure-TF rasterizer and never tries to build the C++ kernel: the default install needs no compiler."""
  empty_bin = tmp_path / "bin"
  empty_bin.mkdir()
  env = {k: v for k, v in os.environ.items() if k != "CXX"}
  env.update(PATH=str(empty_bin), PDR_TF_CACHE_DIR=str(tmp_path / "cache"))
  argv = _argv(tmp_path / "work", data_dir, "Trainer.export_at_end=False", "Renderer.backend='auto'", NO_LOOCC)
  result = subprocess.run(
    [sys.executable, "-m", "pdr_tf.train", *argv],
    cwd=REPO,
    env=env,
    capture_output=True,
    text=True,
    timeout=fixtures.HANG_GUARD_S,
  )
  assert result.returncode == 0, result.stderr[-3000:]
  assert "kernel" not in result.stderr.lower(), result.stderr[-3000:]  # no build attempted, no fallback warning
  assert not os.path.exists(tmp_path / "cache" / "kernels") or not glob.glob(str(tmp_path / "cache" / "**" / "*.so"))


_OVERFLOW_SCRIPT = """
import json
import numpy as np
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
from pdr_tf.training import trainer

strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
result = {}
for agree in (False, True):
  with strategy.scope():
    weight = tf.Variable([1.0, 2.0])
    optimizer = keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.1), initial_scale=8.0)
    optimizer.build([weight])

  @tf.function
  def step():
    def replica_fn():
      replica = tf.distribute.get_replica_context().replica_id_in_sync_group
      grads = [tf.where(replica == 1, tf.constant([np.inf, 1.0]), tf.constant([1.0, 1.0]))]  # replica 1 overflows
      if agree:
        grads = trainer.agree_on_overflow(grads)
      optimizer.apply_gradients(zip(grads, [weight]))

    strategy.run(replica_fn)

  step()
  result[str(agree)] = {"weight": [float(w) for w in weight.numpy()], "scale": float(optimizer.dynamic_scale.numpy())}
print("RESULT " + json.dumps(result))
"""


@pytest.mark.slow
def test_an_overflow_on_any_replica_skips_the_step_on_every_replica():
  """Keras' LossScaleOptimizer checks only the first replica's gradients: an overflow on the second reaches the
  weights through the cross-replica sum. agree_on_overflow (applied by the trainer under mixed_float16 with more than
  one replica) makes every replica skip the step and lower the loss scale."""
  result = fixtures.python_result(["-c", _OVERFLOW_SCRIPT])
  assert not np.all(np.isfinite(result["False"]["weight"]))  # what Keras alone does
  assert result["True"] == {"weight": [1.0, 2.0], "scale": 4.0}  # skipped everywhere, the scale halved


def test_a_non_chief_removes_its_temporary_checkpoints_when_a_run_stops_early(tmp_path, data_dir):
  """A non-chief worker writes its share of each collective save into a fresh temporary folder per start; a run that
  stops early (a non-finite loss, a preemption exit) must not leave it behind."""
  trainer = _trainer(tmp_path / "work", data_dir, NO_LOOCC)
  worker_tmp = tmp_path / "pdr_tf_worker_1_x"
  (worker_tmp / "checkpoints").mkdir(parents=True)

  def begin():
    trainer.chief = False
    trainer.manager = types.SimpleNamespace(directory=str(worker_tmp / "checkpoints"))

  def train():
    raise trainer_lib.NonFiniteLossError("stopped")

  trainer.begin, trainer.train = begin, train
  with pytest.raises(trainer_lib.NonFiniteLossError):
    trainer.run()
  assert not worker_tmp.exists()


def test_restore_model_names_the_step_asked_for(tmp_path):
  workdir = tmp_path / "run"
  (workdir / "checkpoints").mkdir(parents=True)
  (workdir / workdir_lib.OPERATIVE_CONFIG).write_text("DeRenderer.nf = 8\n")
  with pytest.raises(FileNotFoundError, match=r"no checkpoint at step 0 in "):
    workdir_lib.restore_model(str(workdir), step=0)


@pytest.mark.parametrize("name", ["run[1]", "run*", "run?"])
def test_a_workdir_named_like_a_file_pattern_is_refused(tmp_path, name):
  """TensorFlow finds a checkpoint's files by pattern: a run in runs/exp[1] would not find its own checkpoints."""
  with pytest.raises(config_checks.ConfigError, match=r"holds one of \* \? \[ \]"):
    trainer_lib.Trainer(workdir=str(tmp_path / name))


def test_the_progress_line_says_where_a_run_is_and_how_long_it_has_left():
  assert trainer_lib.progress_line(300, 1200, 0.12345, 200, 100.0) == (
    "step 300/1200 (25 %): loss 0.1235, 2.00 steps/s, about 7 min 30 s left"
  )
  assert trainer_lib.progress_line(1200, 1200, 0.1, 1200, 400.0) == "step 1200/1200 (100 %): loss 0.1000, 3.00 steps/s"
  assert trainer_lib.progress_line(10, 20, 0.5, 0, 0.0) == "step 10/20 (50 %): loss 0.5000, 0.00 steps/s"
