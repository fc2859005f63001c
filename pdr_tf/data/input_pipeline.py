"""tf.data input over the converted TFRecords: training and evaluation datasets and per-replica distributed input.

The data directory is what `python -m beam_pipelines.<dataset>` writes (see pdr_tf.data.feature_spec for the layout);
records are parsed with the shared schema and images are scaled from uint8 to [-1, 1].
"""

import json
import logging
import os
import re

import gin
import tensorflow as tf

from beam_pipelines import JOBS  # the package's names only: importing it does not import Beam
from pdr_tf.data import feature_spec

from pdr_tf.data import formats

EVAL_KEYS = {  # output name -> (feature key); the image is decoded separately
  "label_id": "label/id",
  "label_name": "label/name",
  "age": "label/age",
  "gender": "label/gender",
  "race": "label/race",
  "track_id": "track/id",
  "frame": "track/frame",
  "model_id": "model/id",
  "source_path": "source/path",
  "gt_has": "gt/has",
  "gt_depth": "gt/depth",
  "gt_light": "gt/light",
  "gt_view": "gt/view",
}


class CorruptDataError(RuntimeError):
  """A shard holds a corrupt record; the message names the shard, the byte offset and how to recover."""


_CORRUPT_OFFSET = re.compile(r"(?:corrupted|truncated) record at (\d+)")  # a bad checksum; a cut-off file


def find_corrupt_shards(files):
  """Reads every record of `files` to find corrupt ones.

  Returns:
    List of (shard path, byte offset or None, records read before the corruption), one per corrupt shard. A
    TFRecord reader cannot resynchronise after a corrupt record, so each shard has at most one entry.
  """
  found = []
  for path in files:
    count = 0
    try:
      for _ in tf.data.TFRecordDataset(path):
        count += 1
    except tf.errors.DataLossError as e:
      match = _CORRUPT_OFFSET.search(str(e))
      found.append((path, int(match.group(1)) if match else None, count))
  return found


# Every split name a conversion writes (syncar's train / val / test, UTKFace's by hash, BBT's test).
KNOWN_SPLITS = tuple(dict.fromkeys(formats.SYNCAR_SPLITS + tuple(name for name, _ in formats.UTKFACE_SPLITS)))


def corrupt_data_message(data_dir, split, found):
  """The error text for corrupt shards: each shard and offset, the command that re-converts the data (from the
  manifest's own arguments) and the switch that skips corrupt records."""
  lines = [f"corrupt records in {len(found)} shard(s) of split {split!r} in {data_dir}:"]
  lines += [
    f"  {path}: corrupted record at byte {offset} (after {count} good records)" for path, offset, count in found
  ]
  try:
    manifest = read_manifest(data_dir)
    args = manifest.get("args") or {}
    command = (
      f"python -m beam_pipelines.{manifest.get('dataset')} --input_dir {args.get('input_dir', 'RAW_DIR')} "
      f"--output_dir {data_dir} --overwrite"
    )
  except (FileNotFoundError, ValueError):
    command = creation_hint(data_dir)
  if any(count for _, _, count in found):
    lines.append(
      f"Re-convert the data: {command}; or skip what follows a corrupt record in each shard with "
      "--gin_param='make_dataset.skip_corrupt=True' (the count of records read is logged)."
    )
  else:  # skipping would leave nothing of those shards to read
    lines.append(
      f"Re-convert the data: {command} (no record before the corruption is readable, so skipping it cannot help)."
    )
  return "\n".join(lines)


def creation_hint(data_dir, dataset=None):
  """The commands that create a data directory, for error messages."""
  job = dataset if dataset in JOBS else "<" + "|".join(JOBS) + ">"
  return (
    f"create it with `python -m beam_pipelines.{job} --input_dir RAW_DIR --output_dir {data_dir}`, "
    f"where RAW_DIR is the raw dataset or synthetic raw data from `python -m pdr_tf.synthetic ...`"
  )


