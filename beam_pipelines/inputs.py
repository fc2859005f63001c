"""Reading one input of a Beam conversion job: image decoding and conversion, crops, PNG encoding, ground-truth
sidecars, text decoding, and the rejection of inputs that cannot be used (`Reject`, with a short reason).

Pure functions of bytes and arrays, so they are tested without Beam; `beam_pipelines.common` wires them into the
pipeline.
"""

import io
import os
import struct

import numpy as np
from apache_beam.io.filesystems import FileSystems
from PIL import Image, ImageOps, UnidentifiedImageError

from pdr_tf.data import formats

# Reasons shared by every job (dataset-specific reasons live in the job modules).
REASON_UNREADABLE = "unreadable file"
REASON_EMPTY = "empty file"
REASON_NOT_IMAGE = "not an image"
REASON_CORRUPT = "truncated or corrupt image"
REASON_ZERO_SIZE = "zero-size image"
REASON_MODE = "unsupported image mode"
REASON_BAD_GT = "invalid ground truth"
REASON_EXIF = "unreadable EXIF metadata (orientation unknown)"
REASON_UNEXPECTED = "unexpected error"  # followed by the exception's type; the log has the traceback

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
_EXIF_ORIENTATION = 0x0112  # the EXIF tag of how the camera held the image


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

  An EXIF orientation is applied first (a camera's rotated image comes out upright). Conversions: grayscale ("L",
  "1"), CMYK/YCbCr and palette images go to RGB; images with alpha (RGBA, LA, PA, and palette, RGB or grayscale
  images with a transparent colour key) are composited on black, i.e. colour * alpha, so transparent background
  becomes black as in rendered datasets; 16-bit grayscale ("I;16*", and "I" as older Pillow opens 16-bit PNGs) is
  scaled from [0, 65535] to [0, 255] with rounding.

  Args:
    data: the file's bytes.

  Returns:
    (image, mode): uint8 [H, W, 3] and the source's Pillow mode (e.g. "RGB", "L", "I;16").

  Raises:
    Reject: empty data, not an image, truncated or corrupt data, a zero-size image, unreadable EXIF metadata, or a
      mode that has no sensible RGB meaning (e.g. "F", float).
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
  try:
    if image.getexif().get(_EXIF_ORIENTATION, 1) != 1:  # a camera's rotated image: stored upright, as viewers show it
      image = ImageOps.exif_transpose(image)
  except Exception as e:  # a damaged EXIF block (SyntaxError, ValueError, ... by format): which way is up is unknown
    raise Reject(REASON_EXIF) from e
  mode = image.mode
  if mode == "RGB" and "transparency" not in image.info:
    return np.asarray(image, dtype=np.uint8).copy(), mode
  if mode in _SIXTEEN_BIT_MODES:
    values = np.clip(np.asarray(image, dtype=np.int64), 0, 65535)
    gray = ((values * 255 + 32767) // 65535).astype(np.uint8)
    return np.repeat(gray[:, :, None], 3, axis=2), mode
  if mode in _ALPHA_MODES or (mode in ("P", "RGB", "L") and "transparency" in image.info):  # also PNG colour keys
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
