"""The one TFRecord schema of pdr_tf: feature keys and types, the Example writer and parser, and the output layout.

The Beam jobs (`beam_pipelines`) write every record with `serialize_example` and the tf.data reader
(`pdr_tf.data.input_pipeline`) parses them with `parse_example`; both read the key list below, so the schema lives here
only. Writing needs no TensorFlow: `serialize_example` encodes the `tf.train.Example` protobuf with the standard
library and numpy, so Beam workers do not pay TensorFlow's import. Its bytes are identical to
`tf.train.Example.SerializeToString(deterministic=True)` (checked by the tests).

Layout of a converted dataset directory:
  <dir>/<split>.tfrecord-NNNNN-of-MMMMM   records of one split (uncompressed TFRecord)
  <dir>/manifest.json                     dataset, schema_version, args, inputs, written, rejected, counts, shards
  <dir>/rejects.jsonl                     one {"path", "reason"} per rejected input (empty when none)
"""

import json
import os

import numpy as np

from pdr_tf.data import formats

# Bump whenever a key, type or shape below changes; readers refuse data written under another version.
SCHEMA_VERSION = 1

MANIFEST_FILENAME = "manifest.json"
REJECTS_FILENAME = "rejects.jsonl"
SHARD_INFIX = ".tfrecord"  # shards are <split>.tfrecord-NNNNN-of-MMMMM
UNLABELLED = "unlabelled"  # the manifest's class name for records whose label/name is ""

DEPTH_SIZE = formats.IMAGE_SIZE * formats.IMAGE_SIZE

# key -> (kind, length, default). kind is "bytes", "int64" or "float"; length is the fixed number of values;
# a default of None means the key is required in every record given to `serialize_example`.
FEATURES = {
  "image/encoded": ("bytes", 1, None),  # PNG bytes, RGB uint8, IMAGE_SIZE x IMAGE_SIZE
  "image/height": ("int64", 1, formats.IMAGE_SIZE),
  "image/width": ("int64", 1, formats.IMAGE_SIZE),
  "image/format": ("bytes", 1, "png"),
  "label/name": ("bytes", 1, ""),  # class name; "" when unknown
  "label/id": ("int64", 1, -1),  # index into the dataset's class tuple in pdr_tf.data.formats; -1 when unknown
  "label/age": ("int64", 1, -1),  # UTKFace: years
  "label/gender": ("int64", 1, -1),  # UTKFace: index into formats.UTKFACE_GENDERS
  "label/race": ("int64", 1, -1),  # UTKFace: index into formats.UTKFACE_RACES
  "track/id": ("bytes", 1, ""),  # BBT face track
  "track/frame": ("int64", 1, -1),  # BBT frame index within the episode
  "model/id": ("bytes", 1, ""),  # ShapeNet model id (32 hex digits)
  "source/path": ("bytes", 1, ""),  # the raw input file this record came from
  "split": ("bytes", 1, ""),
  "gt/has": ("int64", 1, 0),  # 1 when the gt/* features hold ground truth
  "gt/depth": ("float", DEPTH_SIZE, 0.0),  # [IMAGE_SIZE * IMAGE_SIZE] row-major, same crop/resize as the image
  "gt/light": ("float", formats.GT_LIGHT_DIM, 0.0),  # (ka, kd, lx, ly)
  "gt/view": ("float", formats.GT_VIEW_DIM, 0.0),  # (rx, ry, rz) radians, (tx, ty, tz)
}


def shard_pattern(data_dir, split):
  """Glob pattern of the shards of one split, e.g. `<dir>/train.tfrecord-*-of-*`."""
  return os.path.join(data_dir, f"{split}{SHARD_INFIX}-*-of-*")


def shard_prefix(data_dir, split):
  """File path prefix that TFRecord writers complete with `-NNNNN-of-MMMMM`."""
  return os.path.join(data_dir, f"{split}{SHARD_INFIX}")


def shard_path(data_dir, split, index, num_shards):
  """Path of shard `index` (from 0) of `num_shards` of one split: `<dir>/<split>.tfrecord-NNNNN-of-MMMMM`."""
  return f"{shard_prefix(data_dir, split)}-{index:05d}-of-{num_shards:05d}"


def class_key(record):
  """Name under which the manifest counts a record: its label/name, or UNLABELLED when that is empty."""
  name = record.get("label/name", "")
  if isinstance(name, bytes):
    name = name.decode("utf-8")
  return name or UNLABELLED


# ---------------------------------------------------------------------------------------------------------------
# Writing: records are plain dicts keyed like FEATURES.