def read_manifest(data_dir):
  """The manifest of a data directory, with its schema version checked.

  Raises:
    FileNotFoundError: the directory or its manifest.json does not exist (message names the path and the
      command that creates the data).
    ValueError: the manifest is unreadable or from another schema version.
  """
  if tf.io.gfile.exists(data_dir) and not tf.io.gfile.isdir(data_dir):
    raise FileNotFoundError(
      f"data directory {data_dir} is a file, not a folder; give the folder that holds a converted dataset "
      f"(its {feature_spec.MANIFEST_FILENAME} and TFRecord shards)"
    )
  if not tf.io.gfile.isdir(data_dir):
    raise FileNotFoundError(f"data directory {data_dir} does not exist; {creation_hint(data_dir)}")
  path = os.path.join(data_dir, feature_spec.MANIFEST_FILENAME)
  if not tf.io.gfile.exists(path):
    raise FileNotFoundError(f"{data_dir} holds no converted dataset ({path} is missing); {creation_hint(data_dir)}")
  try:
    with tf.io.gfile.GFile(path, "r") as f:
      manifest = json.load(f)
  except (ValueError, tf.errors.OpError) as e:
    raise ValueError(f"{path} is not a readable manifest ({e}); {creation_hint(data_dir)}") from e
  if not isinstance(manifest, dict):
    raise ValueError(
      f"{path} is not a pdr_tf manifest (a JSON {type(manifest).__name__}, not an object); {creation_hint(data_dir)}"
    )
  wrong = [key for key in ("splits", "shards") if not isinstance(manifest.get(key, {}), dict)]
  if wrong:
    raise ValueError(
      f"{path} is not a pdr_tf manifest (its {', '.join(wrong)} not an object); {creation_hint(data_dir)}"
    )
  version = manifest.get("schema_version")
  if version != feature_spec.SCHEMA_VERSION:
    raise ValueError(
      f"{data_dir} was written with TFRecord schema version {version} but this reader needs "
      f"version {feature_spec.SCHEMA_VERSION}; re-create it: "
      f"{creation_hint(data_dir, manifest.get('dataset'))}"
    )
  return manifest


def list_shards(data_dir, split):
  """TFRecord shards of one split, sorted.

  Args:
    data_dir: a converted dataset directory.
    split: "train", "val" or "test".

  Returns:
    List of shard paths (the manifest's list when it has one, else the files matching the shard pattern).

  Raises:
    FileNotFoundError: missing directory, manifest, split or shard; ValueError: schema mismatch, a split with
      no records, or one whose shards are all empty while the manifest counts records. Every message names the
      path and the command that creates the data.
  """
  manifest = read_manifest(data_dir)
  hint = creation_hint(data_dir, manifest.get("dataset"))
  names = manifest.get("shards", {}).get(split)
  if names is None:
    paths = sorted(tf.io.gfile.glob(feature_spec.shard_pattern(data_dir, split)))
  else:
    paths = sorted(os.path.join(data_dir, name) for name in names)
  if not paths:
    there = sorted(manifest.get("shards", {}))
    if not there:
      advice = hint
    elif split in KNOWN_SPLITS:  # a split a conversion writes, missing from an older one: converting again may help
      advice = f"choose one of them, or {hint}"
    else:  # another name is a typo, not data to convert
      advice = "choose one of them"
    raise FileNotFoundError(f"{data_dir} has no {split!r} split (splits there: {there}); {advice}")
  for path in paths:
    if not tf.io.gfile.exists(path):
      raise FileNotFoundError(f"shard {path} listed in the manifest is missing; {hint}")
  counted = manifest.get("splits", {}).get(split, None)
  if counted == 0:
    raise ValueError(
      f"split {split!r} in {data_dir} has no records (see "
      f"{os.path.join(data_dir, feature_spec.REJECTS_FILENAME)}); {hint}"
    )
  # One shard may be empty (a job writes a fixed number of shards), not all of them when the manifest counts records:
  # a copy or sync that stopped early, caught here instead of as a short count after minutes of reading.
  if counted and all(tf.io.gfile.stat(path).length == 0 for path in paths):
    raise ValueError(
      f"split {split!r} in {data_dir}: its {len(paths)} shard(s) are empty (0 bytes), yet the manifest counts "
      f"{counted} records (an interrupted copy?); copy the data again, or {hint}"
    )
  return paths


def num_examples(data_dir, split):
  """Number of records of a split according to the manifest."""
  return int(read_manifest(data_dir).get("splits", {}).get(split, 0))


