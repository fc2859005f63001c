"""Tests of pdr_tf.export: SavedModel signatures round-trip in a fresh process, input errors, version folders."""

import io
import json
import os
import stat
import struct
import subprocess
import sys
import textwrap
import types
import zlib

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from tensorflow.core.protobuf import saved_model_pb2

import fixtures
from pdr_tf import export
from pdr_tf.training import workdir as workdir_lib

SIZE = 64


class StandInModel(keras.Model):
  """A tiny model with the de-renderer's interface (encode / de_render on [B, 64, 64, 3] in [-1, 1])."""

  def __init__(self, dims=(5, 4, 3, 2), seed=0):
    super().__init__()

    def init(i):
      return keras.initializers.RandomNormal(stddev=0.5, seed=seed + i)

    self.conv = keras.layers.Conv2D(4, 8, strides=8, kernel_initializer=init(10))
    self.depth_head = keras.layers.Dense(dims[0], kernel_initializer=init(0))
    self.albedo_head = keras.layers.Dense(dims[1], kernel_initializer=init(1))
    self.light_head = keras.layers.Dense(dims[2], kernel_initializer=init(2))
    self.view_head = keras.layers.Dense(dims[3], kernel_initializer=init(3))

  def _pooled(self, images):
    conv = tf.reduce_mean(self.conv(images), axis=[1, 2])
    return tf.concat([tf.reduce_mean(images, axis=[1, 2]), 0.1 * conv], axis=-1)

  def encode(self, images, training=False):
    del training
    pooled = self._pooled(images)
    return {
      "depth": self.depth_head(pooled),
      "albedo": self.albedo_head(pooled),
      "light": tf.tanh(self.light_head(pooled)),
      "view": tf.tanh(self.view_head(pooled)),
    }

  def de_render(self, images, training=False):
    del training
    mean = tf.reduce_mean(images, axis=[1, 2])  # [B, 3]
    depth = 1.0 + 0.1 * images[..., 2]
    zeros = tf.zeros_like(mean[:, :1])
    return {
      "depth": depth,
      "albedo": images,
      "light": tf.concat([0.5 + zeros, 0.5 + zeros, 0.5 * mean[:, :2]], axis=-1),
      "view": tf.concat([0.1 * mean[:, :2], zeros, zeros, zeros, zeros], axis=-1),
      "recon_image": -images,
      "recon_depth": depth,
      "mask": tf.ones_like(depth),
    }

  def call(self, images, training=False):
    return self.encode(images, training=training)


def encode_png(array):
  buffer = io.BytesIO()
  Image.fromarray(array).save(buffer, format="PNG")
  return buffer.getvalue()


def encode_jpeg(array):
  buffer = io.BytesIO()
  Image.fromarray(array).save(buffer, format="JPEG", quality=95)
  return buffer.getvalue()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
  model = StandInModel()
  base = str(tmp_path_factory.mktemp("export"))
  version_dir = export.export_model(model, base, image_size=SIZE)
  loaded = tf.saved_model.load(version_dir)
  return model, base, version_dir, loaded


def expected_features(model, images_m11):
  features = {k: v.numpy() for k, v in model.encode(tf.constant(images_m11, tf.float32)).items()}
  out = {f"{k}_features": v for k, v in features.items()}
  out["embedding"] = np.concatenate([features["depth"], features["albedo"]], axis=-1)
  return out


