"""Diagnostic: a synthetic world's nuisance statistics, measured from its ground truth, to set beside what is
published about the real dataset it stands in for (docs/synthetic.md, "Nuisance statistics against the published
data").

python scripts/diagnostics/world_statistics.py RAW_DIR [--max_images N] [--json OUT]

RAW_DIR is a world written by `python -m pdr_tf.synthetic`. The script reads its summary
(`synthetic.SUMMARY_FILENAME`), its label file (`formats.SYNTHETIC_LABELS_FILENAME`: every image with its split and
object id), every image and the image's ground-truth sidecar (`formats.GT_SUFFIX`), and prints per split (the cars
world has train/val/test; faces and bbt have none and print "all"), each as min / 5th percentile / median / 95th
percentile / max / mean / std:
- view: rx, ry, rz in degrees (cars: the tilts and the azimuth about the canonical top view; faces and bbt: pitch,
  yaw, roll) and the translation tx, ty, tz (scene units);
- light: ka, kd, lx, ly and the angle (degrees) of the direction normalize([lx, ly, 1]) from the camera axis;
- crop: the fraction of the crop that the world's Beam job takes (`shapenet_cars.syncar_box` for cars,
  `inputs.center_box` for faces and bbt: the model camera's view) that the object covers (ground-truth depth > 0),
  the longer side of the object's bounding box over the crop's side, and whether the object reaches the crop's edge
  (1) or not (0; the mean is the fraction of images where it does), and the object's nearest and farthest depth
  in the crop (camera z, scene units; the model's renderer puts the rotation centre at depth 1);
- background: the mean brightness (RGB mean in [0, 1]) of the crop's background pixels (depth 0, one pixel away from
  the object) and their standard deviation within the image (0: a plain background);
- bbt only, per track: for pitch, yaw, roll and each light component, the within-track standard deviation (pooled
  over tracks) against the standard deviation of the track means between tracks, the median range within a track,
  and the track lengths (frames per track and tracks per identity, from the label file, every track).
A missing or invalid sidecar (the Beam job's own check, `inputs.load_ground_truth`) or image is counted, the first few
are named, and the rest is measured. --max_images N measures an evenly spaced subset of the listed images (for bbt,
whole tracks), the same subset on every run. --json OUT also writes every number as JSON.
"""

import argparse
import csv
import math
import os
import sys

import numpy as np
from scipy import ndimage

from beam_pipelines import inputs
from beam_pipelines import shapenet_cars
from pdr_tf import synthetic
from pdr_tf.data import formats
from pdr_tf.evaluation import output_files

REPORT_WRITER = "scripts/diagnostics/world_statistics.py"  # the --json report's writer (`output_files.REPORT_KEY`)

ALL_SPLITS = "all"  # the split name of a world whose label file has none
MAX_NAMED = 5  # bad files named in the report
# The view angles' meaning per world (synthetic.cars.sample_views, synthetic.faces.sample_pose_light).
VIEW_NAMES = {
  "cars": ("rx tilt", "ry tilt", "rz azimuth"),
  "faces": ("rx pitch", "ry yaw", "rz roll"),
  "bbt": ("rx pitch", "ry yaw", "rz roll"),
}
TRANSLATION_NAMES = ("tx", "ty", "tz")
LIGHT_NAMES = ("ka", "kd", "lx", "ly")
LIGHT_ANGLE = "light angle from camera axis (deg)"
COVERAGE = "object coverage of the crop"
EXTENT = "object extent / crop side"
EDGE = "object reaches the crop edge"
NEAREST = "object nearest depth"
FARTHEST = "object farthest depth"
BACKGROUND_MEAN = "background brightness"
BACKGROUND_SPREAD = "background std within image"
# The crop box each world's Beam job takes (the box_fn of beam_pipelines.shapenet_cars / utkface / bbt
# build_pipeline), as (left, top, right, bottom) of a raw image of (width, height).
CROP_BOXES = {"cars": shapenet_cars.syncar_box, "faces": inputs.center_box, "bbt": inputs.center_box}


