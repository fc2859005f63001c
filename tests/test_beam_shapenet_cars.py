"""Tests of beam_pipelines.shapenet_cars: crop box, class matching, metadata, the DoFn and the job end to end."""

import csv
import glob
import io
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from apache_beam import pvalue
from PIL import Image

from beam_pipelines import inputs, shapenet_cars
from pdr_tf.data import feature_spec

from pdr_tf.data import formats

IN_MEMORY = ["--direct_running_mode=in_memory", "--direct_num_workers=1"]
AMBULANCE, JEEP, POLICE, OTHER, MISSING = ("a" * 32, "b" * 32, "c" * 32, "d" * 32, "e" * 32)
METADATA = [  # fullId, wnsynset, wnlemmas, up, front, name, tags
  (AMBULANCE, "car,auto,automobile,machine,motorcar,ambulance", "ambulance van"),
  (JEEP, "car,auto,automobile,machine,motorcar", "Jeep Wrangler"),
  (POLICE, "cruiser,police cruiser,patrol car,police car,prowl car,squad car", "Ford Crown Victoria"),
  (OTHER, "car,auto,automobile,machine,motorcar", "Toyota Corolla"),
]


def _png(array):
  buffer = io.BytesIO()
  Image.fromarray(array).save(buffer, format="PNG")
  return buffer.getvalue()


def _render(seed, size=128, channels=3):
  rng = np.random.default_rng(seed)
  image = np.zeros((size, size, channels), np.uint8)
  s = size / 128.0
  image[int(20 * s) : int(100 * s), int(30 * s) : int(100 * s)] = rng.integers(50, 256, channels, dtype=np.uint8)
  if channels == 4:
    image[..., 3] = 255
  return image


def write_metadata(path, rows=METADATA, columns=formats.SHAPENET_METADATA_COLUMNS):
  with open(path, "w", newline="", encoding="utf-8") as f:
    writer = csv.writer(f)
    writer.writerow(columns)
    for model_id, lemmas, name in rows:
      row = {
        "fullId": formats.SHAPENET_FULLID_PREFIX + model_id,
        "wnsynset": formats.SHAPENET_CAR_SYNSET,
        "wnlemmas": lemmas,
        "up": "0\\,1\\,0",
        "front": "1\\,0\\,0",
        "name": name,
        "tags": "",
      }
      writer.writerow([row[c] for c in columns])


# (split, file name) -> expected (label id or reject reason)
FILES = {
  ("train", f"{AMBULANCE}_0.png"): 1,
  ("train", f"{JEEP}_0.png"): 3,
  ("train", f"{OTHER}_0.png"): -1,
  ("train", f"{AMBULANCE}_1.png"): 1,  # RGBA, converted
  ("train", f"{MISSING}_0.png"): shapenet_cars.REASON_NO_MODEL,
  ("train", "notes.txt"): shapenet_cars.REASON_BAD_NAME,
  ("train", f"{POLICE}_0.png"): inputs.REASON_CORRUPT,  # truncated
  ("val", f"{POLICE}_1.png"): 0,
  ("val", f"{AMBULANCE}_2.png"): 1,  # the latter with ground truth
  ("test", f"{AMBULANCE}_3.png"): 1,
  ("test", f"{JEEP}_1.png"): 3,
  ("test", f"{POLICE}_2.png"): 0,
  ("test", f"{OTHER}_1.png"): -1,  # 256x256 render: scaled crop box
  ("test", f"{MISSING}_1.png"): shapenet_cars.REASON_NO_MODEL,
  ("val", f"{JEEP}_2.JPG"): 3,  # PNG bytes behind another image extension: the bytes decide
  # Every input is counted: images one folder too deep or in the root are rejects, not lost.
  ("train/more", f"{JEEP}_7.png"): shapenet_cars.REASON_OUTSIDE,
  ("", f"{JEEP}_9.png"): shapenet_cars.REASON_OUTSIDE,
}