_CHILD = textwrap.dedent("""
    import os, sys
    import numpy as np
    import tensorflow as tf
    version_dir, inputs_path, outputs_path = sys.argv[1:4]
    data = np.load(inputs_path, allow_pickle=False)
    loaded = tf.saved_model.load(version_dir)
    out = {"signatures": np.array(sorted(loaded.signatures))}
    serving = loaded.signatures["serving_default"]
    out["serving_inputs"] = np.array(sorted(serving.structured_input_signature[1]))
    for k, v in serving(image_bytes=tf.constant(list(data["png"]))).items():
        out["png/" + k] = v.numpy()
    for k, v in serving(image_bytes=tf.constant([bytes(data["jpeg"])])).items():
        out["jpeg/" + k] = v.numpy()
    for k, v in loaded.signatures["embed_images"](images=tf.constant(data["floats"])).items():
        out["embed/" + k] = v.numpy()
    for k, v in loaded.signatures["de_render"](images=tf.constant(data["floats"])).items():
        out["derender/" + k] = v.numpy()
    # The graph-mode (TF1 session) loader, which TF Serving and `saved_model_cli run` use.
    with tf.compat.v1.Graph().as_default() as graph, tf.compat.v1.Session(graph=graph) as sess:
        meta_graph = tf.compat.v1.saved_model.load(sess, ["serve"], version_dir)
        for name, key, value in (("serving_default", "image_bytes", np.array(list(data["png"]), dtype=object)),
                                 ("embed_images", "images", data["floats"])):
            signature = meta_graph.signature_def[name]
            fetches = {k: v.name for k, v in signature.outputs.items()}
            for k, v in sess.run(fetches, {signature.inputs[key].name: value}).items():
                out["session_" + name + "/" + k] = v
    np.savez(outputs_path, **out)
""")


