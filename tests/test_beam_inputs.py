"""Tests of beam_pipelines.inputs: image decoding and conversion, rejects with reasons, crops, ground truth."""

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from beam_pipelines import inputs
from fixtures import gt_npz as _npz, png_image as _png, random_rgb as _rgb  # pylint: disable=wrong-import-order


# --- decode_image -------------------------------------------------------------------------------------------------


def test_rgb_png_decodes_exactly():
  image = _rgb()
  out, mode = inputs.decode_image(_png(image))
  assert mode == "RGB"
  np.testing.assert_array_equal(out, image)


def test_grayscale_is_replicated_to_three_channels():
  gray = np.arange(200, dtype=np.uint8).reshape(10, 20)
  out, mode = inputs.decode_image(_png(gray))
  assert mode == "L" and out.shape == (10, 20, 3)
  for channel in range(3):
    np.testing.assert_array_equal(out[:, :, channel], gray)


def test_rgba_is_composited_on_black():
  rgba = np.zeros((2, 3, 4), np.uint8)
  rgba[..., :3] = [200, 100, 50]
  rgba[0, :, 3] = [0, 255, 128]
  rgba[1, :, 3] = 255
  out, mode = inputs.decode_image(_png(rgba))
  assert mode == "RGBA"
  np.testing.assert_array_equal(out[0, 0], [0, 0, 0])
  np.testing.assert_array_equal(out[0, 1], [200, 100, 50])
  np.testing.assert_array_equal(out[0, 2], [100, 50, 25])  # round(200 * 128 / 255) = 100, ...
  np.testing.assert_array_equal(out[1], np.tile([200, 100, 50], (3, 1)))


def test_la_and_palette_with_transparency_are_composited():
  la = np.stack([np.full((4, 4), 200, np.uint8), np.zeros((4, 4), np.uint8)], axis=-1)
  out, mode = inputs.decode_image(_png(la))
  assert mode == "LA" and out.max() == 0
  palette = Image.fromarray(_rgb(4, 4)).convert("P")
  buffer = io.BytesIO()
  palette.save(buffer, format="PNG", transparency=int(np.asarray(palette)[0, 0]))
  out, mode = inputs.decode_image(buffer.getvalue())
  assert mode == "P" and out.shape == (4, 4, 3)
  np.testing.assert_array_equal(out[0, 0], [0, 0, 0])


def test_png_colour_keys_are_transparent_like_alpha():
  # A PNG's tRNS chunk in an RGB or grayscale image: pixels of that colour are transparent (composited on black).
  for image, key in ((_rgb(4, 4), None), (np.arange(10, 26, dtype=np.uint8).reshape(4, 4), 10)):
    key = tuple(int(v) for v in image[0, 0]) if key is None else key
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", transparency=key)
    out, _ = inputs.decode_image(buffer.getvalue())
    np.testing.assert_array_equal(out[0, 0], [0, 0, 0])
    assert out[1:].any()


def test_exif_orientation_is_applied():
  image = np.zeros((4, 6, 3), np.uint8)
  image[0, :] = 255  # a white top row, seen as the right column once rotated upright (orientation 6: 90 deg CW)
  exif = Image.Exif()
  exif[0x0112] = 6
  buffer = io.BytesIO()
  Image.fromarray(image).save(buffer, format="PNG", exif=exif)
  out, mode = inputs.decode_image(buffer.getvalue())
  assert mode == "RGB" and out.shape == (6, 4, 3)
  assert out[:, -1].min() == 255 and out[:, 0].max() == 0


def test_palette_without_transparency_keeps_colours():
  image = np.zeros((4, 4, 3), np.uint8)
  image[:2] = [255, 0, 0]
  image[2:] = [0, 0, 255]
  buffer = io.BytesIO()
  Image.fromarray(image).convert("P", palette=Image.Palette.ADAPTIVE, colors=4).save(buffer, format="PNG")
  out, mode = inputs.decode_image(buffer.getvalue())
  assert mode == "P"
  np.testing.assert_array_equal(out, image)