def summarize(values):
  """{"n", "min", "p5", "median", "p95", "max", "mean", "std"} of a sequence of numbers ({"n": 0} when empty)."""
  values = np.asarray(values, np.float64).reshape(-1)
  if values.size == 0:
    return {"n": 0}
  p5, median, p95 = np.percentile(values, [5, 50, 95])
  return {
    "n": int(values.size),
    "min": float(values.min()),
    "p5": float(p5),
    "median": float(median),
    "p95": float(p95),
    "max": float(values.max()),
    "mean": float(values.mean()),
    "std": float(values.std()),
  }


def light_angle_degrees(lx, ly):
  """Angle in degrees between the light direction normalize([lx, ly, 1]) and the camera axis (0, 0, 1)."""
  return np.degrees(np.arctan(np.hypot(np.asarray(lx, np.float64), np.asarray(ly, np.float64))))


def crop_pixels(world, width, height):
  """The pixel box (left, top, right, bottom) of the crop that `world`'s Beam job takes from a raw image."""
  return inputs.pixel_box(CROP_BOXES[world](width, height), width, height)


def depth_range(depth, box):
  """(nearest, farthest) object depth in the crop `box` of a depth map (0 where there is no object), or None."""
  left, top, right, bottom = box
  region = np.asarray(depth)[top:bottom, left:right]
  values = region[region > 0]
  return (float(values.min()), float(values.max())) if values.size else None


def coverage(depth, box):
  """(fraction of the crop `box` covered by the object, the longer side of the object's bounding box in the crop
  over the crop's side, whether the object touches the crop's edge) of a depth map [H, W] that is 0 where there is
  no object."""
  left, top, right, bottom = box
  inside = np.asarray(depth)[top:bottom, left:right] > 0
  if not inside.any():
    return 0.0, 0.0, False
  rows, cols = np.flatnonzero(inside.any(axis=1)), np.flatnonzero(inside.any(axis=0))
  extent = max(rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1) / float(max(inside.shape))
  edge = inside[0].any() or inside[-1].any() or inside[:, 0].any() or inside[:, -1].any()
  return float(inside.mean()), float(extent), bool(edge)


def background_brightness(image, depth, box):
  """(mean, standard deviation) of the brightness (RGB mean, [0, 1]) of the background pixels in the crop `box` of
  a uint8 [H, W, 3] image, leaving out the pixels next to the object (their colour mixes in the object's edge); None
  when the crop has no such pixel."""
  left, top, right, bottom = box
  near_object = ndimage.binary_dilation(np.asarray(depth) > 0, iterations=1)[top:bottom, left:right]
  brightness = np.asarray(image, np.float64)[top:bottom, left:right].mean(axis=-1) / 255.0
  values = brightness[~near_object]
  if values.size == 0:
    return None
  return float(values.mean()), float(values.std())


def read_labels(raw_dir):
  """The rows ({"image", "split", "label", "object_id"}) of a world's label file, in file order."""
  with open(os.path.join(raw_dir, formats.SYNTHETIC_LABELS_FILENAME), newline="", encoding="utf-8") as f:
    return list(csv.DictReader(f))


def subsample(rows, max_images, whole_objects=False):
  """An evenly spaced subset of about `max_images` rows (all rows when max_images is None or not smaller), in file
  order; with whole_objects, evenly spaced objects (rows sharing an object_id, e.g. a track) with all their rows."""
  if not max_images or len(rows) <= max_images:
    return list(rows)
  if not whole_objects:
    picked = np.unique(np.round(np.linspace(0, len(rows) - 1, max_images)).astype(int))
    return [rows[i] for i in picked]
  objects = list(dict.fromkeys(row["object_id"] for row in rows))
  count = max(1, int(round(len(objects) * max_images / len(rows))))
  keep = {objects[i] for i in np.unique(np.round(np.linspace(0, len(objects) - 1, count)).astype(int))}
  return [row for row in rows if row["object_id"] in keep]