def normalize_record(record):
  """Validates a record and fills the defaults.

  Args:
    record: dict keyed by FEATURES names. "image/encoded" is required; every other key is optional. String
      features take str or bytes; int64 features take ints (numpy ints too); float features take sequences or
      arrays of the right size (gt/depth may be [IMAGE_SIZE, IMAGE_SIZE]).

  Returns:
    A new dict with every FEATURES key: bytes for strings, int for int64, float32 numpy vectors for floats.

  Raises:
    ValueError: an unknown key, a missing required key, or a value of the wrong type or size.
  """
  unknown = sorted(set(record) - set(FEATURES))
  if unknown:
    raise ValueError(f"unknown record keys {unknown}; the schema has {sorted(FEATURES)}")
  out = {}
  for key, (kind, length, default) in FEATURES.items():
    if key in record and record[key] is not None:
      value = record[key]
    elif default is None:
      raise ValueError(f"record is missing the required key {key!r}")
    else:
      value = default
    if kind == "bytes":
      if isinstance(value, str):  # a file name that is not UTF-8 (surrogate-escaped by Python) keeps a readable form
        value = value.encode("utf-8", "backslashreplace")
      if not isinstance(value, bytes):
        raise ValueError(f"{key} must be str or bytes, got {type(value).__name__}")
    elif kind == "int64":
      if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{key} must be an int, got {value!r}")
      value = int(value)
    else:
      value = np.asarray(value, dtype=np.float32).reshape(-1)
      if value.size == 1 and length > 1:
        value = np.full([length], value[0], np.float32)
      if value.size != length:
        raise ValueError(f"{key} must hold {length} floats, got {value.size}")
      if not np.all(np.isfinite(value)):
        raise ValueError(f"{key} holds non-finite values")
    out[key] = value
  if not out["image/encoded"]:
    raise ValueError("image/encoded is empty")
  if out["gt/has"] not in (0, 1):
    raise ValueError(f"gt/has must be 0 or 1, got {out['gt/has']}")
  return out


def _varint(value):
  value &= (1 << 64) - 1  # negative int64 values are encoded as their 64-bit two's complement
  out = bytearray()
  while True:
    low = value & 0x7F
    value >>= 7
    if value:
      out.append(low | 0x80)
    else:
      out.append(low)
      return bytes(out)


def _field(number, payload):
  """A length-delimited protobuf field (wire type 2)."""
  return _varint((number << 3) | 2) + _varint(len(payload)) + payload


def _feature(kind, value):
  # Feature.kind oneof: bytes_list = 1, float_list = 2, int64_list = 3; each list has `repeated value = 1`
  # (packed for numbers).
  if kind == "bytes":
    return _field(1, _field(1, value))
  if kind == "int64":
    return _field(3, _field(1, _varint(value)))
  packed = value.astype("<f4").tobytes()
  return _field(2, _field(1, packed) if packed else b"")


def serialize_example(record):
  """Serializes one record as a `tf.train.Example` without importing TensorFlow.

  Args:
    record: dict keyed like FEATURES (see `normalize_record`).

  Returns:
    bytes, equal to `make_example(record).SerializeToString(deterministic=True)`.
  """
  record = normalize_record(record)
  entries = []
  for key in sorted(FEATURES):  # deterministic map order, as protobuf's deterministic serialization
    kind = FEATURES[key][0]
    entries.append(_field(1, _field(1, key.encode("utf-8")) + _field(2, _feature(kind, record[key]))))
  return _field(1, b"".join(entries))