def test_round_trip_in_fresh_process_matches_in_memory_model(exported, tmp_path):
  model, _, version_dir, _ = exported
  rng = np.random.RandomState(0)
  pixels = rng.randint(0, 256, size=(3, SIZE, SIZE, 3)).astype(np.uint8)
  big = rng.randint(0, 256, size=(80, 96, 3)).astype(np.uint8)  # not 64x64: resized by serving_default
  floats = rng.uniform(0, 1, size=(2, SIZE, SIZE, 3)).astype(np.float32)
  inputs = tmp_path / "inputs.npz"
  np.savez(
    inputs,
    png=np.array([encode_png(p) for p in pixels], dtype=object).astype(bytes),
    jpeg=np.void(encode_jpeg(big)),
    floats=floats,
  )
  outputs = tmp_path / "outputs.npz"
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
  proc = subprocess.run(
    [sys.executable, "-c", _CHILD, version_dir, str(inputs), str(outputs)],
    env=env,
    capture_output=True,
    text=True,
    timeout=fixtures.HANG_GUARD_S,
    check=False,
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  got = np.load(outputs)
  assert list(got["signatures"]) == ["de_render", "embed_images", "serving_default"]
  assert list(got["serving_inputs"]) == ["image_bytes"]

  want = expected_features(model, pixels.astype(np.float32) / 127.5 - 1.0)
  for key in export.EMBEDDING_OUTPUTS:
    np.testing.assert_allclose(got[f"png/{key}"], want[key], atol=1e-5, err_msg=key)
  assert got["png/embedding"].shape == (3, 9)

  decoded = tf.io.decode_jpeg(encode_jpeg(big), channels=3)
  resized = tf.image.resize(tf.cast(decoded, tf.float32), [SIZE, SIZE], antialias=True).numpy()
  want = expected_features(model, np.clip(resized, 0, 255)[None] / 127.5 - 1.0)
  np.testing.assert_allclose(got["jpeg/embedding"], want["embedding"], atol=1e-5)

  want = expected_features(model, floats * 2.0 - 1.0)
  for key in export.EMBEDDING_OUTPUTS:
    np.testing.assert_allclose(got[f"embed/{key}"], want[key], atol=1e-5, err_msg=key)
    np.testing.assert_allclose(got[f"session_embed_images/{key}"], want[key], atol=1e-5, err_msg=key)
    np.testing.assert_allclose(got[f"session_serving_default/{key}"], got[f"png/{key}"], atol=1e-6, err_msg=key)

  scene = {k: v.numpy() for k, v in model.de_render(tf.constant(floats * 2.0 - 1.0)).items()}
  np.testing.assert_allclose(got["derender/depth"], scene["depth"], atol=1e-6)
  np.testing.assert_allclose(got["derender/albedo"], floats, atol=1e-6)  # [-1, 1] -> [0, 1] at the boundary
  np.testing.assert_allclose(got["derender/recon_image"], 1.0 - floats, atol=1e-6)
  np.testing.assert_allclose(got["derender/light"], scene["light"], atol=1e-6)
  np.testing.assert_allclose(got["derender/view"], scene["view"], atol=1e-6)
  assert got["derender/mask"].shape == (2, SIZE, SIZE)


def test_export_info_records_dims_and_signatures(exported):
  _, _, version_dir, _ = exported
  with open(os.path.join(version_dir, export.INFO_FILENAME), encoding="utf-8") as f:
    info = json.load(f)
  assert info["version"] == 1
  assert info["image_size"] == SIZE
  assert info["feature_dims"] == {
    "embedding": 9,
    "depth_features": 5,
    "albedo_features": 4,
    "light_features": 3,
    "view_features": 2,
  }
  assert sorted(info["signatures"]) == sorted(export.SIGNATURES)
  assert list(info["functions"]) == [export.UNCHECKED_DE_RENDER]  # evaluate's check-free de_render
  assert info["custom_ops"] == []
  assert not [n for n in os.listdir(os.path.dirname(version_dir)) if n.startswith(".tmp")]


def test_export_folders_are_world_readable(exported):
  # A model server running as another user must read every file (mkdtemp makes its staging folder 0700).
  _, _, version_dir, _ = exported
  assert stat.S_IMODE(os.stat(version_dir).st_mode) == 0o755
  for root, dirs, files in os.walk(version_dir):
    for name in dirs:
      assert stat.S_IMODE(os.stat(os.path.join(root, name)).st_mode) == 0o755, name
    for name in files:
      assert stat.S_IMODE(os.stat(os.path.join(root, name)).st_mode) == 0o644, name


def test_empty_batches_return_empty_outputs(exported):
  loaded = exported[3]
  out = loaded.signatures["serving_default"](image_bytes=tf.constant([], tf.string))
  assert out["embedding"].shape == (0, 9) and out["view_features"].shape == (0, 2)
  out = loaded.signatures["embed_images"](images=tf.zeros([0, SIZE, SIZE, 3]))
  assert out["depth_features"].shape == (0, 5)
  out = loaded.signatures["de_render"](images=tf.zeros([0, SIZE, SIZE, 3]))
  assert out["depth"].shape == (0, SIZE, SIZE) and out["albedo"].shape == (0, SIZE, SIZE, 3)
  assert out["light"].shape == (0, 4) and out["mask"].shape == (0, SIZE, SIZE)


def test_empty_batch_handling_runs_the_model_once_per_trace():
  """An export signature traces its model once: an empty batch runs it on one blank image through the same trace
  and keeps zero rows, a non-empty one runs it on the images as they are."""
  traces = []

  def compute(batch):
    traces.append(batch.shape)
    rows = tf.shape(batch)[0]
    return {"sum": tf.reduce_sum(batch, axis=[1, 2, 3]), "rows": tf.fill([rows], rows)}

  run = tf.function(lambda x: export._unless_empty(x, compute), input_signature=[tf.TensorSpec([None, 2, 2, 3])])
  empty = run(tf.zeros([0, 2, 2, 3]))
  assert len(traces) == 1
  assert empty["sum"].shape == (0,) and empty["rows"].shape == (0,)
  full = run(tf.ones([3, 2, 2, 3]))
  assert len(traces) == 1
  np.testing.assert_allclose(full["sum"].numpy(), [12.0, 12.0, 12.0])
  np.testing.assert_array_equal(full["rows"].numpy(), [3, 3, 3])  # the images themselves, not a padded batch


def test_undecodable_bytes_give_clear_error(exported):
  serving = exported[3].signatures["serving_default"]
  good = encode_png(np.zeros((SIZE, SIZE, 3), np.uint8))
  with pytest.raises(tf.errors.InvalidArgumentError, match=r"image_bytes\[.*1.*\] is not a JPEG or PNG"):
    serving(image_bytes=tf.constant([good, b"not an image at all"]))
  with pytest.raises(tf.errors.InvalidArgumentError, match="is not a JPEG or PNG"):
    serving(image_bytes=tf.constant([b""]))
  truncated = encode_jpeg(np.full((SIZE, SIZE, 3), 128, np.uint8))[:40]
  with pytest.raises(tf.errors.InvalidArgumentError):
    serving(image_bytes=tf.constant([truncated]))


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "BMP"])
def test_the_declared_size_is_read_from_the_header(fmt):
  buffer = io.BytesIO()
  Image.fromarray(np.zeros((30, 50, 3), np.uint8)).save(buffer, format=fmt)
  assert [int(v) for v in export.declared_size(tf.constant(buffer.getvalue()))] == [30, 50]