def read_ground_truth(path, size):
  """The sidecar's {"depth", "light", "view"}, checked as the Beam job checks it; raises inputs.Reject (or OSError
  when the file is missing or unreadable)."""
  with open(path, "rb") as f:
    data = f.read()
  return inputs.load_ground_truth(data, size, size)


def measure(raw_dir, rows, world, raw_size):
  """Measures every listed image.

  Args:
    raw_dir: the world's folder.
    rows: label-file rows to measure.
    world: "cars", "faces" or "bbt".
    raw_size: the raw images' side in pixels (the summary's camera.raw_size).

  Returns:
    (records, bad_sidecars, bad_images): one dict per image with a valid sidecar ("split", "object_id", "label",
    "view" [6], "light" [4], "coverage", "extent", "edge", "depth_range" (nearest, farthest) or None, and
    "background" (mean, std) or None), and the (image path, reason) of each bad sidecar and of each unreadable
    image (an unreadable image still gives its sidecar's statistics, without the background).
  """
  box = crop_pixels(world, raw_size, raw_size)
  records, bad_sidecars, bad_images = [], [], []
  for row in rows:
    image_path = os.path.join(raw_dir, row["image"])
    try:
      gt = read_ground_truth(inputs.gt_path_for(image_path), raw_size)
    except OSError as e:
      bad_sidecars.append((row["image"], f"missing or unreadable sidecar ({e.__class__.__name__})"))
      continue
    except inputs.Reject as e:
      bad_sidecars.append((row["image"], e.reason))
      continue
    cover, extent, edge = coverage(gt["depth"], box)
    background = None
    try:
      with open(image_path, "rb") as f:
        image, _ = inputs.decode_image(f.read())
      if image.shape[:2] != gt["depth"].shape:
        raise inputs.Reject(f"image is {image.shape[1]}x{image.shape[0]}, its depth {raw_size}x{raw_size}")
      background = background_brightness(image, gt["depth"], box)
    except OSError as e:
      bad_images.append((row["image"], f"missing or unreadable image ({e.__class__.__name__})"))
    except inputs.Reject as e:
      bad_images.append((row["image"], e.reason))
    records.append(
      {
        "split": row.get("split") or ALL_SPLITS,
        "object_id": row.get("object_id", ""),
        "label": row.get("label", ""),
        "view": np.asarray(gt["view"], np.float64),
        "light": np.asarray(gt["light"], np.float64),
        "coverage": cover,
        "extent": extent,
        "edge": edge,
        "depth_range": depth_range(gt["depth"], box),
        "background": background,
      }
    )
  return records, bad_sidecars, bad_images


def image_statistics(records, world):
  """{quantity name: summarize(...)} over a list of measured records (see `measure`)."""
  if not records:
    return {}
  views = np.stack([r["view"] for r in records])
  lights = np.stack([r["light"] for r in records])
  out = {}
  for k, name in enumerate(VIEW_NAMES[world]):
    out[name + " (deg)"] = summarize(np.degrees(views[:, k]))
  for k, name in enumerate(TRANSLATION_NAMES):
    out[name] = summarize(views[:, 3 + k])
  for k, name in enumerate(LIGHT_NAMES):
    out[name] = summarize(lights[:, k])
  out[LIGHT_ANGLE] = summarize(light_angle_degrees(lights[:, 2], lights[:, 3]))
  out[COVERAGE] = summarize([r["coverage"] for r in records])
  out[EXTENT] = summarize([r["extent"] for r in records])
  out[EDGE] = summarize([float(r["edge"]) for r in records])
  depths = [r["depth_range"] for r in records if r["depth_range"] is not None]
  out[NEAREST] = summarize([d[0] for d in depths])
  out[FARTHEST] = summarize([d[1] for d in depths])
  backgrounds = [r["background"] for r in records if r["background"] is not None]
  out[BACKGROUND_MEAN] = summarize([b[0] for b in backgrounds])
  out[BACKGROUND_SPREAD] = summarize([b[1] for b in backgrounds])
  return out