def decode_image(encoded):
  """PNG bytes -> float32 [IMAGE_SIZE, IMAGE_SIZE, 3] in [-1, 1] (0 -> -1, 255 -> 1)."""
  image = tf.io.decode_png(encoded, channels=3)
  image = tf.ensure_shape(image, [formats.IMAGE_SIZE, formats.IMAGE_SIZE, 3])
  return formats.uint8_to_model(tf.cast(image, tf.float32))


def _training_example(serialized, seed):
  image = decode_image(feature_spec.parse_example(serialized, ["image/encoded"])["image/encoded"])
  return {"image": tf.image.stateless_random_flip_left_right(image, seed=seed)}


def _evaluation_example(serialized):
  features = feature_spec.parse_example(serialized)
  out = {"image": decode_image(features["image/encoded"])}
  for name, key in EVAL_KEYS.items():
    out[name] = features[key]
  out["gt_depth"] = tf.reshape(out["gt_depth"], [formats.IMAGE_SIZE, formats.IMAGE_SIZE])
  return out


def checked(dataset, data_dir, split):
  """Iterates `dataset` (read from `split` of `data_dir`) and turns a corrupt record into `CorruptDataError`, whose
  message names the shard and byte and says how to re-convert or skip (`corrupt_data_message`)."""
  iterator = iter(dataset)
  while True:
    try:
      element = next(iterator)
    except StopIteration:
      return
    except tf.errors.DataLossError as e:
      raise corrupt_data_error(data_dir, split, e) from None
    yield element


def corrupt_data_error(data_dir, split, error):
  """The `CorruptDataError` for a DataLossError `error` met while reading `split`: the corrupt shards found by
  reading them again (`corrupt_data_message`), else TensorFlow's own message."""
  found = find_corrupt_shards(list_shards(data_dir, split))
  if found:
    return CorruptDataError(corrupt_data_message(data_dir, split, found))
  return CorruptDataError(f"corrupt {split!r} data in {data_dir}: {error.message}")


def skips_corrupt() -> bool:
  """Whether gin sets `make_dataset.skip_corrupt` (reading past corrupt records, so a split may read short)."""
  try:
    return bool(gin.query_parameter("make_dataset.skip_corrupt"))
  except ValueError:  # not bound: the default, False
    return False


