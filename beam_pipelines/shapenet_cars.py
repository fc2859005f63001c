"""Converts ShapeNet car renders ("syncar", as in Unsup3D) to pdr_tf TFRecords, split by folder.

Input: <input_dir>/{train,val,test}/<32-hex model id>_<index>.png (any image extension; optional <name>.gt.npz
ground truth beside each image) and the ShapeNet metadata CSV (default <input_dir>/metadata.csv; columns fullId,
wnlemmas, name, ...).
Each render is cropped with pdr_tf.data.formats.SYNCAR_CROP and resized to 64x64. A model's class is the first of the
paper's five test classes (formats.CAR_CLASSES) whose lemmas (formats.CAR_CLASS_LEMMAS) appear among the row's
comma-separated `wnlemmas`, or else as whole words in its `name`; models of any other class are written with
label/id -1 and label/name "" in every split (evaluation keeps label/id >= 0). Images of models missing from the
CSV, badly named files, files outside a split folder (at any depth) and unusable images are listed in
rejects.jsonl.
"""

import csv
import io
import logging
import re
import sys

from apache_beam.io.filesystems import FileSystems

from beam_pipelines import common, inputs, runner
from pdr_tf.data import formats

DATASET = "shapenet_cars"
REASON_BAD_NAME = "malformed syncar file name"
REASON_NO_MODEL = "model not in metadata"
REASON_OUTSIDE = "file outside a split folder"
_REQUIRED_COLUMNS = ("fullId", "wnlemmas", "name")


def syncar_box(width, height):
  """formats.SYNCAR_CROP as a Pillow box on a raw render.

  The crop is defined on SYNCAR_RAW_SIZE x SYNCAR_RAW_SIZE renders; a render of another size gets the box
  scaled proportionally in each axis, so the same part of the frame is kept.

  Args:
    width, height: raw image size in pixels.

  Returns:
    (left, top, right, bottom) in pixels (floats).
  """
  y0, x0, crop_h, crop_w = formats.SYNCAR_CROP
  sx, sy = width / float(formats.SYNCAR_RAW_SIZE), height / float(formats.SYNCAR_RAW_SIZE)
  return (x0 * sx, y0 * sy, (x0 + crop_w) * sx, (y0 + crop_h) * sy)


def class_of(wnlemmas, name):
  """Index into formats.CAR_CLASSES of a metadata row, or -1 when the row names none of the five classes.

  Args:
    wnlemmas: the row's comma-separated WordNet lemmas (matched exactly, case-insensitively; checked first).
    name: the row's free-text name (lemmas matched as whole words, case-insensitively).
  """
  lemmas = {token.strip().lower() for token in (wnlemmas or "").split(",") if token.strip()}
  for index, cls in enumerate(formats.CAR_CLASSES):
    if lemmas & {lemma.lower() for lemma in formats.CAR_CLASS_LEMMAS[cls]}:
      return index
  text = (name or "").lower()
  for index, cls in enumerate(formats.CAR_CLASSES):
    if any(re.search(r"\b" + re.escape(lemma.lower()) + r"\b", text) for lemma in formats.CAR_CLASS_LEMMAS[cls]):
      return index
  return -1


