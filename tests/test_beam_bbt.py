"""Tests of beam_pipelines.bbt: the labels file, the DoFn and the job end to end."""

import glob
import io
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from apache_beam import pvalue
from PIL import Image

from beam_pipelines import bbt, inputs
from pdr_tf.data import feature_spec

from pdr_tf.data import formats

IN_MEMORY = ["--direct_running_mode=in_memory", "--direct_num_workers=1"]
LABELS = f"""{formats.BBT_LABELS_HEADER}
1 Leonard
0002 penny
# comment lines and blank lines are skipped

3 Kurt
"""
# (track folder, file) -> (label id, name) or reject reason
FILES = {
  ("0001", "000100.jpg"): (0, "leonard"),
  ("0001", "000101.jpg"): (0, "leonard"),
  ("0001", "000102.jpg"): (0, "leonard"),  # grayscale, converted
  ("0002", "000200.jpg"): (2, "penny"),
  ("0002", "000201.jpg"): inputs.REASON_NOT_IMAGE,
  ("0002", "thumbs.db"): bbt.REASON_BAD_NAME,
  ("0003", "000300.jpg"): (-1, "kurt"),
  ("0004", "000400.jpg"): bbt.REASON_NO_LABEL,
  ("0004", "000401.jpg"): bbt.REASON_NO_LABEL,
  (None, "stray.jpg"): bbt.REASON_NO_TRACK,
  # Every input is counted: a file one folder too deep is a reject, not lost.
  ("0001/extra", "000510.jpg"): bbt.REASON_NO_TRACK,
  # Other common image extensions are images (the bytes decide the type); ids are ASCII digits only.
  ("0001", "000103.JPG"): (0, "leonard"),
  ("0002", "000202.jpeg"): (2, "penny"),
  ("\u00b2", "000500.jpg"): bbt.REASON_NO_LABEL,  # "²": str.isdigit() says yes, int() does not
  ("0003", "\u0661\u0662\u0663.jpg"): bbt.REASON_BAD_NAME,  # Arabic-Indic digits
}


def make_bbt(root, files=FILES, labels=LABELS):
  """A tiny BBT tree (non-square face crops) with planted bad files; returns root."""
  rng = np.random.default_rng(0)
  for (track, name), expected in files.items():
    folder = os.path.join(root, formats.BBT_TRACKS_DIRNAME, *([track] if track else []))
    os.makedirs(folder, exist_ok=True)
    shape = (90, 70) if name == "000102.jpg" else (90, 70, 3)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(buffer, format="JPEG")
    data = b"\x00garbage" if expected == inputs.REASON_NOT_IMAGE or name == "thumbs.db" else buffer.getvalue()
    with open(os.path.join(folder, name), "wb") as f:
      f.write(data)
  with open(os.path.join(root, formats.BBT_LABELS_FILENAME), "w") as f:
    f.write(labels)
  return root


def test_parse_track_labels():
  assert bbt.parse_track_labels(LABELS) == {"1": "leonard", "2": "penny", "3": "kurt"}
  assert bbt.track_key("0007") == "7" and bbt.track_key("t07") == "t07"
  assert bbt.track_key("\u00b2") == "\u00b2"  # not a number: compared as text, never int()
  for text, message in (
    ("1 leonard\n", "first line"),
    (f"{formats.BBT_LABELS_HEADER}\n1\n", "expected 'trackid name'"),
    (f"{formats.BBT_LABELS_HEADER}\n1 raj\n01 howard\n", "labelled both"),
  ):
    with pytest.raises(ValueError, match=message):
      bbt.parse_track_labels(text, "labels.ids")


def test_parse_dofn():
  fn = bbt.ParseBbtPath({"1": "sheldon", "2": "kurt"}, "/r/tracks/")
  (out,) = list(fn.process({"path": "/r/tracks/01/000017.jpg", "gt_path": None}))
  assert out["record"] == {"track/id": "01", "track/frame": 17, "label/id": 1, "label/name": "sheldon", "split": "test"}
  (out,) = list(fn.process({"path": "/r/tracks/2/5.jpg", "gt_path": None}))
  assert out["record"]["label/id"] == -1 and out["record"]["label/name"] == "kurt"
  for path, reason in (
    ("/r/tracks/9/000001.jpg", bbt.REASON_NO_LABEL),
    ("/r/tracks/1/frame.png", bbt.REASON_BAD_NAME),
    ("/r/tracks/000001.jpg", bbt.REASON_NO_TRACK),
    ("/r/tracks/1/extra/000510.jpg", bbt.REASON_NO_TRACK),
    ("/r/tracks/\u00b2/000001.jpg", bbt.REASON_NO_LABEL),
    ("/r/tracks/1/\u0661\u0662\u0663.jpg", bbt.REASON_BAD_NAME),
  ):
    (out,) = list(fn.process({"path": path, "gt_path": None}))
    assert isinstance(out, pvalue.TaggedOutput) and out.value == {"path": path, "reason": reason}
  with pytest.raises(inputs.RejectedInputError, match="tracks/9/000001.jpg: track has no label"):
    list(bbt.ParseBbtPath({}, "/r/tracks", strict=True).process({"path": "/r/tracks/9/000001.jpg"}))