def make_syncar(root):
  """A tiny syncar tree with planted bad files and one ground-truth sidecar; returns (root, gt depth)."""
  for split in formats.SYNCAR_SPLITS:
    os.makedirs(os.path.join(root, split))
  for i, (split, name) in enumerate(FILES):
    path = os.path.join(root, split, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    data = _png(
      _render(i, size=256 if name == f"{OTHER}_1.png" else 128, channels=4 if name == f"{AMBULANCE}_1.png" else 3)
    )
    if FILES[(split, name)] == inputs.REASON_CORRUPT:
      data = data[: len(data) // 2]
    elif name == "notes.txt":
      data = b"renders by blender\n"
    with open(path, "wb") as f:
      f.write(data)
  depth = np.zeros((128, 128), np.float32)
  depth[20:100, 30:100] = np.linspace(0.95, 1.05, 70, dtype=np.float32)[None, :]
  np.savez(
    os.path.join(root, "val", f"{AMBULANCE}_2{formats.GT_SUFFIX}"),
    depth=depth,
    light=np.array([0.3, 0.7, 0.1, -0.2]),
    view=np.array([0.1, 0.2, 0.0, 0.01, 0.0, 0.0]),
  )
  write_metadata(os.path.join(root, formats.SHAPENET_METADATA_FILENAME))
  with open(os.path.join(root, "README.txt"), "w") as f:  # not in a split folder: not an input
    f.write("syncar")
  return root, depth


def test_syncar_box_matches_the_unsup3d_crop_and_scales():
  assert shapenet_cars.syncar_box(128, 128) == (14, 8, 114, 108)
  assert shapenet_cars.syncar_box(256, 256) == (28, 16, 228, 216)
  assert shapenet_cars.syncar_box(256, 128) == (28, 8, 228, 108)


@pytest.mark.parametrize(
  "lemmas, name, expected",
  [
    ("car,auto,ambulance", "", 1),
    ("car,limo,limousine", "", 2),
    ("car,police car,patrol car", "", 0),
    ("car,auto", "Ferrari 458 Italia", 4),
    ("car,auto", "JEEP grand cherokee", 3),
    ("car,auto", "Toyota Corolla", -1),
    ("car,auto", "Jeepers", -1),  # whole words only
    ("jeep,landrover", "Ferrari", 3),  # wnlemmas win over the name
    ("ambulance,police car", "", 0),  # first class in CAR_CLASSES order
    ("", "", -1),
  ],
)
def test_class_of(lemmas, name, expected):
  assert shapenet_cars.class_of(lemmas, name) == expected


def test_read_metadata(tmp_path):
  path = str(tmp_path / "metadata.csv")
  write_metadata(path)
  assert shapenet_cars.read_metadata(path) == {
    AMBULANCE: (1, "ambulance"),
    JEEP: (3, "jeep"),
    POLICE: (0, "police car"),
    OTHER: (-1, ""),
  }
  write_metadata(path, columns=("fullId", "wnsynset", "name"))
  with pytest.raises(ValueError, match="missing metadata columns"):
    shapenet_cars.read_metadata(path)
  with pytest.raises(ValueError, match="does not exist"):
    shapenet_cars.read_metadata(str(tmp_path / "nope.csv"))


def test_suspect_metadata_rows_are_named_and_an_unreadable_row_is_an_error(tmp_path, caplog):
  path = tmp_path / "metadata.csv"
  header = "fullId,wnsynset,wnlemmas,up,front,name,tags\n"
  rows = [
    f'3dw.{AMBULANCE},02958343,"car,ambulance",,,ambulance one,\n',
    ",02958343,car,,,no id,\n",  # line 3: no fullId
    f"3dw.{JEEP},02958343\n",  # line 4: cut short
    f'3dw.{AMBULANCE},02958343,"car,jeep",,,now a jeep,\n',  # line 5: another class for the same model
  ]
  path.write_text(header + "".join(rows), encoding="utf-8")
  models = shapenet_cars.read_metadata(str(path))
  assert models[AMBULANCE] == (3, "jeep") and models[JEEP] == (-1, "")
  assert "1 rows have no fullId and are skipped (lines 3)" in caplog.text
  assert "1 rows have fewer fields than the header" in caplog.text and "(lines 4)" in caplog.text
  assert "1 rows give a model another class than an earlier row; the last row's class is used (lines 5)" in caplog.text
  path.write_text(header + 'x,y,"' + "z" * 200_000 + "\n", encoding="utf-8")  # an unbalanced quote
  with pytest.raises(ValueError, match=rf"{path}:\d+: not a readable CSV row"):
    shapenet_cars.read_metadata(str(path))


def test_parse_dofn():
  fn = shapenet_cars.ParseSyncarPath({AMBULANCE: (1, "ambulance")}, "/r")
  (out,) = list(fn.process({"path": f"/r/val/{AMBULANCE}_7.png", "gt_path": None}))
  assert out["record"] == {"model/id": AMBULANCE, "label/id": 1, "label/name": "ambulance", "split": "val"}
  (out,) = list(fn.process({"path": f"/r/val/{AMBULANCE}_8.JPG", "gt_path": None}))  # any image extension
  assert out["record"]["split"] == "val"
  for path, reason in (
    (f"/r/test/{MISSING}_0.png", shapenet_cars.REASON_NO_MODEL),
    ("/r/test/car.png", shapenet_cars.REASON_BAD_NAME),
    (f"/r/other/{AMBULANCE}_0.png", shapenet_cars.REASON_OUTSIDE),
    (f"/r/train/more/{AMBULANCE}_7.png", shapenet_cars.REASON_OUTSIDE),
    (f"/r/{AMBULANCE}_7.png", shapenet_cars.REASON_OUTSIDE),
  ):
    (out,) = list(fn.process({"path": path, "gt_path": None}))
    assert isinstance(out, pvalue.TaggedOutput) and out.value == {"path": path, "reason": reason}


def read_records(out_dir, split):
  records = []
  for shard in sorted(glob.glob(feature_spec.shard_pattern(out_dir, split))):
    for data in tf.data.TFRecordDataset(shard):
      records.append({k: v.numpy() for k, v in feature_spec.parse_example(data).items()})
  return records


def test_job_end_to_end(tmp_path):
  root, depth = make_syncar(str(tmp_path / "raw"))
  out = str(tmp_path / "out")
  assert shapenet_cars.main(["--input_dir", root, "--output_dir", out, "--num_shards=2"] + IN_MEMORY) == 0
  manifest = json.load(open(os.path.join(out, "manifest.json")))
  good = {k: v for k, v in FILES.items() if isinstance(v, int)}
  bad = {k: v for k, v in FILES.items() if isinstance(v, str)}
  assert (manifest["inputs"], manifest["written"], manifest["rejected"]) == (len(FILES), len(good), len(bad))
  assert manifest["counts"] == {
    "test": {"ambulance": 1, "jeep": 1, "police car": 1, "unlabelled": 1},
    "train": {"ambulance": 2, "jeep": 1, "unlabelled": 1},
    "val": {"ambulance": 1, "jeep": 1, "police car": 1},
  }
  assert manifest["shards"]["train"] == ["train.tfrecord-00000-of-00002", "train.tfrecord-00001-of-00002"]
  rejects = [json.loads(line) for line in open(os.path.join(out, "rejects.jsonl"))]
  assert sorted((r["path"], r["reason"]) for r in rejects) == sorted(
    (os.path.join(root, split, name), reason) for (split, name), reason in bad.items()
  )

  seen = {}
  for split in formats.SYNCAR_SPLITS:
    records = read_records(out, split)
    assert len(records) == manifest["splits"][split]
    for r in records:
      name = os.path.basename(r["source/path"].decode())
      seen[(split, name)] = r
      assert r["label/id"] == good[(split, name)]
      assert r["label/name"].decode() == (formats.CAR_CLASSES[r["label/id"]] if r["label/id"] >= 0 else "")
      assert r["model/id"].decode() == name[:32] and r["track/id"] == b"" and r["track/frame"] == -1
  assert set(seen) == set(good)
  # Crop [8, 14, 100, 100] then resize: the object box [20:100, 30:100] of the raw render lands at
  # rows (20-8)*0.64.. and columns (30-14)*0.64.. of the 64x64 image.
  image = tf.io.decode_png(seen[("train", f"{JEEP}_0.png")]["image/encoded"]).numpy()
  assert image[2, 2].max() == 0 and image[30, 30].min() > 0 and image[60, 60].max() == 0
  scaled = tf.io.decode_png(seen[("test", f"{OTHER}_1.png")]["image/encoded"]).numpy()  # 256 px render
  assert scaled[2, 2].max() == 0 and scaled[30, 30].min() > 0
  rgba = tf.io.decode_png(seen[("train", f"{AMBULANCE}_1.png")]["image/encoded"]).numpy()
  assert rgba.shape == (64, 64, 3) and rgba[30, 30].min() > 0
  gt = seen[("val", f"{AMBULANCE}_2.png")]
  assert gt["gt/has"] == 1 and seen[("val", f"{POLICE}_1.png")]["gt/has"] == 0
  np.testing.assert_array_equal(
    gt["gt/depth"].reshape(64, 64), inputs.crop_resize_depth(depth, shapenet_cars.syncar_box(128, 128))
  )
  np.testing.assert_allclose(gt["gt/light"], [0.3, 0.7, 0.1, -0.2], rtol=1e-6)
  np.testing.assert_allclose(gt["gt/view"], [0.1, 0.2, 0.0, 0.01, 0.0, 0.0], rtol=1e-6)


def test_missing_metadata_exits_1(tmp_path, caplog):
  root, _ = make_syncar(str(tmp_path / "raw"))
  missing = str(tmp_path / "elsewhere.csv")
  assert (
    shapenet_cars.main(
      ["--input_dir", root, "--output_dir", str(tmp_path / "out"), "--metadata_csv", missing] + IN_MEMORY
    )
    == 1
  )
  assert missing in caplog.text and "does not exist" in caplog.text


def test_metadata_in_another_encoding_names_the_file_and_line_and_can_be_read(tmp_path):
  path = str(tmp_path / "latin1.csv")
  rows = [(AMBULANCE, "car,ambulance", "Ambulance"), (JEEP, "car,jeep", "Jeep Citro\u00ebn")]
  with open(path, "w", newline="", encoding="latin-1") as f:
    writer = csv.writer(f)
    writer.writerow(formats.SHAPENET_METADATA_COLUMNS)
    for model_id, lemmas, name in rows:
      writer.writerow([formats.SHAPENET_FULLID_PREFIX + model_id, "", lemmas, "", "", name, ""])
  with pytest.raises(ValueError) as info:
    shapenet_cars.read_metadata(path)
  message = str(info.value)
  assert message.startswith(f"{path}:3:") and "0xeb" in message and "--metadata_encoding" in message
  assert shapenet_cars.read_metadata(path, encoding="latin-1")[JEEP] == (3, "jeep")


def test_a_folder_as_metadata_is_named_so(tmp_path):
  # (a file as --input_dir: test_beam_common.py, for every job)
  with pytest.raises(ValueError, match=f"ShapeNet metadata CSV {tmp_path} is a folder, not a file"):
    shapenet_cars.read_metadata(str(tmp_path))


def test_model_ids_are_read_from_shapenetcore_and_shapenetsem_full_ids(tmp_path):
  path = str(tmp_path / "02958343.csv")
  with open(path, "w", newline="", encoding="utf-8") as f:
    writer = csv.writer(f)
    writer.writerow(formats.SHAPENET_METADATA_COLUMNS)
    writer.writerow(["3dw." + AMBULANCE.upper(), "02958343", "car,ambulance", "", "", "Ambulance", ""])  # Core
    writer.writerow(["wss." + JEEP, "02958343", "car,jeep", "", "", "Jeep", ""])  # Sem
  models = shapenet_cars.read_metadata(path)
  assert models[AMBULANCE] == (formats.CAR_CLASSES.index("ambulance"), "ambulance") and models[JEEP][1] == "jeep"
