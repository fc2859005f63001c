"""Shared pieces of the Beam conversion jobs: listing, DoFns and the pipeline body (one input: `inputs`).

Every job has the same shape: `ListInputs` lists the input files, a dataset-specific DoFn parses each path's labels,
`ProcessImage` decodes, converts, crops and resizes the image (and its optional ground-truth sidecar),
`EncodeExample` serializes it with `pdr_tf.data.feature_spec`, and `build_conversion` writes the shards of each split
(`WriteShards`: the same inputs give the same bytes, in an order fixed by each image's digest), the rejects file and the
manifest. Inputs that cannot be used leave through the "rejects" tagged output as {"path", "reason"} dicts and are
counted with Beam counters; with strict=True the first one raises instead.
"""

import hashlib
import json
import logging
import math
import os
import re

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.io import fileio
from apache_beam.io import tfrecordio
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from beam_pipelines import inputs
from pdr_tf.data import feature_spec

from pdr_tf.data import formats

NAMESPACE = "pdr_tf"  # Beam counter namespace
REJECTS_TAG = "rejects"
STRICT_MARKER = "strict mode: rejected input"

# ---------------------------------------------------------------------------------------------------------------
# Driver-side listing.


def is_local(path):
  """Whether a path is on the local file system (no scheme such as gs:// or s3://)."""
  return re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", path) is None


def check_input_dir(path, what):
  """Raises ValueError unless `path` is an existing input folder.

  Args:
    path: the folder (local path or gs://...).
    what: what it is, for the message (e.g. "UTKFace input directory").

  Raises:
    ValueError: "<what> <path> does not exist", or, on the local file system, "... is a file, not a folder" (a file
      would otherwise read as a folder that holds no inputs), or the folder holds entries Beam's local listing
      would drop without a word (a link to a folder, a broken link, an unreadable folder), named.
  """
  if not folder_exists(path):
    raise ValueError(f"{what} {path} does not exist")
  if is_local(path):
    if not os.path.isdir(path):
      raise ValueError(f"{what} {path} is a file, not a folder")
    _check_local_tree(path, what)


def _check_local_tree(root, what):
  """Raises ValueError naming what Beam's local listing would leave out without a word: it walks folders without
  following symbolic links to folders, skips folders it cannot read and drops broken links. (Hidden entries are
  never inputs.)"""
  problems = []

  def unreadable(error):
    problems.append(f"{error.filename}: cannot be read ({error.strerror})")

  for folder, dirs, files in os.walk(root, onerror=unreadable):
    dirs[:] = [d for d in dirs if not d.startswith(".")]
    for name in dirs:
      if os.path.islink(os.path.join(folder, name)):
        problems.append(f"{os.path.join(folder, name)}: a symbolic link to a folder, which the listing does not follow")
    for name in files:
      link = os.path.join(folder, name)
      if not name.startswith(".") and os.path.islink(link) and not os.path.exists(link):
        problems.append(f"{link}: a broken symbolic link")
  if problems:
    raise ValueError(
      f"{what} {root}: {len(problems)} entries would be left out of the conversion, e.g. {problems[:3]}; give the "
      "real folders (or copies of the files) instead"
    )


def folder_exists(path):
  """Whether `path` exists: on the local file system as a file or folder, on an object store also as a folder, i.e.
  a name prefix such as gs://bucket/raw, which is no object itself (so FileSystems.exists says no) but has objects
  under it."""
  return FileSystems.exists(path) or (not is_local(path) and _holds_objects(path))


def _holds_objects(path):
  """Whether any object lies under an object store's name prefix."""
  try:
    (result,) = FileSystems.match([path.rstrip("/") + "/**"], limits=[1])
  except (OSError, ValueError):  # BeamIOError (an OSError): no such bucket, no access
    return False
  return bool(result.metadata_list)


