"""Converts BBT S01E01 face tracks to pdr_tf TFRecords (one "test" split; label and track id on every frame).

Input: <input_dir>/tracks/<track id>/<frame index>.jpg (any image extension; optional <name>.gt.npz beside a
frame) and
<input_dir>/tracklabels.ids: the header line CVHCI_TRACKLABELS_V1, then one `trackid name` line per track.
Names are lower-cased; the five main identities (pdr_tf.data.formats.BBT_IDENTITIES) get label/id 0-4, any other
labelled name is written with label/id -1 and its name. Each frame is centre-cropped
(formats.FACE_CENTER_CROP of the shorter side) and resized to 64x64. Frames of tracks without a label, badly
named files, files outside a track folder (directly in tracks/ or deeper than a track folder) and unusable images
are listed in rejects.jsonl. Track and frame numbers are ASCII digits.
"""

import sys

from apache_beam.io.filesystems import FileSystems

from beam_pipelines import common, inputs, runner
from pdr_tf.data import formats

DATASET = "bbt"
SPLIT = formats.BBT_SPLIT
REASON_NO_LABEL = "track has no label"
REASON_BAD_NAME = "malformed frame file name"
REASON_NO_TRACK = "file outside a track folder"


def track_key(track_id):
  """Key matching track folders and label lines: ASCII-numeric ids compare as numbers ("0007" == "7"); any other
  id (e.g. "²", which str.isdigit accepts but int() does not) is compared as text."""
  track_id = track_id.strip()
  return str(int(track_id)) if formats.BBT_TRACK_ID.match(track_id) else track_id


def parse_track_labels(text, path="<labels>"):
  """Track labels from the text of a tracklabels.ids file.

  Args:
    text: file contents; the first non-empty line must be formats.BBT_LABELS_HEADER, then `trackid name` lines
      (blank lines and lines starting with "#" are skipped).
    path: file name used in error messages.

  Returns:
    Dict track_key(track id) -> lower-cased name.

  Raises:
    ValueError: wrong header, a line without a name, or one track given two different names.
  """
  lines = text.splitlines()
  numbered = [(n, line.strip()) for n, line in enumerate(lines, 1) if line.strip()]
  if not numbered or numbered[0][1] != formats.BBT_LABELS_HEADER:
    raise ValueError(f"{path}: the first line must be {formats.BBT_LABELS_HEADER!r}")
  labels = {}
  for number, line in numbered[1:]:
    if line.startswith("#"):
      continue
    parts = line.split(None, 1)
    if len(parts) != 2:
      raise ValueError(f"{path}:{number}: expected 'trackid name', got {line!r}")
    key, name = track_key(parts[0]), parts[1].strip().lower()
    if labels.get(key, name) != name:
      raise ValueError(f"{path}:{number}: track {parts[0]} is labelled both {labels[key]!r} and {name!r}")
    labels[key] = name
  return labels


def read_track_labels(path, encoding="utf-8-sig"):
  """parse_track_labels of a file; ValueError naming the path when it does not exist, is a folder or is not
  `encoding` text."""
  common.check_input_file(path, "BBT track labels file")
  return parse_track_labels(inputs.decode_text(inputs.read_bytes(path), path, encoding, flag="--labels_encoding"), path)


class ParseBbtPath(common.RejectingDoFn):
  """Item {"path", "gt_path"} -> item with "record" (track id, frame, label), or a reject."""

  def __init__(self, labels, tracks_dir, strict=False):
    super().__init__(strict)
    self._labels = labels
    self._tracks_dir = tracks_dir.rstrip("/")

  def process(self, item):
    path = item["path"]
    relative = common.relative_parts(path, self._tracks_dir)
    if len(relative) != 2:
      yield self.reject(path, REASON_NO_TRACK)
      return
    track, filename = relative
    match = formats.BBT_FRAME_FILENAME.match(filename)
    if match is None:
      yield self.reject(path, REASON_BAD_NAME)
      return
    name = self._labels.get(track_key(track))
    if name is None:
      yield self.reject(path, REASON_NO_LABEL)
      return
    label_id = formats.BBT_IDENTITIES.index(name) if name in formats.BBT_IDENTITIES else -1
    yield dict(
      item,
      record={
        "track/id": track,
        "track/frame": int(match["frame"]),
        "label/id": label_id,
        "label/name": name,
        "split": SPLIT,
      },
    )


def list_inputs(input_dir):
  """Input items: every file below the tracks folder, at any depth (only <track>/<frame> ones are converted; files
  directly in the tracks folder or deeper than a track folder are rejected later).

  Raises:
    ValueError: the input folder or its tracks folder does not exist, is a file or holds entries the listing would
      drop (`common.check_input_dir`), or the tracks folder holds no file.
  """
  common.check_input_dir(input_dir, "BBT input directory")
  tracks_dir = FileSystems.join(input_dir, formats.BBT_TRACKS_DIRNAME)
  common.check_input_dir(tracks_dir, "BBT tracks folder")
  items = common.pair_ground_truth(common.match_files(common.recursive_pattern(tracks_dir)))
  if not items:
    raise ValueError(f"BBT tracks folder {tracks_dir} holds no files")
  return items


def build_pipeline(
  pipeline,
  input_dir,
  output_dir,
  labels_file=None,
  strict=False,
  num_shards=0,
  images_per_shard=runner.DEFAULT_IMAGES_PER_SHARD,
  args=None,
  labels_encoding="utf-8-sig",
):
  """Adds the BBT conversion to `pipeline` (lists inputs to size the shards and reads the labels now).

  Args:
    pipeline: a beam.Pipeline.
    input_dir: BBT root holding the tracks folder.
    output_dir: output directory.
    labels_file: tracklabels.ids; default <input_dir>/formats.BBT_LABELS_FILENAME.
    strict, num_shards, images_per_shard, args: as in utkface.build_pipeline.
    labels_encoding: text encoding of the labels file.

  Returns:
    Dict of PCollections (see common.build_conversion).
  """
  items = list_inputs(input_dir)
  labels = read_track_labels(labels_file or FileSystems.join(input_dir, formats.BBT_LABELS_FILENAME), labels_encoding)
  tracks_dir = FileSystems.join(input_dir, formats.BBT_TRACKS_DIRNAME)
  return common.build_conversion(
    pipeline,
    dataset=DATASET,
    patterns=[common.recursive_pattern(tracks_dir)],
    parse_fn=ParseBbtPath(labels, tracks_dir, strict),
    box_fn=inputs.center_box,
    output_dir=output_dir,
    split_shards={SPLIT: common.shards_for(len(items), num_shards, images_per_shard)},
    strict=strict,
    args=args,
  )


def make_parser():
  parser = runner.make_parser(DATASET, __doc__)
  parser.add_argument(
    "--labels_file", default=None, help=f"track labels (default <input_dir>/{formats.BBT_LABELS_FILENAME})"
  )
  parser.add_argument(
    "--labels_encoding",
    default="utf-8-sig",
    help="text encoding of the labels file (default UTF-8, with or without a byte-order mark)",
  )
  return parser


convert, main = runner.entry_points(DATASET, make_parser, build_pipeline, "a BBT face-track folder")


if __name__ == "__main__":
  sys.exit(main())
