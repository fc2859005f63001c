"""SavedModel export of a trained de-renderer (three serving signatures) and the checked loader evaluation uses.

Layout: `<output_dir>/<version>/` is a SavedModel (saved_model.pb, variables/, assets/) plus `export_info.json`;
versions are integers, so TF Serving can watch `<output_dir>` and serve the highest one. A version is written under
a temporary non-numeric name and renamed when complete, so a server never sees half an export.

Signatures (N images per call):
  serving_default  image_bytes: string [N], encoded JPEG or PNG (GIF/BMP also decode; the first frame is used).
                   Images whose size is not image_size x image_size are resized (bilinear, antialiased, aspect ratio
                   not kept) to it; greyscale and RGBA inputs become RGB. Undecodable bytes fail with
                   "image_bytes[i] is not a JPEG or PNG image"; an image whose header declares more than
                   MAX_DECODED_PIXELS pixels is refused before it is decoded.
  embed_images     images: float32 [N, image_size, image_size, 3] in [0, 1]; rank, size, channels and range are
                   checked at run time with messages naming the signature.
  Both return      embedding [N, Dd + Da] (depth then albedo features: the paper's PDR), depth_features [N, Dd],
                   albedo_features [N, Da], light_features [N, Dl], view_features [N, Dv]; float32.
  de_render        images as for embed_images; returns depth [N, S, S] (canonical depth), albedo [N, S, S, 3] in
                   [0, 1], light [N, 4] (ka, kd, lx, ly), view [N, 6] (rx, ry, rz radians, tx, ty, tz),
                   recon_image [N, S, S, 3] in [0, 1], recon_depth [N, S, S] (depth in the input view), mask [N, S, S].
  de_render_unchecked  not a signature but a function of the loaded object: de_render without run-time input
                   checks (N >= 1, values in [0, 1], validated by the caller), which XLA can compile; evaluate uses it.

Images cross the SavedModel boundary in [0, 1] (or as bytes); the model itself works in [-1, 1].
"""

import argparse
import datetime
import json
import logging
import os
import re
import shutil
import sys
import tempfile

from google.protobuf import message
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow.python.framework import op_def_registry  # pylint: disable=no-name-in-module
from tensorflow.python.trackable import base as trackable_base  # pylint: disable=no-name-in-module

from pdr_tf import cli
from pdr_tf import graph
from pdr_tf.data import formats
from pdr_tf.data import locks
from pdr_tf.render import scene
from pdr_tf.training import workdir as workdir_lib

_LOG = logging.getLogger(__name__)

FEATURE_NAMES = scene.PROPERTIES
EMBEDDING_OUTPUTS = ("embedding",) + tuple(f"{name}_features" for name in FEATURE_NAMES)
DERENDER_OUTPUTS = scene.PROPERTIES + ("recon_image", "recon_depth", "mask")
SIGNATURES = ("serving_default", "embed_images", "de_render")
# Beside the de_render signature, a restorable function (an attribute of the loaded object, not a signature: TF
# Serving does not see it) with the same outputs and no run-time input checks: images float32 [N >= 1, S, S, 3] in
# [0, 1], validated by the caller. Without the checks' string formatting XLA can compile it, which is how
# `pdr_tf.evaluate` runs it (evaluation.exported_derender).
UNCHECKED_DE_RENDER = "de_render_unchecked"
INFO_FILENAME = "export_info.json"
# JPEG, PNG, GIF and BMP magic numbers: what tf.io.decode_image accepts.
_JPEG, _PNG, _GIF87, _GIF89, _BMP = b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM"
_MAGIC_NUMBERS = (_JPEG, _PNG, _GIF87, _GIF89, _BMP)
# serving_default refuses an image whose header declares more pixels than this, before decoding it: a small file can
# declare a huge canvas, and decoding it (then float32, 12 bytes a pixel) could run a server out of memory.
MAX_DECODED_PIXELS = 4096 * 4096
_VERSION_DIR = re.compile(r"^\d+$")