def test_sixteen_bit_grayscale_is_scaled_to_eight_bit():
  values = np.array([[0, 257 * 100, 65535, 128]], dtype=np.uint16)
  out, mode = inputs.decode_image(_png(values))
  assert mode.startswith("I")
  np.testing.assert_array_equal(out[0, :, 0], [0, 100, 255, 0])
  np.testing.assert_array_equal(out[..., 0], out[..., 2])


def test_bilevel_and_cmyk_are_converted():
  out, mode = inputs.decode_image(_png(np.array([[0, 255]], np.uint8), mode="1"))
  assert mode == "1"
  np.testing.assert_array_equal(out[0], [[0, 0, 0], [255, 255, 255]])
  buffer = io.BytesIO()
  Image.fromarray(_rgb(8, 8)).convert("CMYK").save(buffer, format="JPEG")
  out, mode = inputs.decode_image(buffer.getvalue())
  assert mode == "CMYK" and out.shape == (8, 8, 3)


@pytest.mark.parametrize(
  "data, reason",
  [
    (b"", inputs.REASON_EMPTY),
    (b"this is a text file, not an image\n", inputs.REASON_NOT_IMAGE),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, inputs.REASON_CORRUPT),
  ],
)
def test_unusable_bytes_are_rejected_with_a_reason(data, reason):
  with pytest.raises(inputs.Reject) as info:
    inputs.decode_image(data)
  assert info.value.reason == reason