def split_statistics(records, world):
  """{split: image_statistics} in the order splits first appear (the label file's order)."""
  splits = list(dict.fromkeys(r["split"] for r in records))
  return {split: image_statistics([r for r in records if r["split"] == split], world) for split in splits}


def track_variation(records, world):
  """Per quantity (pitch, yaw, roll in degrees; ka, kd, lx, ly): the within-track standard deviation (root mean of
  the per-track variances of tracks with at least two frames), the standard deviation of the track means between
  tracks, their ratio, and the median range (max - min) within a track; plus the number of tracks measured."""
  tracks = {}
  for r in records:
    values = np.concatenate([np.degrees(r["view"][:3]), r["light"]])
    tracks.setdefault(r["object_id"], []).append(values)
  names = list(VIEW_NAMES[world]) + list(LIGHT_NAMES)
  per_track = [np.stack(v) for v in tracks.values()]
  multi = [t for t in per_track if len(t) >= 2]
  out = {"tracks_measured": len(per_track)}
  if not per_track:
    return out
  means = np.stack([t.mean(axis=0) for t in per_track])
  for k, name in enumerate(names):
    within = math.sqrt(float(np.mean([t[:, k].var() for t in multi]))) if multi else None
    between = float(means[:, k].std())
    out[name] = {
      "within_track_std": within,
      "between_track_std": between,
      "within_over_between": within / between if within is not None and between > 0 else None,
      "median_track_range": float(np.median([np.ptp(t[:, k]) for t in per_track])),
    }
  return out


def track_lengths(rows):
  """Frames per track (summarize) and tracks per label, over every row of the label file."""
  frames, labels = {}, {}
  for row in rows:
    frames[row["object_id"]] = frames.get(row["object_id"], 0) + 1
    labels.setdefault(row["label"], set()).add(row["object_id"])
  return {
    "num_tracks": len(frames),
    "frames_per_track": summarize(list(frames.values())),
    "tracks_per_label": {label: len(ids) for label, ids in sorted(labels.items())},
  }


def world_statistics(raw_dir, max_images=None):
  """Every number the script reports, as a JSON-ready dict.

  Raises:
    ValueError: raw_dir holds no complete synthetic world (no readable summary) or no label file.
  """
  summary = synthetic.read_summary(raw_dir)
  if summary is None or summary.get("world") not in CROP_BOXES:
    raise ValueError(
      f"{raw_dir} has no readable {synthetic.SUMMARY_FILENAME} of a synthetic world "
      "(write one with python -m pdr_tf.synthetic)"
    )
  labels_path = os.path.join(raw_dir, formats.SYNTHETIC_LABELS_FILENAME)
  if not os.path.exists(labels_path):
    raise ValueError(f"{raw_dir} has no {formats.SYNTHETIC_LABELS_FILENAME}")
  world = summary["world"]
  raw_size = int(summary["camera"]["raw_size"])
  rows = read_labels(raw_dir)
  chosen = subsample(rows, max_images, whole_objects=world == "bbt")
  records, bad_sidecars, bad_images = measure(raw_dir, chosen, world, raw_size)
  out = {
    "raw_dir": raw_dir,
    "world": world,
    "seed": summary.get("seed"),
    "sizes": summary.get("sizes"),
    "raw_size": raw_size,
    "crop_box": list(crop_pixels(world, raw_size, raw_size)),
    "images_listed": len(rows),
    "images_read": len(chosen),
    "images_measured": len(records),
    "bad_sidecars": {"count": len(bad_sidecars), "first": [f"{p}: {r}" for p, r in bad_sidecars[:MAX_NAMED]]},
    "bad_images": {"count": len(bad_images), "first": [f"{p}: {r}" for p, r in bad_images[:MAX_NAMED]]},
    "splits": split_statistics(records, world),
  }
  if world == "bbt":
    out["tracks"] = {"lengths": track_lengths(rows), "variation": track_variation(records, world)}
  return out