def _features_to_outputs(features):
  """Model features dict -> the embedding signature outputs (float32)."""
  missing = [name for name in FEATURE_NAMES if name not in features]
  if missing:
    raise ValueError(f"model.encode must return {list(FEATURE_NAMES)}; missing {missing}")
  out = {f"{name}_features": tf.cast(features[name], tf.float32) for name in FEATURE_NAMES}
  out["embedding"] = tf.concat([out["depth_features"], out["albedo_features"]], axis=-1)
  return {key: out[key] for key in EMBEDDING_OUTPUTS}


def _assert(condition, make_message):
  """An assert whose message (a scalar string tensor from make_message()) is only computed when it fails."""

  def fail():
    with tf.control_dependencies([tf.debugging.Assert(False, [make_message()])]):
      return tf.constant(False)

  return tf.cond(condition, lambda: tf.constant(True), fail)


def _checked_images(images, image_size, signature):
  """Run-time checks of a float image batch in [0, 1]; returns it as [N, S, S, 3] in [-1, 1]."""
  # The three conditions are built so that exactly one assert fires, whatever order the runtime picks: the shape
  # check only fails for rank-4 input and the range check only for correctly shaped input.
  shape = tf.shape(images)
  rank_ok = tf.equal(tf.size(shape), 4)
  padded = tf.concat([shape, tf.zeros([4], tf.int32)], axis=0)  # [1:4] exists for any rank
  size_ok = tf.reduce_all(tf.equal(padded[1:4], [image_size, image_size, 3]))
  in_range = tf.reduce_all((images >= 0.0) & (images <= 1.0))  # NaN fails too
  checks = [
    _assert(
      rank_ok,
      lambda: tf.strings.format(
        f"{signature}: images must have rank 4 [N, {image_size}, {image_size}, 3]; got shape {{}}", shape
      ),
    ),
    _assert(
      tf.logical_or(tf.logical_not(rank_ok), size_ok),
      lambda: tf.strings.format(
        f"{signature}: images must have shape [N, {image_size}, {image_size}, 3] (RGB); got shape {{}}", shape
      ),
    ),
    _assert(
      tf.logical_or(tf.logical_not(tf.logical_and(rank_ok, size_ok)), in_range),
      lambda: tf.strings.format(
        f"{signature}: pixel values must be finite and in [0, 1] (divide uint8 images by 255); got min {{}} max {{}}",
        (tf.reduce_min(images), tf.reduce_max(images)),
      ),
    ),
  ]
  with tf.control_dependencies(checks):
    images = tf.ensure_shape(tf.identity(images), [None, image_size, image_size, 3])
  return formats.unit_to_model(images)


def _unless_empty(images, compute):
  """compute(images) for a non-empty batch; for N = 0 the same outputs with zero rows (convolutions fail on an
  empty batch), taken from compute on one blank image so that every shape and dtype matches. compute is traced
  once: the batch it runs on is chosen, and its outputs cut to N rows."""
  count = tf.shape(images)[0]
  batch = tf.cond(
    count > 0,
    lambda: images,
    lambda: tf.zeros(tf.concat([[1], tf.shape(images)[1:]], 0), images.dtype),
  )
  return tf.nest.map_structure(lambda t: t[:count], compute(batch))


