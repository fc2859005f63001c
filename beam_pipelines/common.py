"""Shared pieces of the Beam conversion jobs: image decoding and conversion, crops, DoFns and the pipeline body.

Every job has the same shape: `ListInputs` lists the input files, a dataset-specific DoFn parses each path's labels,
`ProcessImage` decodes, converts, crops and resizes the image (and its optional ground-truth sidecar),
`EncodeExample` serializes it with `pdr_tf.data.feature_spec`, and `build_conversion` writes the shards of each split,
the rejects file and the manifest. Inputs that cannot be used leave through the "rejects" tagged output as
{"path", "reason"} dicts and are counted with Beam counters; with strict=True the first one raises instead.
"""

import io
import json
import logging
import math
import os
import struct

import apache_beam as beam
import numpy as np
from apache_beam import pvalue
from apache_beam.io import fileio
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from PIL import Image, UnidentifiedImageError

from pdr_tf.data import feature_spec

from pdr_tf.data import formats

NAMESPACE = "pdr_tf"  # Beam counter namespace
REJECTS_TAG = "rejects"
STRICT_MARKER = "strict mode: rejected input"

# Reasons shared by every job (dataset-specific reasons live in the job modules).
REASON_UNREADABLE = "unreadable file"
REASON_EMPTY = "empty file"
REASON_NOT_IMAGE = "not an image"
REASON_CORRUPT = "truncated or corrupt image"
REASON_ZERO_SIZE = "zero-size image"
REASON_MODE = "unsupported image mode"
REASON_BAD_GT = "invalid ground truth"

# Leading bytes of common image formats: an unidentifiable file that starts like an image is corrupt, not foreign.
_IMAGE_SIGNATURES = (
  b"\x89PNG\r\n\x1a\n",
  b"\xff\xd8\xff",
  b"GIF87a",
  b"GIF89a",
  b"BM",
  b"II*\x00",
  b"MM\x00*",
  b"RIFF",
)
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
_JPEG_SOF_MARKERS = set(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # start-of-frame markers (not DHT, JPG, DAC)
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


class Reject(Exception):
  """An input that cannot be converted; `reason` is the short text written to rejects.jsonl."""

  def __init__(self, reason):
    super().__init__(reason)
    self.reason = reason


class RejectedInputError(ValueError):
  """Raised instead of rejecting when a job runs with --strict."""


# ---------------------------------------------------------------------------------------------------------------
# Images.


def header_size(data):
  """(width, height) declared in a PNG, GIF, BMP or JPEG header, or None when the header says nothing.

  Pillow refuses to open some images whose header declares a zero width or height (a PNG with width 0 fails as
  a broken file), so their size is read here first to reject them as zero-size, not corrupt.
  """
  if data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) >= 24 and data[12:16] == b"IHDR":
    return struct.unpack(">II", data[16:24])
  if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
    return struct.unpack("<HH", data[6:10])
  if data.startswith(b"BM") and len(data) >= 26:
    width, height = struct.unpack("<ii", data[18:26])
    return abs(width), abs(height)
  if data.startswith(b"\xff\xd8"):
    pos = 2
    while pos + 9 <= len(data):
      if data[pos] != 0xFF:
        return None
      marker = data[pos + 1]
      if marker in _JPEG_SOF_MARKERS:
        height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
        return width, height
      if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
        pos += 2
        continue
      pos += 2 + struct.unpack(">H", data[pos + 2 : pos + 4])[0]
  return None