def check_input_file(path, what, hint=""):
  """Raises ValueError unless `path` is an existing input file.

  Args:
    path: the file (local path or gs://...).
    what: what it is, for the message (e.g. "BBT track labels file").
    hint: appended to the "does not exist" message (e.g. " (pass --labels_file)").

  Raises:
    ValueError: "<what> <path> does not exist<hint>", or, on the local file system, "... is a folder, not a file".
  """
  if not FileSystems.exists(path):
    raise ValueError(f"{what} {path} does not exist{hint}")
  if is_local(path) and os.path.isdir(path):
    raise ValueError(f"{what} {path} is a folder, not a file")


def is_input_candidate(path, exclude_names=(), root=None, root_images_only=False):
  """Whether a listed file may be an input.

  Hidden files (".name") and `exclude_names` never are. With `root_images_only`, a file directly in `root` is a
  candidate only when its name is an image name (formats.is_image_name): the dataset root also holds metadata
  (CSV files, summaries) that are not inputs, while every file below it is one, whatever its depth, so that a
  file at an unexpected depth is rejected with a reason rather than lost.
  """
  if path.endswith("/"):  # an object store's folder marker (an empty object named "folder/"), not a file
    return False
  name = path.split("/")[-1]
  if name.startswith(".") or name in exclude_names:
    return False
  if root_images_only and root is not None and relative_parts(path, root) == [name]:
    return formats.is_image_name(name)
  return True


def relative_parts(path, root):
  """The components of `path` below `root` (e.g. ["train", "x.png"]), or [] when path is not below root."""
  root = root.rstrip("/")
  if not path.startswith(root + "/"):
    return []
  return [part for part in path[len(root) + 1 :].split("/") if part]


def recursive_pattern(root):
  """Glob pattern of every file below `root`, at any depth (Beam's FileSystems expand "**")."""
  return FileSystems.join(root, "**")


def match_files(pattern, exclude_names=(), root=None, root_images_only=False):
  """Sorted files matching a glob pattern through Beam's FileSystems that pass `is_input_candidate`."""
  result = FileSystems.match([pattern])[0]
  return sorted(
    m.path for m in result.metadata_list if is_input_candidate(m.path, exclude_names, root, root_images_only)
  )


def pair_ground_truth(paths):
  """Splits listed files into input items and their ground-truth sidecars.

  Args:
    paths: file paths; sidecars (names ending in formats.GT_SUFFIX) are not inputs themselves.

  Returns:
    List of {"path", "gt_path"} dicts, gt_path None where the image has no sidecar, in path order.
  """
  sidecars = {p for p in paths if p.endswith(formats.GT_SUFFIX)}
  items = [
    {"path": p, "gt_path": inputs.gt_path_for(p) if inputs.gt_path_for(p) in sidecars else None}
    for p in paths
    if p not in sidecars
  ]
  orphans = sorted(sidecars - {item["gt_path"] for item in items})  # one sidecar may serve x.png and x.jpg
  if orphans:
    logging.warning(
      "%d ground-truth sidecars have no image beside them (an image <stem>.<ext> for <stem>%s) and are ignored: %s%s",
      len(orphans),
      formats.GT_SUFFIX,
      ", ".join(orphans[:5]),
      ", ..." if len(orphans) > 5 else "",
    )
  return items


def shards_for(expected, num_shards=0, images_per_shard=2000):
  """Number of shards of a split: `num_shards` when positive, else ceil(expected / images_per_shard), >= 1."""
  if num_shards > 0:
    return int(num_shards)
  return max(1, int(math.ceil(expected / float(images_per_shard))))


def _stem_entry(path):
  if path.endswith(formats.GT_SUFFIX):
    return path[: -len(formats.GT_SUFFIX)], ("gt", path)
  return os.path.splitext(path)[0], ("image", path)


def _items_of_stem(stem, entries):
  del stem
  entries = list(entries)
  sidecars = [p for kind, p in entries if kind == "gt"]
  for kind, path in sorted(entries):
    if kind == "image":
      yield {"path": path, "gt_path": sidecars[0] if sidecars else None}