def test_an_image_declaring_a_huge_canvas_is_refused_before_decoding(exported):
  serving = exported[3].signatures["serving_default"]
  ihdr = struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0)  # a 30 GB canvas in a 45-byte file
  bomb = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
  with pytest.raises(tf.errors.InvalidArgumentError, match=r"image_bytes\[0\] declares 100000 x 100000 pixels"):
    serving(image_bytes=tf.constant([bomb]))
  large = encode_jpeg(np.zeros((4100, 4100, 3), np.uint8))
  with pytest.raises(tf.errors.InvalidArgumentError, match=r"declares 4100 x 4100 pixels, more than the 16777216"):
    serving(image_bytes=tf.constant([large]))


def test_greyscale_png_is_accepted_as_rgb(exported):
  model, _, _, loaded = exported
  grey = np.arange(SIZE * SIZE, dtype=np.int64).reshape(SIZE, SIZE) % 256
  out = loaded.signatures["serving_default"](image_bytes=tf.constant([encode_png(grey.astype(np.uint8))]))
  rgb = np.repeat(grey[..., None], 3, axis=-1).astype(np.float32)[None] / 127.5 - 1.0
  np.testing.assert_allclose(out["embedding"].numpy(), expected_features(model, rgb)["embedding"], atol=1e-5)


@pytest.mark.parametrize("signature", ["embed_images", "de_render"])
@pytest.mark.parametrize(
  "shape, value, message",
  [
    ((2, 32, 32, 3), 0.5, r"must have shape \[N, 64, 64, 3\]"),
    ((2, SIZE, SIZE, 1), 0.5, r"must have shape \[N, 64, 64, 3\]"),
    ((SIZE, SIZE, 3), 0.5, "must have rank 4"),
    ((1, 2, SIZE, SIZE, 3), 0.5, "must have rank 4"),
    ((1, SIZE, SIZE, 3), 255.0, r"in \[0, 1\]"),
    ((1, SIZE, SIZE, 3), np.nan, r"in \[0, 1\]"),
  ],
)
def test_float_signatures_check_inputs(exported, signature, shape, value, message):
  fn = exported[3].signatures[signature]
  with pytest.raises(tf.errors.InvalidArgumentError, match=f"{signature}: .*{message}"):
    fn(images=tf.fill(shape, tf.constant(value, tf.float32)))


def test_versions_increment_and_never_overwrite(tmp_path):
  model = StandInModel(dims=(2, 2, 2, 2))
  base = str(tmp_path / "exp")
  first = export.export_model(model, base)
  second = export.export_model(model, base)
  assert os.path.basename(first) == "1" and os.path.basename(second) == "2"
  assert export.list_versions(base) == [1, 2]
  assert export.next_version(base) == 3
  taken = r"already exists \(nothing was changed\); choose another version, or leave it unset \(no --version\)"
  with pytest.raises(ValueError, match=taken + " for the next free one, 3"):
    export.export_model(model, base, version=2)
  assert export.resolve_saved_model_dir(base) == second
  os.makedirs(os.path.join(base, "7"))  # an empty (e.g. half-copied) folder is not a SavedModel
  assert export.resolve_saved_model_dir(base) == second


def test_a_killed_exports_staging_folder_is_removed_by_the_next_export_and_nothing_else(tmp_path, caplog):
  from pdr_tf.data import locks  # pylint: disable=import-outside-toplevel

  base = tmp_path / "exp"
  # No process has a pid above the kernel's largest: a pid that is certainly not running.
  dead_pid, here = int(open("/proc/sys/kernel/pid_max", encoding="ascii").read()) + 1, locks.pid_space_tag()
  dead = base / f".tmp-1-{dead_pid}@{here}-abc123de"  # an export killed before its rename: its pid no longer runs
  kept = {
    f".tmp-1-{os.getpid()}@{here}-def456gh": "an export of this host still running",
    f".tmp-1-{dead_pid}@{'0' * 8 if here != '0' * 8 else '1' * 8}-ghi789jk": "another host's: its pid says nothing",
    ".tmp-1-jkl012mn": "an older pdr_tf's, without a pid",
    ".tmp-notes": "the user's own",
    ".tmp-3-notes": "the user's own, with a number",
  }
  for folder in [dead, *(base / name for name in kept)]:
    folder.mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(b"partial")
  version_dir = export.export_model(StandInModel(dims=(2, 2, 2, 2)), str(base))
  assert os.path.basename(version_dir) == "1"
  assert sorted(os.listdir(base)) == sorted(["1", *kept])
  assert all((base / name / "saved_model.pb").read_bytes() == b"partial" for name in kept)
  assert f"Removed {dead}: the unfinished staging folder of an export (pid {dead_pid})" in caplog.text
  assert ".tmp-1-jkl012mn" in caplog.text and "Delete it by hand" in caplog.text
  assert ".tmp-notes" not in caplog.text and ".tmp-3-notes" not in caplog.text