def test_job_end_to_end(tmp_path):
  root = make_bbt(str(tmp_path / "raw"))
  out = str(tmp_path / "out")
  assert bbt.main(["--input_dir", root, "--output_dir", out] + IN_MEMORY) == 0
  manifest = json.load(open(os.path.join(out, "manifest.json")))
  good = {k: v for k, v in FILES.items() if isinstance(v, tuple)}
  bad = {k: v for k, v in FILES.items() if isinstance(v, str)}
  assert (manifest["inputs"], manifest["written"], manifest["rejected"]) == (len(FILES), len(good), len(bad))
  assert manifest["splits"] == {"test": len(good)}
  assert manifest["counts"] == {"test": {"kurt": 1, "leonard": 4, "penny": 2}}
  assert manifest["reject_reasons"] == {
    bbt.REASON_NO_LABEL: 3,
    bbt.REASON_BAD_NAME: 2,
    bbt.REASON_NO_TRACK: 2,
    inputs.REASON_NOT_IMAGE: 1,
  }
  rejects = [json.loads(line) for line in open(os.path.join(out, "rejects.jsonl"))]
  tracks = os.path.join(root, formats.BBT_TRACKS_DIRNAME)
  assert sorted((r["path"], r["reason"]) for r in rejects) == sorted(
    (os.path.join(tracks, *([t] if t else []), n), reason) for (t, n), reason in bad.items()
  )
  records = [
    {k: v.numpy() for k, v in feature_spec.parse_example(d).items()}
    for shard in sorted(glob.glob(feature_spec.shard_pattern(out, "test")))
    for d in tf.data.TFRecordDataset(shard)
  ]
  assert len(records) == len(good)
  for r in records:
    track, name = r["source/path"].decode().split("/")[-2:]
    label_id, label_name = good[(track, name)]
    assert (r["label/id"], r["label/name"].decode()) == (label_id, label_name)
    assert r["track/id"].decode() == track and r["track/frame"] == int(name.split(".")[0])
    assert r["split"] == b"test" and r["model/id"] == b"" and r["label/age"] == -1
    assert tf.io.decode_png(r["image/encoded"]).shape == (64, 64, 3)


def test_missing_labels_file_exits_1(tmp_path, caplog):
  root = make_bbt(str(tmp_path / "raw"))
  os.remove(os.path.join(root, formats.BBT_LABELS_FILENAME))
  assert bbt.main(["--input_dir", root, "--output_dir", str(tmp_path / "out")] + IN_MEMORY) == 1
  assert os.path.join(root, formats.BBT_LABELS_FILENAME) in caplog.text


def test_only_unlabelled_tracks_write_nothing_and_exit_1(tmp_path, caplog):
  root = make_bbt(str(tmp_path / "raw"), files={k: v for k, v in FILES.items() if k[0] == "0004"})
  out = str(tmp_path / "out")
  assert bbt.main(["--input_dir", root, "--output_dir", out] + IN_MEMORY) == 1
  manifest = json.load(open(os.path.join(out, "manifest.json")))
  assert (manifest["inputs"], manifest["written"], manifest["rejected"]) == (2, 0, 2)
  assert manifest["reject_reasons"] == {bbt.REASON_NO_LABEL: 2}
  assert "nothing could be written" in caplog.text


def test_a_file_as_input_or_tracks_folder_or_a_folder_as_labels_is_named_so(tmp_path, caplog):
  # (a file as --input_dir: test_beam_common.py, for every job)
  root = tmp_path / "raw"
  root.mkdir()
  (root / formats.BBT_TRACKS_DIRNAME).write_text("not a folder")
  with pytest.raises(ValueError, match="BBT tracks folder .* is a file, not a folder"):
    bbt.list_inputs(str(root))
  with pytest.raises(ValueError, match=f"BBT track labels file {tmp_path} is a folder, not a file"):
    bbt.read_track_labels(str(tmp_path))


def test_labels_file_encodings_are_read_or_named_with_the_flag_to_use(tmp_path):
  text = f"{formats.BBT_LABELS_HEADER}\n1 Zoë\n2 penny\n"
  expected = {"1": "zoë", "2": "penny"}
  bom = tmp_path / "bom.ids"
  bom.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
  assert bbt.read_track_labels(str(bom)) == expected  # the default reads UTF-8 with a byte-order mark
  latin = tmp_path / "latin.ids"
  latin.write_bytes(text.encode("latin-1"))
  with pytest.raises(ValueError, match=r"latin\.ids:2:.*not valid utf-8-sig text.*--labels_encoding=latin-1"):
    bbt.read_track_labels(str(latin))
  assert bbt.read_track_labels(str(latin), "latin-1") == expected
  with pytest.raises(ValueError, match=r"latin\.ids: unknown text encoding 'klingon'"):
    bbt.read_track_labels(str(latin), "klingon")


def test_labels_file_and_encoding_flags_reach_the_job(tmp_path, caplog):
  files = {k: v for k, v in FILES.items() if k in {("0001", "000100.jpg"), ("0002", "000200.jpg")}}
  root = make_bbt(str(tmp_path / "raw"), files=files)
  os.remove(os.path.join(root, formats.BBT_LABELS_FILENAME))  # the labels live elsewhere, in Latin-1
  labels = tmp_path / "elsewhere" / "labels.ids"
  labels.parent.mkdir()
  labels.write_bytes(f"{formats.BBT_LABELS_HEADER}\n1 Zoë\n2 penny\n".encode("latin-1"))
  argv = ["--input_dir", root, "--labels_file", str(labels)] + IN_MEMORY
  assert bbt.main(argv + ["--output_dir", str(tmp_path / "refused")]) == 1
  assert f"{labels}:2:" in caplog.text and "--labels_encoding" in caplog.text
  assert not os.path.exists(tmp_path / "refused")
  out = str(tmp_path / "out")
  assert bbt.main(argv + ["--output_dir", out, "--labels_encoding", "latin-1"]) == 0
  manifest = json.load(open(os.path.join(out, "manifest.json")))
  assert manifest["counts"] == {"test": {"zoë": 1, "penny": 1}}