def test_an_image_with_a_damaged_exif_block_is_rejected_with_a_reason():
  """Its pixels decode, but which way is up is unknown (Pillow raises SyntaxError reading the block): a reject with
  its reason, not an exception that fails the whole job."""
  buffer = io.BytesIO()
  Image.fromarray(_rgb(8, 8)).save(buffer, format="PNG")
  data = buffer.getvalue()
  exif = b"garbage, not TIFF"
  chunk = struct.pack(">I", len(exif)) + b"eXIf" + exif + struct.pack(">I", zlib.crc32(b"eXIf" + exif) & 0xFFFFFFFF)
  after_header = 8 + 4 + 4 + 13 + 4  # signature, then the IHDR chunk
  with pytest.raises(inputs.Reject) as info:
    inputs.decode_image(data[:after_header] + chunk + data[after_header:])
  assert info.value.reason == inputs.REASON_EXIF


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_images_are_rejected(fmt):
  buffer = io.BytesIO()
  Image.fromarray(_rgb(64, 64)).save(buffer, format=fmt)
  data = buffer.getvalue()
  with pytest.raises(inputs.Reject) as info:
    inputs.decode_image(data[: len(data) // 2])
  assert info.value.reason == inputs.REASON_CORRUPT


def test_zero_size_images_are_rejected(monkeypatch):
  # Pillow refuses to open a PNG whose header says width 0: the header is read first, so it is "zero-size image"
  # (as docs/data.md says), not "truncated or corrupt image".
  header = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 4 + b"\x00\x00\x00\x05\x08\x02\x00\x00\x00"
  with pytest.raises(inputs.Reject) as info:
    inputs.decode_image(header)
  assert info.value.reason == inputs.REASON_ZERO_SIZE
  gif = b"GIF89a" + struct.pack("<HH", 7, 0) + b"\x00" * 10
  bmp = b"BM" + b"\x00" * 16 + struct.pack("<ii", 0, 4) + b"\x00" * 30
  jpeg = b"\xff\xd8\xff\xe0" + struct.pack(">H", 4) + b"\x00\x00" + b"\xff\xc0" + struct.pack(">HBHH", 11, 8, 0, 9)
  for data in (gif, bmp, jpeg):
    assert inputs.header_size(data) is not None and 0 in inputs.header_size(data)
    with pytest.raises(inputs.Reject) as info:
      inputs.decode_image(data)
    assert info.value.reason == inputs.REASON_ZERO_SIZE
  buffer = io.BytesIO()
  Image.fromarray(_rgb(6, 5)).save(buffer, format="JPEG")
  assert inputs.header_size(buffer.getvalue()) == (5, 6)  # (width, height) of a real file
  monkeypatch.setattr(inputs.Image, "open", lambda _: Image.new("RGB", (0, 5)))
  with pytest.raises(inputs.Reject) as info:
    inputs.decode_image(b"anything")
  assert info.value.reason == inputs.REASON_ZERO_SIZE


def test_float_images_are_rejected_as_unsupported_mode():
  buffer = io.BytesIO()
  Image.fromarray(np.ones((4, 4), np.float32)).save(buffer, format="TIFF")
  with pytest.raises(inputs.Reject) as info:
    inputs.decode_image(buffer.getvalue())
  assert info.value.reason == inputs.REASON_MODE


# --- crops ----------------------------------------------------------------------------------------------------------


def test_center_box_is_a_centred_square_of_the_shorter_side():
  assert inputs.center_box(200, 200, 0.8) == pytest.approx((20, 20, 180, 180))
  assert inputs.center_box(300, 200, 0.5) == pytest.approx((100, 50, 200, 150))


def test_pixel_box_rounds_and_clips():
  assert inputs.pixel_box((13.6, 8.2, 113.6, 108.2), 128, 128) == (14, 8, 114, 108)
  assert inputs.pixel_box((-3, -1, 500, 60), 128, 50) == (0, 0, 128, 50)
  assert inputs.pixel_box((10, 10, 10, 10), 20, 20) == (10, 10, 11, 11)  # never empty


def test_crop_resize_ignores_pixels_outside_the_box():
  image = np.zeros((128, 128, 3), np.uint8)
  image[8:108, 14:114] = 200
  np.testing.assert_array_equal(inputs.crop_resize(image, (14, 8, 114, 108), size=64), 200)


def test_crop_resize_output_and_content():
  image = np.zeros((100, 100, 3), np.uint8)
  image[:, 50:] = 255  # right half white
  out = inputs.crop_resize(image, (0, 0, 100, 100), size=10)
  assert out.shape == (10, 10, 3) and out.dtype == np.uint8
  assert out[:, :4].max() == 0 and out[:, 6:].min() == 255
  constant = np.full((37, 53, 3), 77, np.uint8)
  np.testing.assert_array_equal(inputs.crop_resize(constant, inputs.center_box(53, 37)), 77)


def test_crop_resize_depth_samples_the_surface_at_output_pixel_centres_and_keeps_background_zero():
  # A plane z = a + b u (raw pixels) on a square object; after the crop and resize each output pixel must hold the
  # plane's depth at that pixel's centre, mapped back to raw coordinates: nearest-neighbour would be up to half a
  # raw pixel off.
  depth = np.zeros((128, 128), np.float32)
  u = np.arange(128, dtype=np.float32)
  depth[30:100, 30:100] = (1.0 + 0.002 * u)[None, 30:100]
  box = (14, 8, 114, 108)
  out = inputs.crop_resize_depth(depth, box, size=64)
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
  image_out = inputs.crop_resize(image, box, size=64)
  agree = (image_out[..., 0] > 127) == inside
  assert agree.mean() > 0.95


def test_encode_png_round_trips():
  image = _rgb(64, 64)
  decoded, _ = inputs.decode_image(inputs.encode_png(image))
  np.testing.assert_array_equal(decoded, image)


# --- ground truth and listing ---------------------------------------------------------------------------------------


def test_ground_truth_is_loaded_and_checked():
  gt = inputs.load_ground_truth(_npz(np.ones((5, 7))), 5, 7)
  assert gt["depth"].shape == (5, 7) and gt["light"].tolist() == [0, 1, 2, 3] and gt["view"].size == 6
  for bad in (
    _npz(np.ones((5, 6))),
    _npz(np.ones((5, 7)), drop="view"),
    _npz(np.ones((5, 7)), light=np.ones(3)),
    _npz(np.full((5, 7), np.nan)),
    b"not an npz",
  ):
    with pytest.raises(inputs.Reject) as info:
      inputs.load_ground_truth(bad, 5, 7)
    assert info.value.reason == inputs.REASON_BAD_GT