class _ExportModule(tf.Module):
  """Holds the signature functions and the variables they capture."""

  def __init__(self, model, image_size, include_de_render=True, renderer=None):
    super().__init__(name="pdr_export")
    # The model stays out of the object graph (the functions reach it through the closure); `track_variables`
    # adds the tf.Variables the traced functions capture, as Keras' ExportArchive does. With the Keras model
    # (and so its Keras variable wrappers) in the object graph, graph-mode loaders (TF Serving,
    # `saved_model_cli run`) fail with "Could not find variable", while tf.saved_model.load works.
    self.model_variables = []
    self.image_size = image_size
    size = image_size

    def embed(images):  # [N, S, S, 3] in [-1, 1]; an empty batch gives empty outputs, not a conv error
      return _unless_empty(images, lambda x: _features_to_outputs(model.encode(x, training=False)))

    @graph.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    def serving_default(image_bytes):
      return embed(self._decode(image_bytes))

    @graph.function(input_signature=[tf.TensorSpec(None, tf.float32, name="images")])
    def embed_images(images):
      return embed(_checked_images(images, size, "embed_images"))

    def scene_outputs(images):
      scene_out = model.de_render(images, training=False, **({"renderer": renderer} if renderer is not None else {}))
      missing = [key for key in DERENDER_OUTPUTS if key not in scene_out]
      if missing:
        raise ValueError(f"model.de_render must return {list(DERENDER_OUTPUTS)}; missing {missing}")
      out = {key: tf.cast(scene_out[key], tf.float32) for key in DERENDER_OUTPUTS}
      for key in ("albedo", "recon_image"):  # [-1, 1] inside the model, [0, 1] at the boundary
        out[key] = tf.clip_by_value(formats.model_to_unit(out[key]), 0.0, 1.0)
      return out

    @graph.function(input_signature=[tf.TensorSpec(None, tf.float32, name="images")])
    def de_render(images):
      images = _checked_images(images, size, "de_render")
      return _unless_empty(images, scene_outputs)

    @graph.function(input_signature=[tf.TensorSpec([None, size, size, 3], tf.float32, name="images")])
    def de_render_unchecked(images):  # see UNCHECKED_DE_RENDER
      return scene_outputs(formats.unit_to_model(images))

    self.serving_default = serving_default
    self.embed_images = embed_images
    if include_de_render:  # any tf.function attribute with an input signature is traced into the SavedModel
      self.de_render = de_render
      setattr(self, UNCHECKED_DE_RENDER, de_render_unchecked)

  def track_variables(self, concrete_functions):
    """Tracks the variables captured by the traced signature functions (each once)."""
    seen = {}
    for function in concrete_functions:
      for variable in function.variables:
        seen.setdefault(id(variable), variable)
    self.model_variables = list(seen.values())

  def _decode(self, image_bytes):
    """string [N] -> float32 [N, S, S, 3] in [-1, 1], with a clear error for undecodable entries."""
    size = self.image_size

    def decode_one(index):
      data = image_bytes[index]
      ok = tf.reduce_any([_starts_with(data, magic) for magic in _MAGIC_NUMBERS])
      check = _assert(
        ok,
        lambda: tf.strings.format(
          "serving_default: image_bytes[{}] is not a JPEG or PNG image ({} bytes); send the encoded image file "
          "bytes (base64-encoded under the key b64 in REST requests)",
          (index, tf.strings.length(data)),
        ),
      )
      with tf.control_dependencies([check]):
        height, width = declared_size(data)
        small = _assert(
          height * width <= MAX_DECODED_PIXELS,
          lambda: tf.strings.format(
            "serving_default: image_bytes[{}] declares {} x {} pixels, more than the {} this server decodes; "
            f"resize it (to {size} x {size}) before sending",
            (index, width, height, MAX_DECODED_PIXELS),
          ),
        )
      with tf.control_dependencies([small]):
        image = tf.io.decode_image(data, channels=3, expand_animations=False)
      image = tf.cast(image, tf.float32)
      same = tf.reduce_all(tf.equal(tf.shape(image)[:2], [size, size]))
      image = tf.cond(
        same, lambda: image, lambda: tf.image.resize(image, [size, size], method="bilinear", antialias=True)
      )
      image = tf.ensure_shape(tf.clip_by_value(image, 0.0, 255.0), [size, size, 3])
      return formats.uint8_to_model(image)

    indices = tf.range(tf.shape(image_bytes)[0])
    return tf.map_fn(decode_one, indices, fn_output_signature=tf.TensorSpec([size, size, 3], tf.float32))


def _starts_with(data, magic):
  return tf.equal(tf.strings.substr(data, 0, len(magic)), magic)