def read_metadata(path, encoding="utf-8-sig"):
  """Class of every model in a ShapeNet metadata CSV.

  Args:
    path: CSV with at least the columns fullId ("3dw.<model id>" as ShapeNetCore's CSV, or ShapeNetSem's
      "wss.<model id>"), wnlemmas and name.
    encoding: the file's text encoding (default UTF-8, with or without a byte-order mark).

  Returns:
    Dict model id -> (label id, label name), label (-1, "") for models of other classes.

  Raises:
    ValueError: the file is missing or a folder, is not text in `encoding` (naming the line) or lacks a required column.
  """
  common.check_input_file(path, "ShapeNet metadata CSV", " (pass --metadata_csv)")
  text = inputs.decode_text(inputs.read_bytes(path), path, encoding, flag="--metadata_encoding")
  reader = csv.DictReader(io.StringIO(text))
  missing = [c for c in _REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
  if missing:
    raise ValueError(f"{path}: missing metadata columns {missing}; expected {formats.SHAPENET_METADATA_COLUMNS}")
  models, short, no_id, conflicting = {}, [], [], []
  try:
    for row in reader:
      model_id = (row["fullId"] or "").strip()
      for prefix in formats.SHAPENET_FULLID_PREFIXES:
        if model_id.startswith(prefix):
          model_id = model_id[len(prefix) :]
          break
      if not model_id:
        no_id.append(reader.line_num)
        continue
      if row["wnlemmas"] is None or row["name"] is None:  # fewer fields than the header: a cut or mis-quoted row
        short.append(reader.line_num)
      label_id = class_of(row["wnlemmas"] or "", row["name"] or "")
      label = (label_id, formats.CAR_CLASSES[label_id] if label_id >= 0 else "")
      if models.get(model_id.lower(), label) != label:
        conflicting.append(reader.line_num)
      models[model_id.lower()] = label
  except csv.Error as e:  # e.g. an unbalanced quote that swallows the rest of the file into one field
    raise ValueError(f"{path}:{reader.line_num}: not a readable CSV row ({e})") from e
  for lines, what in (
    (no_id, "have no fullId and are skipped"),
    (short, "have fewer fields than the header (cut, or mis-quoted); their models count as other classes"),
    (conflicting, "give a model another class than an earlier row; the last row's class is used"),
  ):
    if lines:
      logging.warning("%s: %d rows %s (lines %s)", path, len(lines), what, ", ".join(map(str, lines[:10])))
  return models


class ParseSyncarPath(common.RejectingDoFn):
  """Item {"path", "gt_path"} -> item with "record" (model id, class, split from the folder), or a reject."""

  def __init__(self, models, root, strict=False):
    super().__init__(strict)
    self._models = models
    self._root = root

  def process(self, item):
    parts = common.relative_parts(item["path"], self._root)
    if len(parts) != 2 or parts[0] not in formats.SYNCAR_SPLITS:
      yield self.reject(item["path"], REASON_OUTSIDE)
      return
    match = formats.SYNCAR_FILENAME.match(parts[-1])
    if match is None:
      yield self.reject(item["path"], REASON_BAD_NAME)
      return
    model_id = match["model_id"]
    if model_id not in self._models:
      yield self.reject(item["path"], REASON_NO_MODEL)
      return
    label_id, label_name = self._models[model_id]
    yield dict(item, record={"model/id": model_id, "label/id": label_id, "label/name": label_name, "split": parts[0]})


def list_inputs(input_dir):
  """Input items below `input_dir`, by split folder.

  Every file below the root is an input (files in a split folder are converted, any other is rejected as outside
  a split folder), except hidden files, ground-truth sidecars and non-image files directly in the root (the
  metadata CSV, the synthetic worlds' label file and summary).

  Returns:
    Dict split -> list of {"path", "gt_path"} items (splits with files), plus None -> items outside any split
    folder (when there are some).

  Raises:
    ValueError: the root does not exist, is a file, holds entries the listing would drop (`common.check_input_dir`),
      or no split folder holds a file.
  """
  common.check_input_dir(input_dir, "syncar input directory")
  items = common.pair_ground_truth(
    common.match_files(common.recursive_pattern(input_dir), root=input_dir, root_images_only=True)
  )
  by_split = {}
  for item in items:
    parts = common.relative_parts(item["path"], input_dir)
    split = parts[0] if len(parts) == 2 and parts[0] in formats.SYNCAR_SPLITS else None
    by_split.setdefault(split, []).append(item)
  if not any(by_split.get(split) for split in formats.SYNCAR_SPLITS):
    raise ValueError(f"syncar input directory {input_dir} has no files in any of {formats.SYNCAR_SPLITS}")
  return by_split


def build_pipeline(
  pipeline,
  input_dir,
  output_dir,
  metadata_csv=None,
  strict=False,
  num_shards=0,
  images_per_shard=runner.DEFAULT_IMAGES_PER_SHARD,
  args=None,
  metadata_encoding="utf-8-sig",
):
  """Adds the syncar conversion to `pipeline` (lists inputs to size the shards and reads the CSV now).

  Args:
    pipeline: a beam.Pipeline.
    input_dir: syncar root with split folders.
    output_dir: output directory.
    metadata_csv: ShapeNet metadata CSV; default <input_dir>/formats.SHAPENET_METADATA_FILENAME.
    strict, num_shards, images_per_shard, args: as in utkface.build_pipeline.
    metadata_encoding: text encoding of the metadata CSV.

  Returns:
    Dict of PCollections (see common.build_conversion).
  """
  by_split = list_inputs(input_dir)
  models = read_metadata(
    metadata_csv or FileSystems.join(input_dir, formats.SHAPENET_METADATA_FILENAME), metadata_encoding
  )
  split_shards = {
    split: common.shards_for(len(v), num_shards, images_per_shard) for split, v in by_split.items() if split is not None
  }
  return common.build_conversion(
    pipeline,
    dataset=DATASET,
    patterns=[common.recursive_pattern(input_dir)],
    root=input_dir,
    root_images_only=True,
    parse_fn=ParseSyncarPath(models, input_dir, strict),
    box_fn=syncar_box,
    output_dir=output_dir,
    split_shards=split_shards,
    strict=strict,
    args=args,
  )


def make_parser():
  parser = runner.make_parser(DATASET, __doc__)
  parser.add_argument(
    "--metadata_csv",
    default=None,
    help=f"ShapeNet metadata CSV (default <input_dir>/{formats.SHAPENET_METADATA_FILENAME})",
  )
  parser.add_argument(
    "--metadata_encoding",
    default="utf-8-sig",
    help="text encoding of the metadata CSV (default UTF-8, with or without a byte-order mark)",
  )
  return parser


convert, main = runner.entry_points(DATASET, make_parser, build_pipeline, "a syncar folder")


if __name__ == "__main__":
  sys.exit(main())