class ListInputs(beam.PTransform):
  """Glob patterns -> input items {"path", "gt_path"}, listed by the workers.

  The same items as `pair_ground_truth(match_files(...))` in the driver: every matching file that passes
  `is_input_candidate`, with ground-truth sidecars attached to their image instead of being inputs. Listing inside
  the pipeline keeps the job graph small whatever the number of files (a Create of every path would not).
  """

  def __init__(self, patterns, exclude_names=(), root=None, root_images_only=False):
    super().__init__()
    self._patterns = list(patterns)
    self._exclude = tuple(exclude_names)
    self._root, self._root_images_only = root, root_images_only

  def expand(self, pbegin):
    return (
      pbegin
      | "Patterns" >> beam.Create(self._patterns)
      | "Match" >> fileio.MatchAll()
      | "Paths" >> beam.Map(lambda metadata: metadata.path)
      | "Candidates" >> beam.Filter(is_input_candidate, self._exclude, self._root, self._root_images_only)
      | "ByStem" >> beam.Map(_stem_entry)
      | "GroupStems" >> beam.GroupByKey()
      | "Items" >> beam.FlatMapTuple(_items_of_stem)
    )


# ---------------------------------------------------------------------------------------------------------------
# DoFns.


class RejectingDoFn(beam.DoFn):
  """Base DoFn whose unusable inputs go to the "rejects" output (or raise with strict=True)."""

  def __init__(self, strict=False):
    super().__init__()
    self._strict = strict

  def reject(self, path, reason):
    """Counts a reject and returns its tagged output; raises inputs.RejectedInputError in strict mode."""
    Metrics.counter(NAMESPACE, "rejected").inc()
    Metrics.counter(NAMESPACE, f"rejected: {reason}").inc()
    if self._strict:
      raise inputs.RejectedInputError(f"{STRICT_MARKER} {path}: {reason}")
    return pvalue.TaggedOutput(REJECTS_TAG, {"path": path, "reason": reason})


class ProcessImage(RejectingDoFn):
  """Item {"path", "gt_path", "record"} -> full record: decoded, converted, cropped, resized, PNG-encoded.

  The crop is `box_fn(width, height) -> (left, top, right, bottom)` on the raw image; the ground-truth depth,
  when a sidecar exists, gets the same box and resize (`inputs.crop_resize_depth`). Light and view are stored as
  given.
  """

  def __init__(self, box_fn, strict=False, image_size=formats.IMAGE_SIZE):
    super().__init__(strict)
    self._box_fn = box_fn
    self._size = image_size

  def process(self, item):
    path = item["path"]
    try:
      try:
        data = inputs.read_bytes(path)
      except Exception as e:  # vanished or unreadable file: a reject, not a failed job
        raise inputs.Reject(inputs.REASON_UNREADABLE) from e
      image, mode = inputs.decode_image(data)
      height, width = image.shape[:2]
      box = self._box_fn(width, height)
      record = dict(item.get("record", {}))
      record.update(
        {
          "image/encoded": inputs.encode_png(inputs.crop_resize(image, box, self._size)),
          "image/height": self._size,
          "image/width": self._size,
          "image/format": "png",
          "source/path": path,
        }
      )
      if item.get("gt_path"):
        try:
          gt_data = inputs.read_bytes(item["gt_path"])
        except Exception as e:
          raise inputs.Reject(inputs.REASON_BAD_GT) from e
        gt = inputs.load_ground_truth(gt_data, height, width)
        record.update(
          {
            "gt/has": 1,
            "gt/depth": inputs.crop_resize_depth(gt["depth"], box, self._size),
            "gt/light": gt["light"],
            "gt/view": gt["view"],
          }
        )
    except inputs.Reject as e:
      yield self.reject(path, e.reason)
      return
    except Exception as e:  # pylint: disable=broad-except  (one file's surprise must not fail every other file)
      logging.getLogger(__name__).warning(
        "%s: unexpected %s while converting it", path, type(e).__name__, exc_info=True
      )
      yield self.reject(path, f"{inputs.REASON_UNEXPECTED} ({type(e).__name__})")
      return
    if mode != "RGB":
      Metrics.counter(NAMESPACE, f"converted from {mode}").inc()
    yield record


