"""Tests of beam_pipelines.common and beam_pipelines.runner: image conversion, crops, DoFns, options."""

import io
import json
import struct
import os

import numpy as np
import pytest
from apache_beam import pvalue
from PIL import Image

from beam_pipelines import common, runner
from pdr_tf.data import feature_spec


from pdr_tf.data import formats


def _png(array, mode=None, **save_args):
  image = Image.fromarray(array) if mode is None else Image.fromarray(array).convert(mode)
  buffer = io.BytesIO()
  image.save(buffer, format="PNG", **save_args)
  return buffer.getvalue()


def _rgb(height=20, width=30, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


# --- decode_image -------------------------------------------------------------------------------------------------


def test_rgb_png_decodes_exactly():
  image = _rgb()
  out, mode = common.decode_image(_png(image))
  assert mode == "RGB"
  np.testing.assert_array_equal(out, image)


def test_grayscale_is_replicated_to_three_channels():
  gray = np.arange(200, dtype=np.uint8).reshape(10, 20)
  out, mode = common.decode_image(_png(gray))
  assert mode == "L" and out.shape == (10, 20, 3)
  for channel in range(3):
    np.testing.assert_array_equal(out[:, :, channel], gray)


def test_rgba_is_composited_on_black():
  rgba = np.zeros((2, 3, 4), np.uint8)
  rgba[..., :3] = [200, 100, 50]
  rgba[0, :, 3] = [0, 255, 128]
  rgba[1, :, 3] = 255
  out, mode = common.decode_image(_png(rgba))
  assert mode == "RGBA"
  np.testing.assert_array_equal(out[0, 0], [0, 0, 0])
  np.testing.assert_array_equal(out[0, 1], [200, 100, 50])
  np.testing.assert_array_equal(out[0, 2], [100, 50, 25])  # round(200 * 128 / 255) = 100, ...
  np.testing.assert_array_equal(out[1], np.tile([200, 100, 50], (3, 1)))


def test_la_and_palette_with_transparency_are_composited():
  la = np.stack([np.full((4, 4), 200, np.uint8), np.zeros((4, 4), np.uint8)], axis=-1)
  out, mode = common.decode_image(_png(la))
  assert mode == "LA" and out.max() == 0
  palette = Image.fromarray(_rgb(4, 4)).convert("P")
  buffer = io.BytesIO()
  palette.save(buffer, format="PNG", transparency=int(np.asarray(palette)[0, 0]))
  out, mode = common.decode_image(buffer.getvalue())
  assert mode == "P" and out.shape == (4, 4, 3)
  np.testing.assert_array_equal(out[0, 0], [0, 0, 0])


def test_palette_without_transparency_keeps_colours():
  image = np.zeros((4, 4, 3), np.uint8)
  image[:2] = [255, 0, 0]
  image[2:] = [0, 0, 255]
  buffer = io.BytesIO()
  Image.fromarray(image).convert("P", palette=Image.Palette.ADAPTIVE, colors=4).save(buffer, format="PNG")
  out, mode = common.decode_image(buffer.getvalue())
  assert mode == "P"
  np.testing.assert_array_equal(out, image)


def test_sixteen_bit_grayscale_is_scaled_to_eight_bit():
  values = np.array([[0, 257 * 100, 65535, 128]], dtype=np.uint16)
  out, mode = common.decode_image(_png(values))
  assert mode.startswith("I")
  np.testing.assert_array_equal(out[0, :, 0], [0, 100, 255, 0])
  np.testing.assert_array_equal(out[..., 0], out[..., 2])


def test_bilevel_and_cmyk_are_converted():
  out, mode = common.decode_image(_png(np.array([[0, 255]], np.uint8), mode="1"))
  assert mode == "1"
  np.testing.assert_array_equal(out[0], [[0, 0, 0], [255, 255, 255]])
  buffer = io.BytesIO()
  Image.fromarray(_rgb(8, 8)).convert("CMYK").save(buffer, format="JPEG")
  out, mode = common.decode_image(buffer.getvalue())
  assert mode == "CMYK" and out.shape == (8, 8, 3)


@pytest.mark.parametrize(
  "data, reason",
  [
    (b"", common.REASON_EMPTY),
    (b"this is a text file, not an image\n", common.REASON_NOT_IMAGE),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, common.REASON_CORRUPT),
  ],
)
def test_unusable_bytes_are_rejected_with_a_reason(data, reason):
  with pytest.raises(common.Reject) as info:
    common.decode_image(data)
  assert info.value.reason == reason


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_images_are_rejected(fmt):
  buffer = io.BytesIO()
  Image.fromarray(_rgb(64, 64)).save(buffer, format=fmt)
  data = buffer.getvalue()
  with pytest.raises(common.Reject) as info:
    common.decode_image(data[: len(data) // 2])
  assert info.value.reason == common.REASON_CORRUPT


def test_zero_size_images_are_rejected(monkeypatch):
  # Pillow refuses to open a PNG whose header says width 0: the header is read first, so it is "zero-size image"
  # (as docs/data.md says), not "truncated or corrupt image".
  header = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 4 + b"\x00\x00\x00\x05\x08\x02\x00\x00\x00"
  with pytest.raises(common.Reject) as info:
    common.decode_image(header)
  assert info.value.reason == common.REASON_ZERO_SIZE
  gif = b"GIF89a" + struct.pack("<HH", 7, 0) + b"\x00" * 10
  bmp = b"BM" + b"\x00" * 16 + struct.pack("<ii", 0, 4) + b"\x00" * 30
  jpeg = b"\xff\xd8\xff\xe0" + struct.pack(">H", 4) + b"\x00\x00" + b"\xff\xc0" + struct.pack(">HBHH", 11, 8, 0, 9)
  for data in (gif, bmp, jpeg):
    assert common.header_size(data) is not None and 0 in common.header_size(data)
    with pytest.raises(common.Reject) as info:
      common.decode_image(data)
    assert info.value.reason == common.REASON_ZERO_SIZE
  buffer = io.BytesIO()
  Image.fromarray(_rgb(6, 5)).save(buffer, format="JPEG")
  assert common.header_size(buffer.getvalue()) == (5, 6)  # (width, height) of a real file
  monkeypatch.setattr(common.Image, "open", lambda _: Image.new("RGB", (0, 5)))
  with pytest.raises(common.Reject) as info:
    common.decode_image(b"anything")
  assert info.value.reason == common.REASON_ZERO_SIZE


def test_float_images_are_rejected_as_unsupported_mode():
  buffer = io.BytesIO()
  Image.fromarray(np.ones((4, 4), np.float32)).save(buffer, format="TIFF")
  with pytest.raises(common.Reject) as info:
    common.decode_image(buffer.getvalue())
  assert info.value.reason == common.REASON_MODE


# --- crops ----------------------------------------------------------------------------------------------------------


def test_center_box_is_a_centred_square_of_the_shorter_side():
  assert common.center_box(200, 200, 0.8) == pytest.approx((20, 20, 180, 180))
  assert common.center_box(300, 200, 0.5) == pytest.approx((100, 50, 200, 150))


def test_pixel_box_rounds_and_clips():
  assert common.pixel_box((13.6, 8.2, 113.6, 108.2), 128, 128) == (14, 8, 114, 108)
  assert common.pixel_box((-3, -1, 500, 60), 128, 50) == (0, 0, 128, 50)
  assert common.pixel_box((10, 10, 10, 10), 20, 20) == (10, 10, 11, 11)  # never empty


def test_crop_resize_ignores_pixels_outside_the_box():
  image = np.zeros((128, 128, 3), np.uint8)
  image[8:108, 14:114] = 200
  np.testing.assert_array_equal(common.crop_resize(image, (14, 8, 114, 108), size=64), 200)


def test_crop_resize_output_and_content():
  image = np.zeros((100, 100, 3), np.uint8)
  image[:, 50:] = 255  # right half white
  out = common.crop_resize(image, (0, 0, 100, 100), size=10)
  assert out.shape == (10, 10, 3) and out.dtype == np.uint8
  assert out[:, :4].max() == 0 and out[:, 6:].min() == 255
  constant = np.full((37, 53, 3), 77, np.uint8)
  np.testing.assert_array_equal(common.crop_resize(constant, common.center_box(53, 37)), 77)


def test_crop_resize_depth_samples_the_surface_at_output_pixel_centres_and_keeps_background_zero():
  # A plane z = a + b u (raw pixels) on a square object; after the crop and resize each output pixel must hold the
  # plane's depth at that pixel's centre, mapped back to raw coordinates: nearest-neighbour would be up to half a
  # raw pixel off.
  depth = np.zeros((128, 128), np.float32)
  u = np.arange(128, dtype=np.float32)
  depth[30:100, 30:100] = (1.0 + 0.002 * u)[None, 30:100]
  box = (14, 8, 114, 108)
  out = common.crop_resize_depth(depth, box, size=64)
  assert out.shape == (64, 64) and out.dtype == np.float32
  assert out[0, 0] == 0 and out[63, 63] == 0  # background stays 0
  inside = out > 0
  columns = np.broadcast_to(np.arange(64, dtype=np.float32), (64, 64))
  raw_u = box[0] + (columns + 0.5) * 100 / 64 - 0.5  # output pixel centre in raw pixels
  # Within 0.1 raw pixel of the centre (Pillow's filter windows are rounded to whole pixels); nearest is off by
  # up to 0.5 raw pixel (1e-3 here).
  np.testing.assert_allclose(out[inside], (1.0 + 0.002 * raw_u)[inside], atol=2e-4)
  # Never blended with the background: pixels next to the silhouette are either full surface depth or 0.
  assert out[inside].min() > 1.0
  # The same box on the image maps the object to the same place.
  image = np.zeros((128, 128, 3), np.uint8)
  image[depth > 0] = 255
  image_out = common.crop_resize(image, box, size=64)
  agree = (image_out[..., 0] > 127) == inside
  assert agree.mean() > 0.95


def test_encode_png_round_trips():
  image = _rgb(64, 64)
  decoded, _ = common.decode_image(common.encode_png(image))
  np.testing.assert_array_equal(decoded, image)


# --- ground truth and listing ---------------------------------------------------------------------------------------


def _npz(depth, light=None, view=None, drop=None):
  arrays = {
    "depth": depth,
    "light": np.arange(4, dtype=np.float32) if light is None else light,
    "view": np.arange(6, dtype=np.float32) if view is None else view,
  }
  arrays.pop(drop, None)
  buffer = io.BytesIO()
  np.savez(buffer, **arrays)
  return buffer.getvalue()


def test_ground_truth_is_loaded_and_checked():
  gt = common.load_ground_truth(_npz(np.ones((5, 7))), 5, 7)
  assert gt["depth"].shape == (5, 7) and gt["light"].tolist() == [0, 1, 2, 3] and gt["view"].size == 6
  for bad in (
    _npz(np.ones((5, 6))),
    _npz(np.ones((5, 7)), drop="view"),
    _npz(np.ones((5, 7)), light=np.ones(3)),
    _npz(np.full((5, 7), np.nan)),
    b"not an npz",
  ):
    with pytest.raises(common.Reject) as info:
      common.load_ground_truth(bad, 5, 7)
    assert info.value.reason == common.REASON_BAD_GT


def test_gt_path_and_listing(tmp_path):
  assert common.gt_path_for("/a/b/x_1.png") == "/a/b/x_1" + formats.GT_SUFFIX
  for name in ("a.png", "a.gt.npz", "b.png", ".hidden", "orphan.gt.npz"):
    (tmp_path / name).write_bytes(b"x")
  paths = common.match_files(os.path.join(str(tmp_path), "*"))
  assert [os.path.basename(p) for p in paths] == ["a.gt.npz", "a.png", "b.png", "orphan.gt.npz"]
  items = common.pair_ground_truth(paths)
  assert [(os.path.basename(i["path"]), i["gt_path"] and os.path.basename(i["gt_path"])) for i in items] == [
    ("a.png", "a.gt.npz"),
    ("b.png", None),
  ]


def test_list_inputs_transform_matches_the_driver_listing(tmp_path):
  import apache_beam as beam  # pylint: disable=import-outside-toplevel
  from apache_beam.options.pipeline_options import PipelineOptions  # pylint: disable=import-outside-toplevel
  from apache_beam.testing.util import assert_that, equal_to  # pylint: disable=import-outside-toplevel

  os.makedirs(tmp_path / "sub")
  for name in (
    "a.png",
    "a.gt.npz",
    "b.jpg",
    "b.jpg.chip.jpg",
    ".hidden",
    "orphan.gt.npz",
    "skip.csv",
    "sub/c.png",
    "sub/c.gt.npz",
  ):
    (tmp_path / name).write_bytes(b"x")
  patterns = [os.path.join(str(tmp_path), "*"), os.path.join(str(tmp_path), "*", "*")]
  expected = common.pair_ground_truth(
    sorted(p for pattern in patterns for p in common.match_files(pattern, ("skip.csv",)))
  )
  assert len(expected) == 4 and sum(1 for item in expected if item["gt_path"]) == 2
  options = PipelineOptions(["--runner=FnApiRunner", "--direct_running_mode=in_memory"])
  with beam.Pipeline(options=options) as pipeline:
    items = pipeline | common.ListInputs(patterns, ("skip.csv",))
    assert_that(
      items | beam.Map(lambda item: (item["path"], item["gt_path"])),
      equal_to([(item["path"], item["gt_path"]) for item in expected]),
    )


def test_shards_for():
  assert common.shards_for(0) == 1
  assert common.shards_for(4001, images_per_shard=2000) == 3
  assert common.shards_for(10, num_shards=4) == 4


# --- DoFns ----------------------------------------------------------------------------------------------------------


def _item(tmp_path, name, data, gt=None, record=None):
  path = tmp_path / name
  path.write_bytes(data)
  gt_path = None
  if gt is not None:
    gt_path = str(path.with_suffix("")) + formats.GT_SUFFIX
    with open(gt_path, "wb") as f:
      f.write(gt)
  return {"path": str(path), "gt_path": gt_path, "record": record or {"split": "train"}}


def test_process_image_yields_a_full_record(tmp_path):
  raw = np.zeros((128, 128, 3), np.uint8)
  raw[8:108, 14:114] = 200  # exactly the syncar crop region
  depth = np.zeros((128, 128), np.float32)
  depth[8:108, 14:114] = 1.05
  item = _item(tmp_path, "a.png", _png(raw), gt=_npz(depth), record={"split": "val", "label/id": 3})
  box = lambda w, h: (14, 8, 114, 108)  # noqa: E731
  (record,) = list(common.ProcessImage(box).process(item))
  assert record["split"] == "val" and record["label/id"] == 3 and record["source/path"] == item["path"]
  image, _ = common.decode_image(record["image/encoded"])
  assert image.shape == (64, 64, 3) and image.min() == 200 and image.max() == 200
  assert record["gt/has"] == 1 and record["gt/depth"].shape == (64, 64)
  np.testing.assert_allclose(record["gt/depth"], 1.05)
  assert record["gt/light"].tolist() == [0, 1, 2, 3]
  feature_spec.serialize_example(record)  # a valid record of the schema


def test_process_image_rejects_with_tagged_output_and_strict_raises(tmp_path):
  item = _item(tmp_path, "bad.png", b"not an image")
  (out,) = list(common.ProcessImage(common.center_box).process(item))
  assert isinstance(out, pvalue.TaggedOutput) and out.tag == common.REJECTS_TAG
  assert out.value == {"path": item["path"], "reason": common.REASON_NOT_IMAGE}
  good = _item(tmp_path, "good.png", _png(_rgb(32, 32)), gt=b"broken sidecar")
  (out,) = list(common.ProcessImage(common.center_box).process(good))
  assert out.value["reason"] == common.REASON_BAD_GT
  missing = {"path": str(tmp_path / "gone.png"), "gt_path": None, "record": {"split": "train"}}
  (out,) = list(common.ProcessImage(common.center_box).process(missing))
  assert out.value["reason"] == common.REASON_UNREADABLE
  with pytest.raises(common.RejectedInputError, match="bad.png: not an image"):
    list(common.ProcessImage(common.center_box, strict=True).process(item))


def test_encode_example_serializes_the_schema():
  record = {"image/encoded": common.encode_png(_rgb(64, 64)), "split": "test", "label/id": 2}
  (data,) = list(common.EncodeExample().process(record))
  assert data == feature_spec.serialize_example(record)


# --- runner ---------------------------------------------------------------------------------------------------------


def test_local_runner_defaults_are_added_only_without_runner():
  assert runner.beam_argv([]) == [
    "--runner=FnApiRunner",
    "--direct_num_workers=2",
    "--direct_running_mode=multi_processing",
  ]
  assert runner.beam_argv(["--direct_running_mode=in_memory"], 3) == [
    "--direct_running_mode=in_memory",
    "--num_workers=3",
    "--runner=FnApiRunner",
    "--direct_num_workers=3",
  ]
  dataflow = ["--runner=DataflowRunner", "--project=p", "--region=r", "--temp_location=gs://b/tmp"]
  assert runner.beam_argv(dataflow) == dataflow
  assert runner.beam_argv(dataflow, 8) == dataflow + ["--num_workers=8"]


def test_unknown_flags_pass_through_the_parser():
  parser = runner.make_parser("utkface", "doc")
  args, rest = parser.parse_known_args(
    [
      "--input_dir",
      "i",
      "--output_dir",
      "o",
      "--runner=FlinkRunner",
      "--flink_master=localhost:8081",
      "--num_workers=4",
      "--max_num_workers=9",
    ]
  )
  assert args.input_dir == "i" and args.num_workers == 4
  assert rest == ["--runner=FlinkRunner", "--flink_master=localhost:8081", "--max_num_workers=9"]


def _fake_dataset(out, shards=("train.tfrecord-00000-of-00001",)):
  os.makedirs(out, exist_ok=True)
  for name in shards:
    (out / name).write_bytes(b"x")
  manifest = {"schema_version": feature_spec.SCHEMA_VERSION, "shards": {"train": list(shards)}}
  (out / feature_spec.MANIFEST_FILENAME).write_text(json.dumps(manifest))
  (out / feature_spec.REJECTS_FILENAME).write_text("")


def test_check_output_dir_replaces_only_a_pdr_tf_dataset(tmp_path):
  out = tmp_path / "out"
  assert runner.check_output_dir(str(out)) == []  # absent
  out.mkdir()
  assert runner.check_output_dir(str(out)) == []  # empty
  _fake_dataset(out)
  with pytest.raises(ValueError, match="--overwrite"):
    runner.check_output_dir(str(out))
  assert sorted(runner.check_output_dir(str(out), overwrite=True)) == sorted(
    ["train.tfrecord-00000-of-00001", feature_spec.MANIFEST_FILENAME, feature_spec.REJECTS_FILENAME]
  )
  (out / "keep.txt").write_text("not ours")
  with pytest.raises(ValueError, match="did not write") as info:
    runner.check_output_dir(str(out), overwrite=True)
  assert "keep.txt" in str(info.value)
  assert (out / "keep.txt").exists() and (out / "train.tfrecord-00000-of-00001").exists()


def test_shards_without_a_manifest_are_never_deleted(tmp_path):
  # Shards copied by hand (or by an older tool) are somebody's data: refused even with --overwrite.
  out = tmp_path / "copied"
  out.mkdir()
  for i in range(3):
    (out / f"train.tfrecord-0000{i}-of-00003").write_bytes(b"user data")
  with pytest.raises(ValueError, match="no manifest.json") as info:
    runner.check_output_dir(str(out), overwrite=True)
  assert str(out) in str(info.value)
  assert len(os.listdir(out)) == 3