@gin.configurable
def make_dataset(
  data_dir,
  split,
  batch_size,
  training,
  shuffle_buffer=1024,
  seed=None,
  input_context=None,
  drop_remainder=None,
  repeat=None,
  cycle_length=4,
  skip_corrupt=False,
  skip_steps=0,
):
  """Batched dataset of one split.

  Training: shard files interleaved in random order, records shuffled, random horizontal flip, repeated.
  Evaluation: shards read one after another in sorted order, records in file order, no flip, labels kept.

  Args:
    data_dir: converted dataset directory.
    split: split name.
    batch_size: batch size of this input pipeline (per replica under a distribution strategy).
    training: training or evaluation mode.
    shuffle_buffer: records in the shuffle buffer (training).
    seed: seed for file order, shuffling and flips (training); None for non-deterministic.
    input_context: tf.distribute.InputContext; with several input pipelines each reads its share of the shards
      (or of the records when there are fewer shards than pipelines).
    drop_remainder: drop the last partial batch; default True for training, False for evaluation.
    repeat: repeat forever; default True for training, False for evaluation.
    cycle_length: shards read in parallel (training).
    skip_corrupt: keep going after a corrupt record: the rest of that shard is skipped (a TFRecord reader cannot
      resynchronise) and a warning logged; off by default, when a corrupt record is an error
      (`CorruptDataError` from the trainer, naming the shard).
    skip_steps: training steps already taken (a resumed run): the stream starts where an uninterrupted run's
      would be after that many steps, each taking `batch_size` records per replica this pipeline feeds. The
      records are read and dropped before decoding, so the same seed gives the same batches as an uninterrupted
      run.

  Returns:
    tf.data.Dataset of dicts. Training: {"image": float32 [B, 64, 64, 3] in [-1, 1]}. Evaluation: also
    label_id, age, gender, race, frame, gt_has (int64 [B]; -1 / 0 where unknown), label_name, track_id,
    model_id, source_path (string [B]), gt_depth float32 [B, 64, 64], gt_light [B, 4], gt_view [B, 6].
  """
  if batch_size < 1:
    raise ValueError(f"batch_size must be positive, got {batch_size}")
  files = list_shards(data_dir, split)
  drop_remainder = training if drop_remainder is None else drop_remainder
  repeat = training if repeat is None else repeat
  pipelines = input_context.num_input_pipelines if input_context is not None else 1
  pipeline_id = input_context.input_pipeline_id if input_context is not None else 0
  shard_by_file = pipelines > 1 and len(files) >= pipelines
  shard_by_record = pipelines > 1 and not shard_by_file
  deterministic = (not training) or seed is not None or shard_by_record
  if seed is not None:  # pipelines of one job draw different shuffles and flips from one seed
    seed = seed + 7919 * pipeline_id

  file_ds = tf.data.Dataset.from_tensor_slices(files)
  if shard_by_file:
    file_ds = file_ds.shard(pipelines, pipeline_id)
  if training and not shard_by_record:  # record sharding needs the same file order in every pipeline
    file_ds = file_ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
  if skip_corrupt:
    for path, offset, count in find_corrupt_shards(files):
      logging.getLogger(__name__).warning(
        "make_dataset.skip_corrupt: %s has a corrupt record at byte %s; only its first %d records are read",
        path,
        offset,
        count,
      )

  def reader(path):
    records = tf.data.TFRecordDataset(path)
    return records.ignore_errors(log_warning=True) if skip_corrupt else records

  if training:
    ds = file_ds.interleave(
      reader,
      cycle_length=max(1, min(cycle_length, len(files))),
      num_parallel_calls=tf.data.AUTOTUNE,
      deterministic=deterministic,
    )
  else:
    ds = file_ds.flat_map(reader)
  if shard_by_record:
    ds = ds.shard(pipelines, pipeline_id)
  if training:
    ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
  if repeat:
    ds = ds.repeat()
  if training:
    flip_seeds = tf.data.Dataset.random(seed=seed).batch(2, drop_remainder=True)
    ds = tf.data.Dataset.zip((ds, flip_seeds))
    if skip_steps:
      replicas = input_context.num_replicas_in_sync // pipelines if input_context is not None else 1
      ds = ds.skip(int(skip_steps) * batch_size * replicas)
    ds = ds.map(_training_example, num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
  else:
    ds = ds.map(_evaluation_example, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  ds = ds.batch(batch_size, drop_remainder=drop_remainder)
  return ds.prefetch(tf.data.AUTOTUNE)


def ground_truth_batch(data_dir, split, size):
  """The first `size` records of `split` that carry ground truth (gt_has == 1), as one batch in the split's fixed
  evaluation order, or None when the split has none: the trainer's validation batch, which `pdr_tf.probe` re-uses.

  Raises:
    FileNotFoundError: the split has no shards (as `make_dataset`).
    CorruptDataError: a corrupt record before the batch is full.
  """
  dataset = make_dataset(data_dir, split, size, training=False)
  return next(checked(dataset.unbatch().filter(lambda r: r["gt_has"] == 1).batch(size), data_dir, split), None)


@gin.configurable
def make_distributed_dataset(strategy, data_dir, split, global_batch_size, training=True, **kwargs):
  """Per-replica batches through `strategy.distribute_datasets_from_function`.

  Each input pipeline reads its share of the shards (input-context sharding) in batches of
  `input_context.get_per_replica_batch_size(global_batch_size)`.

  Args:
    strategy: a tf.distribute.Strategy.
    data_dir, split, training: as in make_dataset.
    global_batch_size: batch size summed over replicas; must divide by the number of replicas.
    **kwargs: more make_dataset arguments (shuffle_buffer, seed, drop_remainder, repeat, cycle_length).

  Returns:
    A tf.distribute.DistributedDataset of the make_dataset dicts.
  """
  list_shards(data_dir, split)  # fail here, with the path, rather than inside the strategy

  def dataset_fn(input_context):
    batch_size = input_context.get_per_replica_batch_size(global_batch_size)
    return make_dataset(data_dir, split, batch_size, training, input_context=input_context, **kwargs)

  return strategy.distribute_datasets_from_function(dataset_fn)