def declared_size(data):
  """(height, width) that an encoded image's header declares, int64 scalars, read without decoding it: JPEG (its
  frame header), PNG (IHDR), GIF (the logical screen), BMP (the info header; a negative height means top-down);
  (0, 0) for other bytes, which the magic-number check refuses anyway."""
  head = tf.strings.substr(tf.strings.join([data, b"\0" * 32]), 0, 32)  # padded: short data reads as zeros
  byte = tf.cast(tf.io.decode_raw(head, tf.uint8), tf.int64)

  def number(start, size, big_endian):
    order = range(size) if big_endian else reversed(range(size))
    value = tf.constant(0, tf.int64)
    for k in order:
      value = value * 256 + byte[start + k]
    return value

  bmp_height = number(22, 4, False)
  bmp_height = tf.where(bmp_height >= 2**31, 2**32 - bmp_height, bmp_height)
  zero = tf.constant([0, 0], tf.int64)
  is_gif = tf.logical_or(_starts_with(data, _GIF87), _starts_with(data, _GIF89))
  size = tf.where(_starts_with(data, _PNG), tf.stack([number(20, 4, True), number(16, 4, True)]), zero)
  size = tf.where(is_gif, tf.stack([number(8, 2, False), number(6, 2, False)]), size)
  size = tf.where(_starts_with(data, _BMP), tf.stack([bmp_height, number(18, 4, False)]), size)
  size = tf.cond(
    _starts_with(data, _JPEG), lambda: tf.cast(tf.image.extract_jpeg_shape(data)[:2], tf.int64), lambda: size
  )
  return size[0], size[1]


def _make_world_readable(folder):
  """0755 folders and 0644 files: a model server running as another user must be able to read the export
  (tempfile.mkdtemp creates the staging folder 0700)."""
  os.chmod(folder, 0o755)
  for root, dirs, files in os.walk(folder):
    for name in dirs:
      os.chmod(os.path.join(root, name), 0o755)
    for name in files:
      os.chmod(os.path.join(root, name), 0o644)


# A version's staging folder: ".tmp-<version>-<pid>@<pid space tag>-<tempfile's 8 random characters>"
# (export_saved_model). Versions before the pid was in the name wrote ".tmp-<version>-<random>".
_STAGING_DIR = re.compile(r"^\.tmp-\d+-(?:(\d+)@([0-9a-f]{8})-)?[a-z0-9_]{8}$")


def remove_dead_staging(output_dir):
  """Removes the staging folders that exports on this host left behind when they were killed before their rename
  (their process no longer runs), and names in a warning the ones it cannot tell are dead (made on another host or
  in another container's pid namespace, or by an older version of pdr_tf, which did not write the pid) or could not
  remove. Returns the removed paths. Anything else in the folder, and a staging folder whose export is still
  running, is left alone."""
  if not os.path.isdir(output_dir):
    return []
  removed, unknown, here = [], [], locks.pid_space_tag()
  for name in sorted(os.listdir(output_dir)):
    match = _STAGING_DIR.match(name)
    path = os.path.join(output_dir, name)
    if not match or not os.path.isdir(path):
      continue
    pid, pid_space = match.groups()
    if pid is None or pid_space != here:
      unknown.append(path)
    elif not locks.pid_alive(int(pid)):
      shutil.rmtree(path, ignore_errors=True)
      if os.path.exists(path):  # e.g. another user's files in it
        unknown.append(path)
        continue
      removed.append(path)
      _LOG.warning("Removed %s: the unfinished staging folder of an export (pid %s) that no longer runs", path, pid)
  if unknown:
    _LOG.warning(
      "%s: %s left by an export of another host or container or an older pdr_tf, or not removable; no server "
      "loads it (its name is not a number). Delete it by hand once no export is writing it.",
      output_dir,
      ", ".join(os.path.basename(p) for p in unknown),
    )
  return removed