class EncodeExample(beam.DoFn):
  """Record dict -> (image digest, serialized tf.train.Example of the feature_spec schema); counts written records.

  The digest (`image_digest`) fixes the record's shard and its place in the shard (see WriteShards).
  """

  def process(self, record):
    Metrics.counter(NAMESPACE, "written").inc()
    yield image_digest(record), feature_spec.serialize_example(record)


# ---------------------------------------------------------------------------------------------------------------
# Deterministic shards.


def image_digest(record):
  """SHA-1 of a record's encoded image: where the record goes in its split.

  A digest of the image, not of the whole example, so that a record's shard and place follow its content and not
  its `source/path`: the same dataset converted from another folder trains in the same order.
  """
  return hashlib.sha1(record["image/encoded"]).digest()


def shard_of(digest, num_shards):
  """Shard index in [0, num_shards) of a record with this image digest (uniform over records)."""
  return int.from_bytes(digest[:8], "big") % num_shards


def keyed_by_shard(keyed, num_shards):
  """(digest, serialized) -> (shard index, (digest, serialized))."""
  return shard_of(keyed[0], num_shards), keyed


def write_shard(shard, output_dir, split, num_shards):
  """Writes one shard of a split, its records ordered by image digest, and returns its path.

  `shard` is a CoGroupByKey element (index, {"records": [(digest, serialized)], "index": [index]}); the index
  entry makes a shard with no records exist too. The shard is written to a hidden file beside it and renamed into
  place, so that a retried bundle rewrites it whole and a reader never sees half a shard. The TFRecord framing is
  Beam's own (the one beam.io.WriteToTFRecord writes), so that workers need no TensorFlow.
  """
  index, grouped = shard
  path = feature_spec.shard_path(output_dir, split, index, num_shards)
  directory, name = FileSystems.split(path)
  partial = FileSystems.join(directory, f".{name}.partial")
  with FileSystems.create(partial, compression_type=CompressionTypes.UNCOMPRESSED) as f:
    for _, serialized in sorted(grouped["records"]):  # records with identical images: by their serialized bytes
      tfrecordio._TFRecordUtil.write_record(f, serialized)  # pylint: disable=protected-access
  FileSystems.rename([partial], [path])
  return path


class WriteShards(beam.PTransform):
  """(image digest, serialized example) pairs of one split (EncodeExample) -> the paths of its `num_shards` shards.

  Unlike beam.io.WriteToTFRecord, whose shard of a record and order within a shard follow the runner's bundles, so
  that a seeded training run's data order would depend on the runner's scheduling, a record's shard and place
  follow its image digest: the same inputs give byte-identical shards on any runner and worker count.
  """

  def __init__(self, output_dir, split, num_shards):
    super().__init__()
    self._output_dir, self._split, self._num_shards = output_dir, split, int(num_shards)

  def expand(self, keyed):
    keyed = keyed | "ByShard" >> beam.Map(keyed_by_shard, self._num_shards)
    indices = keyed.pipeline | "ShardIndices" >> beam.Create([(i, i) for i in range(self._num_shards)])
    return (
      {"records": keyed, "index": indices}
      | "GroupShards" >> beam.CoGroupByKey()
      | "WriteShard" >> beam.Map(write_shard, self._output_dir, self._split, self._num_shards)
    )


# ---------------------------------------------------------------------------------------------------------------
# Pipeline body.


def _split_index(record, num_partitions, splits):
  del num_partitions
  return splits.index(record["split"])


def _split_and_class(record):
  return (record["split"], feature_spec.class_key(record))


def _reject_json(reject):
  return json.dumps({"path": reject["path"], "reason": reject["reason"]})


def write_manifest(
  _, split_class_counts, reject_reasons, inputs, shard_files, rejects_files, *, output_dir, dataset, args, splits
):
  """Writes <output_dir>/manifest.json from the pipeline's counts; fails the job if inputs != written + rejected.

  Runs as the last step (its side inputs are the written shards and rejects file).
  """
  del rejects_files  # only a side input so that the manifest comes after the rejects file
  shards = {split: [f for s, f in shard_files if s == split] for split in splits}
  manifest = feature_spec.build_manifest(dataset, args, inputs, split_class_counts, reject_reasons, shards)
  path = FileSystems.join(output_dir, feature_spec.MANIFEST_FILENAME)
  with FileSystems.create(path, mime_type="application/json") as f:
    f.write(json.dumps(manifest, indent=2).encode("utf-8"))
  if not manifest["balanced"]:
    raise RuntimeError(
      f"{path}: inputs {manifest['inputs']} != written {manifest['written']} + rejected "
      f"{manifest['rejected']}; some input was lost"
    )
  return path