def format_report(stats):
  """The printed report of a world_statistics dict, as text."""
  columns = ("min", "p5", "median", "p95", "max", "mean", "std")
  left, top, right, bottom = stats["crop_box"]
  size = stats["raw_size"]
  lines = [
    f"{stats['world']} world (seed {stats['seed']}, sizes {stats['sizes']}) in {stats['raw_dir']}",
    f"{stats['images_listed']} images listed, {stats['images_read']} read, {stats['images_measured']} measured; "
    f"crop (left, top, right, bottom) = ({left}, {top}, {right}, {bottom}) of {size}x{size} raw",
  ]
  for key in ("bad_sidecars", "bad_images"):
    bad = stats[key]
    lines.append(f"{key.replace('_', ' ')}: {bad['count']}" + "".join(f"\n  {name}" for name in bad["first"]))
  width = max([len(name) for split in stats["splits"].values() for name in split] + [8])
  for split, quantities in stats["splits"].items():
    n = max((q.get("n", 0) for q in quantities.values()), default=0)
    lines.append(f"\n[{split}] {n} images")
    lines.append(f"  {'quantity':<{width}}" + "".join(f"{c:>9}" for c in columns))
    for name, q in quantities.items():
      if q.get("n", 0) == 0:
        lines.append(f"  {name:<{width}}  (none)")
        continue
      lines.append(f"  {name:<{width}}" + "".join(f"{q[c]:>9.3f}" for c in columns))
  tracks = stats.get("tracks")
  if tracks:
    lengths, variation = tracks["lengths"], tracks["variation"]
    f = lengths["frames_per_track"]
    lines.append(
      f"\ntracks: {lengths['num_tracks']} (per label {lengths['tracks_per_label']}); "
      f"frames per track min {f['min']:.0f}, median {f['median']:.0f}, max {f['max']:.0f}, mean {f['mean']:.1f}"
    )
    lines.append(f"per-track variation over {variation['tracks_measured']} measured tracks (angles in degrees):")
    lines.append(f"  {'quantity':<{width}}{'within':>9}{'between':>9}{'ratio':>9}{'range':>9}")
    for name, v in variation.items():
      if name == "tracks_measured":
        continue
      cells = (v["within_track_std"], v["between_track_std"], v["within_over_between"], v["median_track_range"])
      lines.append(f"  {name:<{width}}" + "".join(f"{c:>9.3f}" if c is not None else f"{'-':>9}" for c in cells))
  return "\n".join(lines)


def make_parser():
  parser = argparse.ArgumentParser(
    prog="world_statistics.py", description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
  )
  parser.add_argument("raw_dir", metavar="RAW_DIR", help="a world written by python -m pdr_tf.synthetic")
  parser.add_argument(
    "--max_images", type=int, default=None, help="measure an evenly spaced subset of about N images (bbt: whole tracks)"
  )
  parser.add_argument("--json", default=None, metavar="OUT", help="also write every number to this JSON file")
  return parser


def main(argv=None):
  parser = make_parser()
  args = parser.parse_args(argv)
  output_files.check_json_argument(parser, args.json, REPORT_WRITER)
  if args.max_images is not None and args.max_images < 1:
    sys.exit("--max_images must be at least 1")
  try:
    stats = world_statistics(args.raw_dir, args.max_images)
  except ValueError as e:
    sys.exit(str(e))
  print(format_report(stats))
  if args.json and not output_files.write_json_argument(args.json, stats, REPORT_WRITER):
    return 1
  return 0


if __name__ == "__main__":
  sys.exit(main())