def test_an_export_that_loses_the_race_for_a_version_changes_nothing(tmp_path, monkeypatch, caplog):
  base = tmp_path / "exp"
  real = export._make_world_readable  # pylint: disable=protected-access
  taken = []

  def another_export_lands_first(path):
    real(path)
    folder = base / str(1 + len(taken))
    folder.mkdir()  # empty, as another export's version folder is for an instant: still not replaced
    taken.append(folder)

  monkeypatch.setattr(export, "_make_world_readable", another_export_lands_first)
  with pytest.raises(
    ValueError, match=r"1 was created by another export .*another --version, e.g. the next free one, 2"
  ):
    export.export_model(StandInModel(dims=(2, 2, 2, 2)), str(base), version=1)
  assert os.listdir(base) == ["1"] and not os.listdir(base / "1")
  # A version picked by the export itself moves on to the next free one.
  version_dir = export.export_model(StandInModel(dims=(2, 2, 2, 2)), str(base))
  assert os.path.basename(version_dir) == "3" and sorted(os.listdir(base)) == ["1", "2", "3"]
  assert json.loads(open(os.path.join(version_dir, export.INFO_FILENAME), encoding="utf-8").read())["version"] == 3
  assert "version 2 was taken by another export while this one was written; trying 3" in caplog.text


def test_the_image_size_is_the_models_own_and_the_output_is_local(tmp_path):
  model = StandInModel(dims=(2, 2, 2, 2))
  model.image_size = 32
  version_dir = export.export_model(model, str(tmp_path / "exp"))
  info = json.loads(open(os.path.join(version_dir, export.INFO_FILENAME), encoding="utf-8").read())
  assert info["image_size"] == 32
  assert tf.saved_model.load(version_dir).signatures["embed_images"](images=tf.zeros([1, 32, 32, 3]))
  with pytest.raises(ValueError, match="image_size 64 differs from the model's input size 32"):
    export.export_model(model, str(tmp_path / "exp"), image_size=64)
  with pytest.raises(ValueError, match="gs://bucket/exp is not on the local file system"):
    export.export_model(model, "gs://bucket/exp")
  assert sorted(os.listdir(tmp_path)) == ["exp"] and export.list_versions(str(tmp_path / "exp")) == [1]


def test_export_without_de_render_for_stock_serving(tmp_path):
  version_dir = export.export_model(StandInModel(dims=(2, 2, 2, 2)), str(tmp_path), include_de_render=False)
  assert sorted(tf.saved_model.load(version_dir).signatures) == ["embed_images", "serving_default"]
  info = json.loads(open(os.path.join(version_dir, export.INFO_FILENAME), encoding="utf-8").read())
  assert sorted(info["signatures"]) == ["embed_images", "serving_default"]


def test_export_rejects_models_without_interface(tmp_path):
  class EncoderOnly(keras.Model):
    def encode(self, images, training=False):
      return images

  with pytest.raises(ValueError, match="no de_render"):
    export.export_model(EncoderOnly(), str(tmp_path))
  with pytest.raises(ValueError, match="keras.Model or tf.Module"):
    export.export_model(types.SimpleNamespace(encode=len, de_render=len), str(tmp_path))
  with pytest.raises(ValueError, match="image_size"):
    export.export_model(StandInModel(), str(tmp_path), image_size=1)


