"""Distribution tests: MirroredStrategy on 2 logical CPUs equals one device; two workers train on 127.0.0.1.

Logical devices must be configured before TensorFlow runs any op, once per process, so each case runs in a
fresh subprocess.
"""

import json
import os
import socket
import subprocess
import sys

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
  out = subprocess.run(
    [sys.executable, os.path.join(fixtures.DIAGNOSTICS, "mirrored_gradients.py")],
    capture_output=True,
    text=True,
    cwd=REPO,
    timeout=fixtures.HANG_GUARD_S,
    env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
  )
  assert out.returncode == 0, out.stderr[-3000:]
  result = json.loads([line for line in out.stdout.splitlines() if line.startswith("RESULT ")][-1][len("RESULT ") :])
  assert result["replicas"] == 2
  assert result["mirrored_loss"] == pytest.approx(result["replica_shaped_loss"], rel=1e-6)
  assert result["mirrored_loss"] == pytest.approx(result["single_loss"], rel=1e-6)
  assert result["replica_shaped_error"] < 1e-3


def _free_ports(n):
  sockets = [socket.socket() for _ in range(n)]
  for s in sockets:
    s.bind(("127.0.0.1", 0))
  ports = [s.getsockname()[1] for s in sockets]
  for s in sockets:
    s.close()
  return ports


def _run_two_workers(argv):
  """Runs `argv` as worker 0 and 1 of a two-worker cluster on 127.0.0.1 and returns both outputs (asserting exit 0)."""
  ports = _free_ports(2)
  cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
  procs = []
  for index in range(2):
    env = dict(
      os.environ,
      TF_CPP_MIN_LOG_LEVEL="3",
      TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
    )
    procs.append(subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
  outputs = [p.communicate(timeout=fixtures.HANG_GUARD_S)[0] for p in procs]
  logs = "\n".join(
    f"--- worker {i} (exit {p.returncode}):\n{out[-3000:]}" for i, (p, out) in enumerate(zip(procs, outputs))
  )
  assert all(p.returncode == 0 for p in procs), logs
  return outputs


@pytest.mark.slow
@pytest.mark.longest
def test_two_workers_train_checkpoint_and_resume_together(tmp_path):
  data_dir = fixtures.write_tiny_dataset(tmp_path / "data", num_train=16, num_test=4)
  workdir = tmp_path / "work"
  argv = [
    sys.executable,
    "-m",
    "pdr_tf.train",
    f"--gin_file={REPO}/gin/cars_light_view.gin",
    f"--gin_file={REPO}/gin/debug.gin",
    f"--workdir={workdir}",
    f"--gin_param=Trainer.data_dir={data_dir!r}",
    "--gin_param=Trainer.synthetic_world=None",
    "--gin_param=Trainer.strategy='multi_worker'",
    "--gin_param=Trainer.image_summary_every=0",
  ]
  outputs = _run_two_workers(argv)
  assert "2 replica(s)" in outputs[0]
  assert tf.train.latest_checkpoint(str(workdir / "checkpoints")).endswith("ckpt-4")
  assert (workdir / "export" / "1" / "saved_model.pb").exists()

  # A second run of the same cluster resumes every worker from the chief's checkpoint (restored strictly: every
  # variable of the model and the optimizer), and trains on from there.
  outputs = _run_two_workers(argv + ["--gin_param=Trainer.train_steps=6", "--gin_param=Trainer.export_at_end=False"])
  for out in outputs:
    assert "Resumed from" in out and "ckpt-4 at step 4" in out, out[-3000:]
  assert tf.train.latest_checkpoint(str(workdir / "checkpoints")).endswith("ckpt-6")
