"""Distribution tests: MirroredStrategy on 2 logical CPUs equals one device; two workers train on 127.0.0.1.

Logical devices must be configured before TensorFlow runs any op, once per process, so each case runs in a
fresh subprocess.
"""

import json
import os
import socket
import subprocess
import sys
import time

import pytest
import tensorflow as tf

import fixtures

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_mirrored_two_cpus_matches_one_device():
  # The reference is the global loss on one device with each network call made on replica-sized halves: the
  # replicas' arithmetic. Run on all 4 images at once, the networks round a few ulp differently, the renderer
  # amplifies that, and a LeakyReLU kink flips: ~5% in one layer's gradient that no reduction caused (the script's
  # docstring and docs/investigations.md, "Distributed gradients at initialisation").
  result = fixtures.python_result([os.path.join(fixtures.DIAGNOSTICS, "mirrored_gradients.py")])
  assert result["replicas"] == 2
  assert result["mirrored_loss"] == pytest.approx(result["replica_shaped_loss"], rel=1e-6)
  assert result["mirrored_loss"] == pytest.approx(result["single_loss"], rel=1e-6)
  assert result["replica_shaped_error"] < 1e-3


# What a worker prints when another process took its port between _free_ports and the worker's bind.
PORT_TAKEN = ("Could not start gRPC server", "Address already in use")


def _free_ports(n):
  sockets = [socket.socket() for _ in range(n)]
  for s in sockets:
    s.bind(("127.0.0.1", 0))
  ports = [s.getsockname()[1] for s in sockets]
  for s in sockets:
    s.close()
  return ports


def _wait_for_workers(procs, expect_exit=0):
  """Waits for every worker; once one exits otherwise than expected, stops the others (a worker whose peer is gone
  waits for it for ever)."""
  deadline = time.monotonic() + fixtures.HANG_GUARD_S  # a guard against hangs, not a time budget
  while any(p.poll() is None for p in procs):
    if any(p.poll() not in (None, expect_exit) for p in procs) or time.monotonic() > deadline:
      for p in procs:
        if p.poll() is None:
          p.kill()
      break
    time.sleep(0.2)
  for p in procs:
    p.wait()


def _run_two_workers(argv, log_dir, attempts=3, worker_args=((), ()), expect_exit=0):
  """Runs `argv` (plus `worker_args[i]`) as worker 0 and 1 of a two-worker cluster on 127.0.0.1 and returns both
  outputs, asserting that both exit with `expect_exit`.

  The ports are free when chosen, but another process may bind one before the worker does; only then is the
  cluster started again on new ports (at most `attempts` times)."""
  for attempt in range(attempts):
    cluster = {"worker": [f"127.0.0.1:{p}" for p in _free_ports(2)]}
    logs = [os.path.join(log_dir, f"worker{index}_attempt{attempt}.log") for index in range(2)]
    procs = []
    for index, log in enumerate(logs):
      env = dict(
        os.environ,
        TF_CPP_MIN_LOG_LEVEL="3",
        TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
      )
      with open(log, "w") as out:  # a file, not a pipe: an unread pipe would block a chatty worker
        procs.append(
          subprocess.Popen(
            list(argv) + list(worker_args[index]), cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, text=True
          )
        )
    _wait_for_workers(procs, expect_exit)
    outputs = []
    for log in logs:
      with open(log) as f:
        outputs.append(f.read())
    if all(p.returncode == expect_exit for p in procs):
      return outputs
    if not any(marker in out for out in outputs for marker in PORT_TAKEN):
      break
  report = "\n".join(
    f"--- worker {i} (exit {p.returncode}):\n{out[-3000:]}" for i, (p, out) in enumerate(zip(procs, outputs))
  )
  raise AssertionError(f"the two-worker run failed:\n{report}")


def _multi_worker_argv(data_dir, *extra):
  """The command line of a debug-size multi-worker training on `data_dir` (each worker's TF_CONFIG comes apart)."""
  return [
    sys.executable,
    "-m",
    "pdr_tf.train",
    f"--gin_file={REPO}/gin/cars_light_view.gin",
    f"--gin_file={REPO}/gin/debug.gin",
    f"--gin_param=Trainer.data_dir={data_dir!r}",
    "--gin_param=Trainer.synthetic_world=None",
    "--gin_param=Trainer.strategy='multi_worker'",
    *extra,
  ]


@pytest.mark.slow
@pytest.mark.longest
def test_two_workers_train_checkpoint_and_resume_together(tmp_path):
  data_dir = fixtures.write_tiny_dataset(tmp_path / "data", num_train=16, num_test=4)
  workdir = tmp_path / "work"
  argv = _multi_worker_argv(data_dir, f"--workdir={workdir}", "--gin_param=Trainer.image_summary_every=0")
  outputs = _run_two_workers(argv, tmp_path)
  assert "2 replica(s)" in outputs[0]
  assert tf.train.latest_checkpoint(str(workdir / "checkpoints")).endswith("ckpt-4")
  assert (workdir / "export" / "1" / "saved_model.pb").exists()

  # A second run of the same cluster resumes every worker from the chief's checkpoint (restored strictly: every
  # variable of the model and the optimizer), and trains on from there.
  outputs = _run_two_workers(
    argv + ["--gin_param=Trainer.train_steps=6", "--gin_param=Trainer.export_at_end=False"], tmp_path
  )
  for out in outputs:
    assert "Resumed from" in out and "ckpt-4 at step 4" in out, out[-3000:]
  assert tf.train.latest_checkpoint(str(workdir / "checkpoints")).endswith("ckpt-6")


@pytest.mark.slow
def test_workers_given_different_work_dirs_stop_together_naming_the_cause(tmp_path):
  # Each worker sees its own folder: without the start-up check, the second would train from scratch beside a
  # resumed chief, or both would wait in a collective; with it, both stop before training, with one message.
  data_dir = fixtures.write_tiny_dataset(tmp_path / "data", num_train=8, num_test=4)
  argv = _multi_worker_argv(data_dir)
  workdirs = [tmp_path / "chief_only", tmp_path / "worker_only"]
  outputs = _run_two_workers(argv, tmp_path, worker_args=[[f"--workdir={w}"] for w in workdirs], expect_exit=1)
  for out in outputs:
    assert "1 worker(s) of this multi-worker run do not share the chief's work dir" in out, out[-3000:]
  assert f"Worker worker 1: it does not see the chief's work dir in {workdirs[1]}" in outputs[1]
  assert not (workdirs[0] / "checkpoints").exists() or not os.listdir(workdirs[0] / "checkpoints")
  assert not [n for n in os.listdir(workdirs[0]) if n.startswith(".pdr_tf_workers-")]  # the token is removed