def exported_from(output_dir, checkpoint):
  """The newest version folder under output_dir when its export_info.json records `checkpoint` as its source (the
  same file prefix), else None."""
  versions = list_versions(output_dir)
  if not versions or not checkpoint:
    return None
  folder = os.path.join(output_dir, str(versions[-1]))
  try:
    with open(os.path.join(folder, INFO_FILENAME), encoding="utf-8") as f:
      source = json.load(f).get("source") or {}
  except (OSError, ValueError, AttributeError):
    return None
  recorded = source.get("checkpoint") if isinstance(source, dict) else None
  same = isinstance(recorded, str) and os.path.abspath(recorded) == os.path.abspath(checkpoint)
  return folder if same and export_is_complete(folder) else None


def export_is_complete(folder) -> bool:
  """Whether a version folder holds a SavedModel graph and its variables' index (what a server loads)."""
  return os.path.isfile(os.path.join(folder, "saved_model.pb")) and os.path.isfile(
    os.path.join(folder, "variables", "variables.index")
  )


def next_version(output_dir):
  """The next free integer version folder under output_dir (1 when there is none)."""
  versions = list_versions(output_dir)
  return (max(versions) + 1) if versions else 1


def list_versions(output_dir):
  """Sorted integer versions (numeric sub-folders) under output_dir; [] when it does not exist."""
  if not tf.io.gfile.isdir(output_dir):
    return []
  return sorted(int(n.rstrip("/")) for n in tf.io.gfile.listdir(output_dir) if _VERSION_DIR.match(n.rstrip("/")))


def saved_model_op_types(saved_model_dir):
  """Op types used anywhere in a SavedModel's graphs and function library (a set of str)."""
  proto = saved_model_pb2.SavedModel()
  path = os.path.join(saved_model_dir, "saved_model.pb")
  try:
    with tf.io.gfile.GFile(path, "rb") as f:
      proto.ParseFromString(f.read())
  except (message.DecodeError, tf.errors.NotFoundError) as e:  # a cut copy, garbage, or only a saved_model.pbtxt
    raise ValueError(f"{path} is not a readable SavedModel graph ({e}); export the model again") from e
  types = set()
  for meta_graph in proto.meta_graphs:
    types.update(node.op for node in meta_graph.graph_def.node)
    for function in meta_graph.graph_def.library.function:
      types.update(node.op for node in function.node_def)
  return types


def _source_info(workdir, checkpoint=None):
  info = {"workdir": None, "checkpoint": None, "step": None}
  if workdir:
    info["workdir"] = os.path.abspath(workdir)
    checkpoint = checkpoint or workdir_lib.latest_checkpoint(workdir)
    if checkpoint:
      info["checkpoint"] = checkpoint
      info["step"] = workdir_lib.checkpoint_step(checkpoint)
  return info