def decode_image(data):
  """Decodes image bytes to RGB uint8, converting what can be converted.

  Conversions: grayscale ("L", "1"), CMYK/YCbCr and palette images go to RGB; images with alpha (RGBA, LA, PA,
  palette with transparency) are composited on black, i.e. colour * alpha, so transparent background becomes
  black as in rendered datasets; 16-bit grayscale ("I;16*", and "I" as older Pillow opens 16-bit PNGs) is
  scaled from [0, 65535] to [0, 255] with rounding.

  Args:
    data: the file's bytes.

  Returns:
    (image, mode): uint8 [H, W, 3] and the source's Pillow mode (e.g. "RGB", "L", "I;16").

  Raises:
    Reject: empty data, not an image, truncated or corrupt data, a zero-size image, or a mode that has no
      sensible RGB meaning (e.g. "F", float).
  """
  if not data:
    raise Reject(REASON_EMPTY)
  declared = header_size(data)
  if declared is not None and 0 in declared:
    raise Reject(REASON_ZERO_SIZE)
  try:
    image = Image.open(io.BytesIO(data))
  except UnidentifiedImageError as e:
    raise Reject(REASON_CORRUPT if data.startswith(_IMAGE_SIGNATURES) else REASON_NOT_IMAGE) from e
  except Exception as e:  # Pillow raises many types on malformed headers; all mean the same here
    raise Reject(REASON_CORRUPT) from e
  try:
    image.load()
  except Exception as e:  # truncated streams: OSError, SyntaxError, ValueError, EOFError depending on codec
    raise Reject(REASON_CORRUPT) from e
  width, height = image.size
  if width == 0 or height == 0:
    raise Reject(REASON_ZERO_SIZE)
  mode = image.mode
  if mode == "RGB":
    return np.asarray(image, dtype=np.uint8).copy(), mode
  if mode in _SIXTEEN_BIT_MODES:
    values = np.clip(np.asarray(image, dtype=np.int64), 0, 65535)
    gray = ((values * 255 + 32767) // 65535).astype(np.uint8)
    return np.repeat(gray[:, :, None], 3, axis=2), mode
  if mode in _ALPHA_MODES or (mode == "P" and "transparency" in image.info):
    rgba = np.asarray(image.convert("RGBA"), dtype=np.uint16)
    rgb = (rgba[:, :, :3] * rgba[:, :, 3:] + 127) // 255
    return rgb.astype(np.uint8), mode
  if mode == "F":
    raise Reject(REASON_MODE)
  try:
    return np.asarray(image.convert("RGB"), dtype=np.uint8).copy(), mode
  except Exception as e:  # any mode Pillow cannot map to RGB
    raise Reject(REASON_MODE) from e


def center_box(width, height, fraction=formats.FACE_CENTER_CROP):
  """Centred square crop box for faces.

  The side is `fraction` of the shorter side, so non-square face crops keep their aspect ratio after resizing.

  Args:
    width, height: image size in pixels.
    fraction: kept fraction of the shorter side, in (0, 1].

  Returns:
    (left, top, right, bottom) in pixels (floats), Pillow's box convention.
  """
  side = fraction * min(width, height)
  left, top = (width - side) / 2.0, (height - side) / 2.0
  return (left, top, left + side, top + side)


def pixel_box(box, width, height):
  """Rounds a crop box to whole pixels inside the image: (left, top, right, bottom) ints, non-empty."""
  left, top, right, bottom = (int(round(v)) for v in box)
  left, top = min(max(left, 0), width - 1), min(max(top, 0), height - 1)
  return (left, top, min(max(right, left + 1), width), min(max(bottom, top + 1), height))


def crop_resize(image, box, size=formats.IMAGE_SIZE):
  """Crops `box` out of an RGB image, then resizes it (bilinear, antialiased when shrinking).

  Cropping first (as Unsup3D's crop-then-resize transforms do) keeps pixels outside the box out of the filter.

  Args:
    image: uint8 [H, W, 3].
    box: (left, top, right, bottom) in pixels; rounded to whole pixels (`pixel_box`).
    size: output side in pixels.

  Returns:
    uint8 [size, size, 3].
  """
  height, width = image.shape[:2]
  cropped = Image.fromarray(image).crop(pixel_box(box, width, height))
  return np.asarray(cropped.resize((size, size), Image.Resampling.BILINEAR), dtype=np.uint8)


def crop_resize_depth(depth, box, size=formats.IMAGE_SIZE):
  """Applies the image's crop and resize to a depth map, resampled like the image on the object's interior.

  Depth is filtered with the image's own (bilinear, antialiased) filter, normalised by the filtered object mask, and
  kept only where every contributing raw pixel is on the object; elsewhere it is 0 (background). So each output
  pixel's depth is the surface depth at that pixel's centre (to second order), which the ground-truth normals
  need: nearest-neighbour picks raw pixels up to half a raw pixel off the output grid, and with a 10-degree field
  of view such offsets turn into normal errors of tens of degrees.

  Args:
    depth: float [H, W] in the raw image's pixels, 0 where no object.
    box: the image's crop box (left, top, right, bottom); rounded as in crop_resize.
    size: output side in pixels.

  Returns:
    float32 [size, size].
  """
  height, width = depth.shape
  depth = np.asarray(depth, dtype=np.float32)
  mask = (depth > 0).astype(np.float32)
  crop = pixel_box(box, width, height)

  def resample(values):
    cropped = Image.fromarray(values).crop(crop)
    return np.asarray(cropped.resize((size, size), Image.Resampling.BILINEAR), dtype=np.float32)

  coverage = resample(mask)
  weighted = resample(depth * mask)
  inside = coverage > 1.0 - 1e-4
  return np.where(inside, weighted / np.where(inside, coverage, 1.0), 0.0).astype(np.float32)


def encode_png(image):
  """PNG bytes of a uint8 [H, W, 3] image."""
  buffer = io.BytesIO()
  Image.fromarray(image).save(buffer, format="PNG")
  return buffer.getvalue()


def gt_path_for(image_path):
  """Ground-truth sidecar path of an image: the path without its last extension plus formats.GT_SUFFIX."""
  return os.path.splitext(image_path)[0] + formats.GT_SUFFIX


def load_ground_truth(data, height, width):
  """Reads a ground-truth sidecar (formats.GT_KEYS in an .npz) and checks it against its image.

  Args:
    data: the .npz file's bytes.
    height, width: the raw image's size in pixels; the depth map must have this shape.

  Returns:
    Dict with depth float32 [height, width], light float32 [4], view float32 [6].

  Raises:
    Reject: unreadable archive, missing keys, wrong shapes or non-finite values.
  """
  try:
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
      gt = {key: np.asarray(npz[key], dtype=np.float32) for key in formats.GT_KEYS}
  except Exception as e:  # zip, pickle and key errors all mean an unusable sidecar
    raise Reject(REASON_BAD_GT) from e
  ok = (
    gt["depth"].shape == (height, width)
    and gt["light"].size == formats.GT_LIGHT_DIM
    and gt["view"].size == formats.GT_VIEW_DIM
    and all(np.all(np.isfinite(v)) for v in gt.values())
  )
  if not ok:
    raise Reject(REASON_BAD_GT)
  return {"depth": gt["depth"], "light": gt["light"].reshape(-1), "view": gt["view"].reshape(-1)}


def read_bytes(path):
  """Whole file through Beam's FileSystems (local paths, gs://, ...)."""
  with FileSystems.open(path) as f:
    return f.read()


def decode_text(data, path, encoding="utf-8-sig", flag=None):
  """Decodes a text file's bytes, with an error naming the file, the line and the byte when that fails.

  Args:
    data: the bytes.
    path: the file (for the message).
    encoding: codec name ("utf-8-sig": UTF-8 with or without a byte-order mark).
    flag: the command-line flag that sets the encoding, suggested in the message.

  Raises:
    ValueError: the bytes are not valid in `encoding`, or the encoding is unknown.
  """
  try:
    return data.decode(encoding)
  except LookupError as e:
    raise ValueError(f"{path}: unknown text encoding {encoding!r}") from e
  except UnicodeDecodeError as e:
    line = data.count(b"\n", 0, e.start) + 1
    column = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
    hint = f"; if the file is in another encoding, pass it with {flag} (e.g. {flag}=latin-1)" if flag else ""
    raise ValueError(
      f"{path}:{line}:{column}: byte 0x{data[e.start]:02x} is not valid {encoding} text ({e.reason}){hint}"
    ) from e


# ---------------------------------------------------------------------------------------------------------------
# Driver-side listing.


def is_input_candidate(path, exclude_names=(), root=None, root_images_only=False):
  """Whether a listed file may be an input.

  Hidden files (".name") and `exclude_names` never are. With `root_images_only`, a file directly in `root` is a
  candidate only when its name is an image name (formats.is_image_name): the dataset root also holds metadata
  (CSV files, summaries) that are not inputs, while every file below it is one, whatever its depth, so that a
  file at an unexpected depth is rejected with a reason rather than lost.
  """
  name = path.rstrip("/").split("/")[-1]
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
    {"path": p, "gt_path": gt_path_for(p) if gt_path_for(p) in sidecars else None} for p in paths if p not in sidecars
  ]
  orphans = len(sidecars) - sum(1 for item in items if item["gt_path"])
  if orphans:
    logging.warning("%d ground-truth sidecars have no image beside them; they are ignored", orphans)
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
    """Counts a reject and returns its tagged output; raises RejectedInputError in strict mode."""
    Metrics.counter(NAMESPACE, "rejected").inc()
    Metrics.counter(NAMESPACE, f"rejected: {reason}").inc()
    if self._strict:
      raise RejectedInputError(f"{STRICT_MARKER} {path}: {reason}")
    return pvalue.TaggedOutput(REJECTS_TAG, {"path": path, "reason": reason})