def test_load_export_errors_name_the_path(exported, tmp_path):
  _, base, version_dir, _ = exported
  loaded, path = export.load_export(base, signatures=export.SIGNATURES)
  assert path == version_dir and "de_render" in loaded.signatures
  with pytest.raises(ValueError, match=f"{version_dir}.*no signature.*'nope'"):
    export.load_export(version_dir, signatures=("embed_images", "nope"))
  with pytest.raises(FileNotFoundError, match="does not exist"):
    export.load_export(str(tmp_path / "missing"))
  with pytest.raises(FileNotFoundError, match="is not a SavedModel"):
    export.load_export(str(tmp_path))


def test_export_from_workdir_uses_restore_and_default_output(tmp_path, monkeypatch):
  workdir = tmp_path / "run"
  (workdir / "checkpoints").mkdir(parents=True)
  monkeypatch.setattr(workdir_lib, "restore_model", lambda w, step=None: StandInModel(dims=(2, 2, 2, 2)))
  assert export.main(["--workdir", str(workdir)]) == 0
  version_dir = workdir / "export" / "1"
  assert tf.saved_model.contains_saved_model(str(version_dir))
  info = json.loads((version_dir / export.INFO_FILENAME).read_text())
  assert info["source"]["workdir"] == str(workdir) and info["source"]["step"] is None
  assert export.main(["--workdir", str(tmp_path / "absent")]) == 1
  a_file = tmp_path / "notes.txt"
  a_file.write_text("mine")
  with pytest.raises(SystemExit) as info:  # refused before the model is restored
    export.main(["--workdir", str(workdir), "--output", str(a_file)])
  assert info.value.code == 2 and a_file.read_text() == "mine"
  with pytest.raises(FileNotFoundError, match="notes.txt is a file, not a folder"):
    export.export_from_workdir(str(a_file))
  with pytest.raises(FileNotFoundError, match="SavedModel folder .*notes.txt is a file, not a folder"):
    export.resolve_saved_model_dir(str(a_file))


def test_export_records_the_checkpoint_it_restored_and_checks_arguments_first(tmp_path, monkeypatch, caplog):
  workdir = tmp_path / "run"
  (workdir / "checkpoints").mkdir(parents=True)
  restored = []
  latest = [str(workdir / "checkpoints" / "ckpt-7")]

  def restore_model(w, step=None):
    restored.append(step)
    latest[0] = str(workdir / "checkpoints" / "ckpt-8")  # training writes a newer one meanwhile
    return StandInModel(dims=(2, 2, 2, 2))

  monkeypatch.setattr(workdir_lib, "restore_model", restore_model)
  monkeypatch.setattr(workdir_lib, "latest_checkpoint", lambda w: latest[0])
  version_dir = export.export_from_workdir(str(workdir))
  info = json.loads(open(os.path.join(version_dir, export.INFO_FILENAME), encoding="utf-8").read())
  assert restored == [7] and info["source"]["step"] == 7 and info["source"]["checkpoint"].endswith("ckpt-7")
  # Refused before anything is restored: an object-store output, a taken or negative version, a tiny image size.
  for flags, message in [
    (["--output", "gs://bucket/exp"], "is not on the local file system"),
    (["--version", "1"], "already exists"),
    (["--version", "-1"], "version must be a non-negative int"),
    (["--image_size", "1"], "image_size must be an int >= 2"),
  ]:
    assert export.main(["--workdir", str(workdir)] + flags) == 1
    assert message in caplog.text
  assert restored == [7]

  def unwritable(*args, **kwargs):
    raise PermissionError(13, "Permission denied", str(tmp_path / "ro"))

  monkeypatch.setattr(export, "export_from_workdir", unwritable)
  assert export.main(["--workdir", str(workdir)]) == 1 and "Permission denied" in caplog.text


def test_main_passes_version_image_size_and_no_de_render_on(tmp_path, monkeypatch):
  calls = []

  def export_from_workdir(workdir, output, **kwargs):
    calls.append(dict(kwargs, workdir=workdir, output=output))
    return str(tmp_path / "out" / str(kwargs["version"]))

  monkeypatch.setattr(export, "export_from_workdir", export_from_workdir)
  argv = ["--workdir", str(tmp_path / "run"), "--output", str(tmp_path / "out")]
  assert export.main(argv + ["--version", "3", "--image_size", "32", "--no_de_render"]) == 0
  assert export.main(argv) == 0
  with_flags, defaults = calls
  assert with_flags == dict(
    workdir=str(tmp_path / "run"), output=str(tmp_path / "out"), version=3, image_size=32, include_de_render=False
  )
  assert defaults["include_de_render"] is True and defaults["version"] != 3 and defaults["image_size"] != 32


