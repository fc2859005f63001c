"""Distribution tests: MirroredStrategy on 2 logical CPUs equals one device; two workers train on 127.0.0.1.

Logical devices must be configured before TensorFlow runs any op, once per process, so each case runs in a
fresh subprocess.
"""

import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest
import tensorflow as tf

import fixtures

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

MIRRORED_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from pdr_tf.model import losses

    from pdr_tf.model import loocc
    from pdr_tf.model import de_renderer as model
    from pdr_tf.model import objective
    GLOBAL_BATCH = 4
    weights = losses.ReconstructionWeights.cars()
    # Zero perturbation widths make x_aug independent of the per-replica noise seeds, so both set-ups see the
    # same augmented images; the contrastive negatives still come from all replicas.
    config = loocc.LooccConfig(mode="light", ka_delta=0.0, kd_delta=0.0, light_dir_delta=0.0)
    images = tf.random.stateless_uniform([GLOBAL_BATCH, 64, 64, 3], [3, 4], -1.0, 1.0)
    seed = tf.constant([0, 7], tf.int64)

    def build():
        keras.utils.set_random_seed(0)
        # Glorot initialisation: with the default PyTorch-style one the LOOCC gradients of the albedo encoder differ
        # by ~5% of their maximum between the two set-ups while the losses agree to 1e-7, and GroupNorm epsilon 1e-3
        # instead of 1e-5 removes the difference: an ill-conditioned point at that initialisation (open, see
        # docs/investigations.md), not a reduction error, which this test is about.
        m = model.DeRenderer(nf=8, zdim=16, encoder_nf=8, initializer="glorot")
        m.build_for_inference()
        return m, objective.Objective(weights=weights, loocc_config=config)

    single, single_objective = build()
    with tf.GradientTape() as tape:
        loss = tf.nn.compute_average_loss(single_objective(single, images, seed)["total"],
                                          global_batch_size=GLOBAL_BATCH)
    grads = tape.gradient(loss, single.trainable_variables)

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        mirrored, mirrored_objective = build()
    mirrored.set_weights(single.get_weights())
    per_replica_images = strategy.experimental_distribute_values_from_function(
        lambda ctx: images[2 * ctx.replica_id_in_sync_group: 2 * ctx.replica_id_in_sync_group + 2])

    @tf.function
    def replica_fn(x):
        with tf.GradientTape() as tape:
            loss = tf.nn.compute_average_loss(mirrored_objective(mirrored, x, seed)["total"],
                                              global_batch_size=GLOBAL_BATCH)
        return loss, tape.gradient(loss, mirrored.trainable_variables)

    loss_pr, grads_pr = strategy.run(replica_fn, args=(per_replica_images,))
    mirrored_loss = strategy.reduce("SUM", loss_pr, axis=None)
    mirrored_grads = [strategy.reduce("SUM", g, axis=None) for g in grads_pr]
    grad_error = max(float(tf.reduce_max(tf.abs(a - b)) / (tf.reduce_max(tf.abs(a)) + 1e-12))
                     for a, b in zip(grads, mirrored_grads))
    print(json.dumps({"replicas": strategy.num_replicas_in_sync, "single_loss": float(loss),
                      "mirrored_loss": float(mirrored_loss), "grad_error": grad_error}))
""")


def _run_json(script, timeout=fixtures.HANG_GUARD_S):
  out = subprocess.run(
    [sys.executable, "-c", script],
    capture_output=True,
    text=True,
    cwd=REPO,
    timeout=timeout,
    env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
  )
  assert out.returncode == 0, out.stderr[-3000:]
  return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_mirrored_two_cpus_matches_one_device():
  result = _run_json(MIRRORED_SCRIPT)
  assert result["replicas"] == 2
  assert result["mirrored_loss"] == pytest.approx(result["single_loss"], rel=1e-4)
  assert result["grad_error"] < 1e-3


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