def make_example(record):
  """Builds the `tf.train.Example` of a record (see `normalize_record` for the accepted values)."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel  (writers in Beam workers avoid TF)

  return tf.train.Example.FromString(serialize_example(record))


# ---------------------------------------------------------------------------------------------------------------
# Reading.


def tf_feature_description(keys=None):
  """The `tf.io.parse_example` feature description of the schema (every key required).

  Args:
    keys: optional subset of FEATURES keys (e.g. only "image/encoded" for training); default all.
  """
  import tensorflow as tf  # pylint: disable=import-outside-toplevel

  dtypes = {"bytes": tf.string, "int64": tf.int64, "float": tf.float32}
  keys = list(FEATURES) if keys is None else list(keys)
  unknown = [k for k in keys if k not in FEATURES]
  if unknown:
    raise ValueError(f"unknown feature keys {unknown}; the schema has {sorted(FEATURES)}")
  return {
    key: tf.io.FixedLenFeature([] if FEATURES[key][1] == 1 else [FEATURES[key][1]], dtypes[FEATURES[key][0]])
    for key in keys
  }


def parse_example(serialized, keys=None):
  """Parses serialized Examples written with this schema.

  Args:
    serialized: string tensor, scalar or [N].
    keys: optional subset of FEATURES keys to parse; default all.

  Returns:
    Dict keyed like FEATURES with tensors of shape [] (or [N]) for single values and [L] (or [N, L]) for the
    float vectors; images stay PNG-encoded (decode with `tf.io.decode_png`).
  """
  import tensorflow as tf  # pylint: disable=import-outside-toplevel

  return tf.io.parse_example(serialized, tf_feature_description(keys))


# ---------------------------------------------------------------------------------------------------------------
# Manifest.


def build_manifest(dataset, args, inputs, split_class_counts, reject_reasons, shards):
  """The manifest dict of a converted dataset.

  Args:
    dataset: dataset name, e.g. "utkface".
    args: JSON-serialisable dict of the job's arguments.
    inputs: number of input files the job considered.
    split_class_counts: iterable of ((split, class_name), count) of written records.
    reject_reasons: iterable of (reason, count) of rejected inputs.
    shards: dict split -> list of shard file names (base names).

  Returns:
    Dict with dataset, schema_version, args, inputs, written, rejected, splits {split: n},
    counts {split: {class: n}}, reject_reasons {reason: n}, shards {split: [names]} and balanced
    (inputs == written + rejected).
  """
  counts, splits = {}, {}
  for (split, name), n in split_class_counts:
    counts.setdefault(split, {})[name] = counts.get(split, {}).get(name, 0) + int(n)
    splits[split] = splits.get(split, 0) + int(n)
  for split in shards:
    counts.setdefault(split, {})
    splits.setdefault(split, 0)
  reasons = {}
  for reason, n in reject_reasons:
    reasons[reason] = reasons.get(reason, 0) + int(n)
  written, rejected = sum(splits.values()), sum(reasons.values())
  return {
    "dataset": dataset,
    "schema_version": SCHEMA_VERSION,
    "args": args,
    "inputs": int(inputs),
    "written": written,
    "rejected": rejected,
    "balanced": int(inputs) == written + rejected,
    "splits": dict(sorted(splits.items())),
    "counts": {split: dict(sorted(c.items())) for split, c in sorted(counts.items())},
    "reject_reasons": dict(sorted(reasons.items())),
    "shards": {split: sorted(os.path.basename(s) for s in names) for split, names in sorted(shards.items())},
  }


def write_dataset(output_dir, records, dataset="custom", num_shards=1, rejects=(), args=None):
  """Writes records in the converted-dataset layout in this process (for tests, tools and small data).

  The Beam jobs are the way to convert real data; this writer gives other modules' tests the same layout
  (shards, manifest, rejects) without starting Beam. Records are written in the given order, round-robin
  over the shards of their split.

  Args:
    output_dir: directory to write (created).
    records: iterable of record dicts; each needs a "split".
    dataset: name stored in the manifest.
    num_shards: shards per split.
    rejects: iterable of {"path", "reason"} dicts to list in rejects.jsonl.
    args: dict stored in the manifest.

  Returns:
    The manifest dict (also written to <output_dir>/manifest.json).
  """
  import tensorflow as tf  # pylint: disable=import-outside-toplevel

  records = list(records)
  by_split, counts = {}, {}
  for record in records:
    split = record.get("split")
    if not split:
      raise ValueError(f"record of {record.get('source/path', '?')!r} has no split")
    by_split.setdefault(split, []).append(serialize_example(record))
    counts[(split, class_key(record))] = counts.get((split, class_key(record)), 0) + 1
  os.makedirs(output_dir, exist_ok=True)
  shards = {}
  for split, serialized in by_split.items():
    names = [shard_path(output_dir, split, i, num_shards) for i in range(num_shards)]
    writers = [tf.io.TFRecordWriter(name) for name in names]
    for i, data in enumerate(serialized):
      writers[i % num_shards].write(data)
    for writer in writers:
      writer.close()
    shards[split] = names
  rejects = list(rejects)
  with open(os.path.join(output_dir, REJECTS_FILENAME), "w", encoding="utf-8") as f:
    for reject in rejects:
      f.write(json.dumps({"path": reject["path"], "reason": reject["reason"]}) + "\n")
  reasons = {}
  for reject in rejects:
    reasons[reject["reason"]] = reasons.get(reject["reason"], 0) + 1
  manifest = build_manifest(
    dataset, args or {}, sum(len(s) for s in by_split.values()) + len(rejects), counts.items(), reasons.items(), shards
  )
  with open(os.path.join(output_dir, MANIFEST_FILENAME), "w", encoding="utf-8") as f:
    json.dump(manifest, f, indent=2)
  return manifest