@pytest.mark.parametrize("backend", ["tf", "tfg"])
def test_de_render_exports_standard_ops_without_xla(tmp_path, backend):
  """Whatever the renderer trains with (the kernel's custom op, or XLA), de_render is exported with the pure-TF
  rasterizer uncompiled, so stock TF Serving can run every signature."""
  from pdr_tf.model import de_renderer as model  # pylint: disable=import-outside-toplevel
  from pdr_tf.render import renderer

  net = model.DeRenderer(nf=8, zdim=16, encoder_nf=8, renderer=renderer.Renderer(backend=backend, jit_compile=True))
  net.build_for_inference()
  version_dir = export.export_model(net, str(tmp_path))
  info = json.loads(open(os.path.join(version_dir, export.INFO_FILENAME), encoding="utf-8").read())
  assert info["custom_ops"] == [] and "de_render" in info["signatures"]
  assert net.renderer.backend == backend and net.renderer.jit_compile  # restored after the export
  proto = saved_model_pb2.SavedModel()
  with open(os.path.join(version_dir, "saved_model.pb"), "rb") as f:
    proto.ParseFromString(f.read())
  library = proto.meta_graphs[0].graph_def.library.function
  must_compile = [f.signature.name for f in library if f.attr["_XlaMustCompile"].b] + [
    n.name for f in library for n in f.node_def if n.attr["_XlaMustCompile"].b
  ]
  assert not must_compile  # no XLA needed to serve (TF Serving disables it on CPU by default)
  loaded = tf.saved_model.load(version_dir)
  out = loaded.signatures["de_render"](images=tf.fill([1, 64, 64, 3], 0.5))
  assert np.all(np.isfinite(out["recon_image"].numpy()))


def test_mirror_equivariant_model_exports_its_light_and_view(tmp_path):
  """The mirror-equivariant heads (CPU presets) trace into the SavedModel: de_render serves the model's own light
  and view, and they mirror with the image."""
  from pdr_tf.model import de_renderer as model  # pylint: disable=import-outside-toplevel

  tf.keras.utils.set_random_seed(2)
  net = model.DeRenderer(nf=8, zdim=16, encoder_nf=8, mirror_equivariant=True)
  net.build_for_inference()
  loaded = tf.saved_model.load(export.export_model(net, str(tmp_path)))
  images = tf.random.stateless_uniform([2, 64, 64, 3], [3, 4])  # [0, 1], as the signature takes them
  served = loaded.signatures["de_render"](images=images)
  direct = net.de_render(images * 2.0 - 1.0)
  for key in ("light", "view"):
    np.testing.assert_allclose(served[key].numpy(), direct[key].numpy(), atol=1e-5)
  mirrored = loaded.signatures["de_render"](images=images[:, :, ::-1])
  np.testing.assert_allclose(mirrored["light"].numpy()[:, 2], -served["light"].numpy()[:, 2], atol=1e-5)
  np.testing.assert_allclose(mirrored["view"].numpy()[:, 1:4], -served["view"].numpy()[:, 1:4], atol=1e-5)


def test_workdir_layout_has_one_home(tmp_path):
  workdir = str(tmp_path / "run")
  assert workdir_lib.checkpoints(workdir) == os.path.join(workdir, "checkpoints")
  assert workdir_lib.export(workdir) == os.path.join(workdir, "export")
  assert workdir_lib.train_logs(workdir).startswith(workdir_lib.logs(workdir))
  assert workdir_lib.latest_checkpoint(workdir) is None
  with pytest.raises(FileNotFoundError, match="operative_config.gin not found"):
    workdir_lib.restore_model(workdir)


def test_a_checkpoint_prefix_names_its_step():
  assert workdir_lib.checkpoint_step("/run/checkpoints/ckpt-1200") == 1200
  assert workdir_lib.checkpoint_step("/run/checkpoints/model") is None
