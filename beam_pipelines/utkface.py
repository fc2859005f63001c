"""Converts UTKFace aligned face crops to pdr_tf TFRecords (train/val/test 80/10/10 by a stable file-name hash).

Input: <input_dir>/<age>_<gender>_<race>_<YYYYMMDDHHMMSSFFF>.jpg (any image extension, also ".jpg.chip.jpg"),
flat; optional
ground-truth sidecars <name without extension>.gt.npz. Each face is centre-cropped (pdr_tf.data.formats.FACE_CENTER_CROP
of the shorter side) and resized to 64x64. Age, gender and race come from the file name; label/id is -1.
Malformed names (the real download has some), stray files, files in subfolders and unusable images are listed in
rejects.jsonl.
"""

import hashlib
import sys

from beam_pipelines import common, inputs, runner
from pdr_tf.data import formats

DATASET = "utkface"
REASON_BAD_NAME = "malformed UTKFace file name"
REASON_OUTSIDE = "file outside the image folder"
EXCLUDE_NAMES = (formats.SYNTHETIC_LABELS_FILENAME,)


def split_of(filename):
  """Deterministic split of a file name: md5 of the base name -> bucket in [0, 1) -> formats.UTKFACE_SPLITS.

  Args:
    filename: base name (a path is reduced to its base name, so the split does not depend on where data lives).

  Returns:
    "train", "val" or "test".
  """
  name = filename.rstrip("/").split("/")[-1]
  # The name's own bytes: a name that is not UTF-8 (surrogate-escaped by Python) hashes as stored, not as an error.
  bucket = int.from_bytes(hashlib.md5(name.encode("utf-8", "surrogateescape")).digest()[:8], "big") / float(1 << 64)
  cumulative = 0.0
  for split, fraction in formats.UTKFACE_SPLITS:
    cumulative += fraction
    if bucket < cumulative:
      return split
  return formats.UTKFACE_SPLITS[-1][0]


def parse_name(filename):
  """Labels of a UTKFace file name.

  Returns:
    Dict with label/age, label/gender, label/race (ints), or None when the name does not match
    formats.UTKFACE_FILENAME.
  """
  match = formats.UTKFACE_FILENAME.match(filename.rstrip("/").split("/")[-1])
  if match is None:
    return None
  return {"label/age": int(match["age"]), "label/gender": int(match["gender"]), "label/race": int(match["race"])}


class ParseUtkfacePath(common.RejectingDoFn):
  """Item {"path", "gt_path"} -> item with "record" (labels, split), or a reject (malformed name, subfolder)."""

  def __init__(self, root, strict=False):
    super().__init__(strict)
    self._root = root

  def process(self, item):
    if len(common.relative_parts(item["path"], self._root)) != 1:
      yield self.reject(item["path"], REASON_OUTSIDE)
      return
    labels = parse_name(item["path"])
    if labels is None:
      yield self.reject(item["path"], REASON_BAD_NAME)
      return
    record = dict(labels, **{"label/id": -1, "label/name": "", "split": split_of(item["path"])})
    yield dict(item, record=record)


def list_inputs(input_dir):
  """Input items of a UTKFace directory.

  Every non-hidden file below the directory is an input, except ground-truth sidecars and the synthetic worlds'
  label file (formats.SYNTHETIC_LABELS_FILENAME); a stray file is rejected, not skipped, and so is a file in a
  subfolder (UTKFace is flat).

  Raises:
    ValueError: the directory does not exist, is a file, holds entries the listing would drop
      (`common.check_input_dir`) or holds no file.
  """
  common.check_input_dir(input_dir, "UTKFace input directory")
  items = common.pair_ground_truth(common.match_files(common.recursive_pattern(input_dir), EXCLUDE_NAMES))
  if not items:
    raise ValueError(f"UTKFace input directory {input_dir} holds no files")
  return items


def build_pipeline(
  pipeline,
  input_dir,
  output_dir,
  strict=False,
  num_shards=0,
  images_per_shard=runner.DEFAULT_IMAGES_PER_SHARD,
  args=None,
):
  """Adds the UTKFace conversion to `pipeline` (lists the inputs now to check them and size the shards).

  Args:
    pipeline: a beam.Pipeline.
    input_dir: UTKFace directory.
    output_dir: output directory (shards, manifest.json, rejects.jsonl).
    strict: fail on the first reject.
    num_shards: shards per split (0: from images_per_shard).
    images_per_shard: target records per shard.
    args: dict stored in the manifest.

  Returns:
    Dict of PCollections (see common.build_conversion).
  """
  items = list_inputs(input_dir)
  expected = {split: 0 for split, _ in formats.UTKFACE_SPLITS}
  for item in items:
    if len(common.relative_parts(item["path"], input_dir)) == 1:
      expected[split_of(item["path"])] += 1
  split_shards = {split: common.shards_for(n, num_shards, images_per_shard) for split, n in expected.items()}
  return common.build_conversion(
    pipeline,
    dataset=DATASET,
    patterns=[common.recursive_pattern(input_dir)],
    exclude_names=EXCLUDE_NAMES,
    parse_fn=ParseUtkfacePath(input_dir, strict),
    box_fn=inputs.center_box,
    output_dir=output_dir,
    split_shards=split_shards,
    strict=strict,
    args=args,
  )


def make_parser():
  return runner.make_parser(DATASET, __doc__)


convert, main = runner.entry_points(DATASET, make_parser, build_pipeline, "a UTKFace folder")


if __name__ == "__main__":
  sys.exit(main())