def build_conversion(
  pipeline,
  *,
  dataset,
  patterns,
  parse_fn,
  box_fn,
  output_dir,
  split_shards,
  exclude_names=(),
  root=None,
  root_images_only=False,
  strict=False,
  args=None,
):
  """Adds a conversion to `pipeline`: list, parse, process, encode, write shards, rejects and manifest.

  Args:
    pipeline: a beam.Pipeline.
    dataset: name stored in the manifest.
    patterns: glob patterns of the input files (see ListInputs).
    parse_fn: dataset DoFn turning an item into {"path", "gt_path", "record"} (labels, split) or a reject.
    box_fn: crop box function for ProcessImage.
    output_dir: where shards, rejects.jsonl and manifest.json go.
    split_shards: ordered dict split -> number of shards; every record's split must be a key.
    exclude_names: file names that are never inputs (besides hidden files and sidecars).
    root, root_images_only: see `is_input_candidate`.
    strict: fail on the first reject.
    args: JSON-serialisable dict stored in the manifest.

  Returns:
    Dict of the main PCollections: records, rejects, manifest (its path).
  """
  splits = list(split_shards)
  inputs = pipeline | "ListInputs" >> ListInputs(patterns, exclude_names, root, root_images_only)
  parsed = inputs | "ParseLabels" >> beam.ParDo(parse_fn).with_outputs(REJECTS_TAG, main="ok")
  processed = parsed.ok | "DecodeCropResize" >> beam.ParDo(ProcessImage(box_fn, strict)).with_outputs(
    REJECTS_TAG, main="ok"
  )
  records = processed.ok
  rejects = (parsed[REJECTS_TAG], processed[REJECTS_TAG]) | "AllRejects" >> beam.Flatten()

  parts = records | "BySplit" >> beam.Partition(_split_index, len(splits), splits)
  tagged_files = []
  for split, part in zip(splits, parts):
    files = (
      part
      | f"Encode_{split}" >> beam.ParDo(EncodeExample())
      | f"Write_{split}" >> WriteShards(output_dir, split, split_shards[split])
    )
    tagged_files.append(files | f"Name_{split}" >> beam.Map(lambda f, s=split: (s, f)))
  shard_files = tagged_files | "AllShards" >> beam.Flatten()
  rejects_file = (
    rejects
    | "RejectsJson" >> beam.Map(_reject_json)
    | "WriteRejects"
    >> beam.io.WriteToText(
      FileSystems.join(output_dir, os.path.splitext(feature_spec.REJECTS_FILENAME)[0]),
      file_name_suffix=os.path.splitext(feature_spec.REJECTS_FILENAME)[1],
      shard_name_template="",
    )
  )

  class_counts = (
    records | "SplitClass" >> beam.Map(_split_and_class) | "CountSplitClass" >> beam.combiners.Count.PerElement()
  )
  reason_counts = (
    rejects | "Reason" >> beam.Map(lambda r: r["reason"]) | "CountReasons" >> beam.combiners.Count.PerElement()
  )
  input_count = inputs | "CountInputs" >> beam.combiners.Count.Globally()
  manifest = (
    pipeline
    | "ManifestTrigger" >> beam.Create([None])
    | "WriteManifest"
    >> beam.Map(
      write_manifest,
      beam.pvalue.AsList(class_counts),
      beam.pvalue.AsList(reason_counts),
      beam.pvalue.AsSingleton(input_count),
      beam.pvalue.AsList(shard_files),
      beam.pvalue.AsList(rejects_file),
      output_dir=output_dir,
      dataset=dataset,
      args=args or {},
      splits=splits,
    )
  )
  return {"records": records, "rejects": rejects, "manifest": manifest}