def export_model(
  model, output_dir, image_size=None, version=None, workdir=None, include_de_render=True, checkpoint=None
):
  """Exports a model as a versioned SavedModel with the serving_default, embed_images and de_render signatures.

  Args:
      model: object with `encode(images, training=False)` and `de_render(images, training=False)` taking float32
          [B, S, S, 3] in [-1, 1] (see the module docstring for the outputs); usually a keras.Model.
      output_dir: base folder on the local file system; the export goes to `<output_dir>/<version>/`.
      image_size: S, the model's input side in pixels; None takes the model's own (`model.image_size`, else 64).
          A value that differs from the model's is refused.
      version: integer version; None picks the next free one (and the one after, should another export take it
          while this one is written). An existing version is never overwritten.
      workdir: training work dir the model came from, recorded (with the checkpoint) in export_info.json.
      include_de_render: export the de_render signature. A model's `renderer.Renderer` is replaced by its
          `portable()` copy (the pure-TF rasterizer, no XLA), so stock TF Serving runs it whatever backend the
          model trains with; leave it out for models whose de_render needs custom ops (listed as custom_ops in
          export_info.json), which a server without those ops cannot load.
      checkpoint: the checkpoint the weights were restored from, recorded in export_info.json (default: the
          work dir's latest).

  Returns:
      The version folder path (str).

  Raises:
      ValueError: bad image_size or version, an image_size other than the model's, a version that exists, an
          output_dir on an object store, or a model that is not trackable or lacks the interface.
  """
  model_size = getattr(model, "image_size", None)
  if image_size is None:
    image_size = model_size if isinstance(model_size, int) else formats.IMAGE_SIZE
  check_export_args(output_dir, version, image_size)
  if isinstance(model_size, int) and not isinstance(model_size, bool) and image_size != model_size:
    raise ValueError(
      f"image_size {image_size} differs from the model's input size {model_size}: the signatures would take images "
      f"the model was not built for; leave image_size unset (no --image_size) to use {model_size}"
    )
  if not isinstance(model, trackable_base.Trackable):
    raise ValueError(
      f"model must be a keras.Model or tf.Module so that its variables are saved, got {type(model).__name__}"
    )
  for method in ("encode", "de_render") if include_de_render else ("encode",):
    if not callable(getattr(model, method, None)):
      raise ValueError(f"model {type(model).__name__} has no {method}() method; export needs encode and de_render")
  pick_version = version is None
  if pick_version:
    version = next_version(output_dir)

  # One eager call builds the model's variables and gives the feature sizes for export_info.json.
  dummy = tf.zeros([1, image_size, image_size, 3], tf.float32)
  dims = {name: int(v.shape[-1]) for name, v in _features_to_outputs(model.encode(dummy, training=False)).items()}
  # Traced (here and again by save) with standard ops and no XLA: stock TF Serving has no rasterizer kernel and runs
  # no XLA on CPU unless started with --xla_cpu_compilation_enabled. A model with a `renderer.Renderer` renders
  # with its portable copy; any other model's de_render must itself be portable (custom_ops in export_info.json).
  model_renderer = getattr(model, "renderer", None)
  portable = model_renderer.portable() if callable(getattr(model_renderer, "portable", None)) else None
  module = _ExportModule(model, image_size, include_de_render, renderer=portable)
  signatures = {"serving_default": module.serving_default, "embed_images": module.embed_images}
  if include_de_render:
    signatures["de_render"] = module.de_render
  float_input = {"images": f"float32 [N, {image_size}, {image_size}, 3] in [0, 1]"}
  signature_info = {
    "serving_default": {"inputs": {"image_bytes": "string [N] encoded JPEG/PNG"}, "outputs": list(EMBEDDING_OUTPUTS)},
    "embed_images": {"inputs": float_input, "outputs": list(EMBEDDING_OUTPUTS)},
    "de_render": {"inputs": float_input, "outputs": list(DERENDER_OUTPUTS)},
  }
  os.makedirs(output_dir, exist_ok=True)
  remove_dead_staging(output_dir)
  staging = tempfile.mkdtemp(prefix=f".tmp-{version}-{os.getpid()}@{locks.pid_space_tag()}-", dir=output_dir)
  try:
    concrete = {name: fn.get_concrete_function() for name, fn in signatures.items()}
    module.track_variables(concrete.values())
    tf.saved_model.save(module, staging, signatures=concrete)
    custom_ops = sorted(t for t in saved_model_op_types(staging) if not hasattr(tf.raw_ops, t))
    info = {
      "format": "pdr_tf SavedModel",
      "version": version,
      "image_size": image_size,
      "signatures": {name: signature_info[name] for name in signatures},
      "functions": {UNCHECKED_DE_RENDER: signature_info["de_render"]} if include_de_render else {},
      "feature_dims": dims,
      "custom_ops": custom_ops,
      "source": _source_info(workdir, checkpoint),
      "tensorflow_version": tf.__version__,
      "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    _make_world_readable(staging)
    for _ in range(3 if pick_version else 1):  # a picked version taken meanwhile by another export: take the next
      info["version"] = version
      with open(os.path.join(staging, INFO_FILENAME), "w", encoding="utf-8") as f:
        json.dump(info, f, indent=2)
        f.write("\n")
      os.chmod(os.path.join(staging, INFO_FILENAME), 0o644)
      version_dir = os.path.join(output_dir, str(version))
      try:
        _rename_no_replace(staging, version_dir)
        break
      except FileExistsError:
        taken = version
        version = next_version(output_dir)
        if pick_version:
          _LOG.warning("version %d was taken by another export while this one was written; trying %d", taken, version)
    else:
      raise ValueError(
        f"export version folder {os.path.join(output_dir, str(taken))} was created by another export while this "
        f"one was written (nothing was changed); export again{'' if pick_version else ' with another --version'}, "
        f"e.g. the next free one, {version}"
      )
  except BaseException:
    shutil.rmtree(staging, ignore_errors=True)
    raise
  _LOG.info(
    "Exported SavedModel version %d to %s (signatures %s; feature dims %s)",
    version,
    version_dir,
    ", ".join(signatures),
    dims,
  )
  if custom_ops:
    _LOG.warning(
      "The export uses custom ops %s: loading it needs them registered (pdr_tf.export.load_export "
      "does that); stock TF Serving cannot load it. Export with include_de_render=False "
      "(--no_de_render) for TF Serving.",
      custom_ops,
    )
  return version_dir


def _rename_no_replace(source, destination):
  """Renames a folder, raising FileExistsError when destination exists (os.rename would replace an empty folder)."""
  os.mkdir(destination)  # claims the name: FileExistsError if anything holds it
  try:
    os.rename(source, destination)  # replaces the empty folder just claimed, atomically
  except BaseException:
    try:
      os.rmdir(destination)
    except OSError:
      pass
    raise


def check_export_args(output_dir, version=None, image_size=None):
  """Checks what can be checked before a model is restored: a local output_dir, a non-negative integer version that
  does not exist yet, and an image_size >= 2.

  Raises:
      ValueError: naming the argument and the reason.
  """
  if "://" in str(output_dir):
    raise ValueError(
      f"export output {output_dir} is not on the local file system: export to a local folder and copy the version "
      "folder to the object store (e.g. `gsutil cp -r`); TF Serving reads gs:// base paths"
    )
  if image_size is not None and (isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 2):
    raise ValueError(f"image_size must be an int >= 2, got {image_size!r}")
  if version is None:
    return
  if isinstance(version, bool) or not isinstance(version, int) or version < 0:
    raise ValueError(f"version must be a non-negative int, got {version!r}")
  version_dir = os.path.join(output_dir, str(version))
  if tf.io.gfile.exists(version_dir):
    raise ValueError(
      f"export version folder {version_dir} already exists (nothing was changed); choose another version, or leave "
      f"it unset (no --version) for the next free one, {next_version(output_dir)}"
    )


def export_from_workdir(workdir, output_dir=None, version=None, image_size=None, include_de_render=True):
  """Restores the latest checkpoint of a training work dir and exports it (see `export_model`).

  Args:
      workdir: training work dir with operative_config.gin and checkpoints/.
      output_dir: base export folder; default `<workdir>/export`.
      version, image_size, include_de_render: as in `export_model`.

  Returns:
      The version folder path.
  """
  if not tf.io.gfile.isdir(workdir):
    what = "is a file, not a folder" if tf.io.gfile.exists(workdir) else "does not exist"
    raise FileNotFoundError(f"work dir {workdir} {what}")
  output_dir = output_dir or workdir_lib.export(workdir)
  check_export_args(output_dir, version, image_size)  # before restoring, which can take a while
  checkpoint = workdir_lib.latest_checkpoint(workdir)  # the one restored, even if training writes a newer one
  model = workdir_lib.restore_model(workdir, step=workdir_lib.checkpoint_step(checkpoint) if checkpoint else None)
  return export_model(
    model,
    output_dir,
    image_size=image_size,
    version=version,
    workdir=workdir,
    include_de_render=include_de_render,
    checkpoint=checkpoint,
  )


def resolve_saved_model_dir(path):
  """A SavedModel folder, or the highest numeric version under an export base folder.

  Raises:
      FileNotFoundError: the path does not exist, or holds neither a SavedModel nor a version folder.
  """
  hint = "export one with `python -m pdr_tf.export --workdir WORKDIR`"
  if not tf.io.gfile.isdir(path):
    what = "is a file, not a folder" if tf.io.gfile.exists(path) else "does not exist"
    raise FileNotFoundError(f"SavedModel folder {path} {what}; {hint}")
  if tf.saved_model.contains_saved_model(path):
    return path
  versions = [v for v in list_versions(path) if tf.saved_model.contains_saved_model(os.path.join(path, str(v)))]
  if not versions:
    raise FileNotFoundError(
      f"{path} is not a SavedModel (no saved_model.pb) and has no numeric version folder holding one; {hint}"
    )
  return os.path.join(path, str(versions[-1]))


def load_export(path, signatures=("embed_images",)):
  """Loads an exported SavedModel and checks that it has the given signatures.

  Op types the SavedModel uses that this process does not know (the TF-Graphics rasterization kernel of
  de_render) are registered first by loading pdr_tf's kernel (`kernel_build.load_kernel`).

  Args:
      path: a SavedModel folder or an export base folder (its highest version is used).
      signatures: names that must be present.

  Returns:
      (loaded object with `.signatures`, resolved SavedModel folder).

  Raises:
      FileNotFoundError: no SavedModel there. ValueError: a missing signature or an unknown op (each names the
          path).
  """
  path = resolve_saved_model_dir(path)
  missing_ops = sorted(t for t in saved_model_op_types(path) if op_def_registry.get(t) is None)
  if missing_ops:
    from pdr_tf.render import kernel_build  # pylint: disable=import-outside-toplevel

    try:
      kernel_build.load_kernel()
    except Exception as e:  # pylint: disable=broad-except  (reported below with the op names)
      _LOG.warning("could not load pdr_tf's rasterization kernel: %s", e)
    missing_ops = [t for t in missing_ops if op_def_registry.get(t) is None]
    if missing_ops:
      raise ValueError(f"SavedModel {path} uses ops this TensorFlow does not know: {missing_ops}")
  loaded = tf.saved_model.load(path)
  absent = [name for name in signatures if name not in loaded.signatures]
  if absent:
    raise ValueError(
      f"SavedModel {path} has no signature {absent} (it has {sorted(loaded.signatures)}); "
      "re-export it with `python -m pdr_tf.export`"
    )
  return loaded, path


def make_parser() -> argparse.ArgumentParser:
  """This entry point's command line: `main` parses it; tests/test_doc_commands.py checks the docs against it."""
  parser = argparse.ArgumentParser(
    prog="python -m pdr_tf.export",
    description=__doc__.splitlines()[0],
    epilog="The export is <output>/<version>/ with signatures serving_default (image_bytes), embed_images and "
    "de_render; see docs/serving.md.",
  )
  parser.add_argument("--workdir", required=True, help="training work dir (operative_config.gin, checkpoints/)")
  parser.add_argument("--output", default=None, help="base export folder (default: WORKDIR/export)")
  parser.add_argument("--version", type=int, default=None, help="version number (default: next free integer)")
  parser.add_argument(
    "--image_size",
    type=int,
    default=None,
    help="model input side in pixels (default: the model's own; another is refused)",
  )
  parser.add_argument(
    "--no_de_render", action="store_true", help="leave out the de_render signature (only the embedding signatures)"
  )
  cli.add_log_level(parser)
  return parser


def main(argv=None):
  """Command line: restore a work dir's latest checkpoint and export it."""
  parser = make_parser()
  args = parser.parse_args(argv)
  cli.setup_logging(args.log_level)
  if args.output and os.path.exists(args.output) and not os.path.isdir(args.output):
    parser.error(f"--output {args.output} is a file, not a folder")  # checked before restoring the model
  try:
    version_dir = export_from_workdir(
      args.workdir,
      args.output,
      version=args.version,
      image_size=args.image_size,
      include_de_render=not args.no_de_render,
    )
  except (OSError, ValueError) as e:  # OSError: e.g. an output folder that cannot be written
    _LOG.error("%s", cli.error_text(e))
    return 1
  _LOG.info("Done. SavedModel: %s (inspect with `saved_model_cli show --dir %s --all`)", version_dir, version_dir)
  return 0


if __name__ == "__main__":
  sys.exit(main())