class ProcessImage(RejectingDoFn):
  """Item {"path", "gt_path", "record"} -> full record: decoded, converted, cropped, resized, PNG-encoded.

  The crop is `box_fn(width, height) -> (left, top, right, bottom)` on the raw image; the ground-truth depth,
  when a sidecar exists, gets the same box with nearest-neighbour resizing. Light and view are stored as given.
  """

  def __init__(self, box_fn, strict=False, image_size=formats.IMAGE_SIZE):
    super().__init__(strict)
    self._box_fn = box_fn
    self._size = image_size

  def process(self, item):
    path = item["path"]
    try:
      try:
        data = read_bytes(path)
      except Exception as e:  # vanished or unreadable file: a reject, not a failed job
        raise Reject(REASON_UNREADABLE) from e
      image, mode = decode_image(data)
      height, width = image.shape[:2]
      box = self._box_fn(width, height)
      record = dict(item.get("record", {}))
      record.update(
        {
          "image/encoded": encode_png(crop_resize(image, box, self._size)),
          "image/height": self._size,
          "image/width": self._size,
          "image/format": "png",
          "source/path": path,
        }
      )
      if item.get("gt_path"):
        try:
          gt_data = read_bytes(item["gt_path"])
        except Exception as e:
          raise Reject(REASON_BAD_GT) from e
        gt = load_ground_truth(gt_data, height, width)
        record.update(
          {
            "gt/has": 1,
            "gt/depth": crop_resize_depth(gt["depth"], box, self._size),
            "gt/light": gt["light"],
            "gt/view": gt["view"],
          }
        )
    except Reject as e:
      yield self.reject(path, e.reason)
      return
    if mode != "RGB":
      Metrics.counter(NAMESPACE, f"converted from {mode}").inc()
    yield record


class EncodeExample(beam.DoFn):
  """Record dict -> serialized tf.train.Example (pdr_tf.data.feature_spec schema); counts written records."""

  def process(self, record):
    Metrics.counter(NAMESPACE, "written").inc()
    yield feature_spec.serialize_example(record)


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
      | f"Write_{split}"
      >> beam.io.WriteToTFRecord(feature_spec.shard_prefix(output_dir, split), num_shards=split_shards[split])
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
