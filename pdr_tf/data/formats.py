"""On-disk formats of the datasets pdr_tf reads: one place for names, patterns, classes and crops.

The synthetic worlds (`pdr_tf.synthetic`) write these formats and the Beam jobs (`beam_pipelines`) read them, so
the same conversion code runs on the real UTKFace, ShapeNet "syncar" renders and BBT face tracks.
"""

import re

# The labelled split that evaluation clusters (cars: the test renders; BBT: its only split, BBT_SPLIT).
EVALUATION_SPLIT = "test"

# Every model input is a square RGB image of this size (pixels), stored in TFRecords already cropped and resized.
IMAGE_SIZE = 64


# Pixel values: uint8 [0, 255] on disk, [-1, 1] inside the model, [0, 1] at the serving boundary and in image
# summaries. Plain arithmetic, so that NumPy arrays and TensorFlow tensors convert alike; callers clip.
def uint8_to_model(pixels):
  """[0, 255] (float) -> [-1, 1]."""
  return pixels / 127.5 - 1.0


def unit_to_model(pixels):
  """[0, 1] -> [-1, 1]."""
  return pixels * 2.0 - 1.0


def model_to_unit(pixels):
  """[-1, 1] -> [0, 1] (unclipped)."""
  return (pixels + 1.0) / 2.0


def model_to_uint8(pixels):
  """[-1, 1] -> [0, 255] (float, unclipped)."""
  return (pixels + 1.0) * 127.5


# File names with one of these extensions (any case) are images; the image type itself comes from the bytes. Ids
# and numbers in file names are ASCII digits only ([0-9], never other Unicode digits such as "²" or "١٢٣").
IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "bmp", "webp", "gif", "tif", "tiff")
_IMAGE_EXTENSION = r"(?i:" + "|".join(IMAGE_EXTENSIONS) + r")"


def is_image_name(name: str) -> bool:
  """Whether a file name ends in one of IMAGE_EXTENSIONS (case-insensitive)."""
  return "." in name and name.rsplit(".", 1)[1].lower() in IMAGE_EXTENSIONS


# ---------------------------------------------------------------------------------------------------------------
# ShapeNet cars rendered for Unsup3D ("syncar"): <root>/{train,val,test}/<32-hex model id>_<index>.png
# plus a ShapeNet metadata CSV naming each model.
SYNCAR_SPLITS = ("train", "val", "test")
SYNCAR_RAW_SIZE = 128  # side of the raw syncar PNGs (pixels)
SYNCAR_CROP = (8, 14, 100, 100)  # (y0, x0, height, width) in raw pixels, as in Unsup3D's syncar config
SYNCAR_FILENAME = re.compile(r"^(?P<model_id>[0-9a-f]{32})_(?P<index>[0-9]+)\." + _IMAGE_EXTENSION + r"$")
SHAPENET_CAR_SYNSET = "02958343"
SHAPENET_METADATA_COLUMNS = ("fullId", "wnsynset", "wnlemmas", "up", "front", "name", "tags")
SHAPENET_METADATA_FILENAME = "metadata.csv"
# A model's fullId in the metadata: "3dw.<id>" in ShapeNetCore's per-synset CSV (syncar's source), "wss.<id>" in
# ShapeNetSem's; the reader strips either, the synthetic world writes Core's.
SHAPENET_FULLID_PREFIX = "3dw."
SHAPENET_FULLID_PREFIXES = (SHAPENET_FULLID_PREFIX, "wss.")
# The paper's five test classes, in label-id order; each with the WordNet lemmas that identify it in `wnlemmas`.
CAR_CLASSES = ("police car", "ambulance", "limousine", "jeep", "Ferrari")
CAR_CLASS_LEMMAS = {
  "police car": ("police car", "police cruiser", "patrol car", "prowl car", "squad car", "cruiser"),
  "ambulance": ("ambulance",),
  "limousine": ("limousine", "limo"),
  "jeep": ("jeep", "landrover"),
  "Ferrari": ("Ferrari", "racer", "race car", "racing car", "sports car", "sport car"),
}

# ---------------------------------------------------------------------------------------------------------------
# UTKFace aligned crops: <root>/<age>_<gender>_<race>_<YYYYMMDDHHMMSSFFF>.jpg (the real download also has
# ".jpg.chip.jpg" names; any image extension is accepted). Some real names are malformed: they are rejected with a
# reason, never crash a job.
UTKFACE_RAW_SIZE = 200
UTKFACE_FILENAME = re.compile(
  r"^(?P<age>[0-9]{1,3})_(?P<gender>[01])_(?P<race>[0-4])_(?P<timestamp>[0-9]{17})\."
  + _IMAGE_EXTENSION
  + r"(?:\.chip\."
  + _IMAGE_EXTENSION
  + r")?$"
)
UTKFACE_GENDERS = ("male", "female")
UTKFACE_RACES = ("White", "Black", "Asian", "Indian", "Others")
UTKFACE_SPLITS = (("train", 0.8), ("val", 0.1), ("test", 0.1))  # by a stable hash of the file name
FACE_CENTER_CROP = 0.8  # faces: keep the central fraction of each side, then resize to IMAGE_SIZE

# ---------------------------------------------------------------------------------------------------------------
# BBT S01E01 face tracks: <root>/tracks/<track id>/<frame index>.jpg plus <root>/tracklabels.ids, a text file
# whose first line is the header and then one `trackid name` line per track.
BBT_SPLIT = EVALUATION_SPLIT  # BBT is only ever evaluated on: every converted track goes into this one split
BBT_TRACKS_DIRNAME = "tracks"
BBT_LABELS_FILENAME = "tracklabels.ids"
BBT_LABELS_HEADER = "CVHCI_TRACKLABELS_V1"
BBT_IDENTITIES = ("leonard", "sheldon", "penny", "howard", "raj")
BBT_TRACK_COUNTS = {"leonard": 253, "sheldon": 211, "penny": 111, "howard": 42, "raj": 26}
BBT_FRAME_FILENAME = re.compile(r"^(?P<frame>[0-9]+)\." + _IMAGE_EXTENSION + r"$")
BBT_TRACK_ID = re.compile(r"^[0-9]+$")  # numeric track ids compare as numbers ("0007" == "7")

# ---------------------------------------------------------------------------------------------------------------
# Ground truth written by the synthetic worlds beside each image: <image path without extension>.gt.npz with
#   depth [H, W] float32  depth in the input view at the raw image's resolution, 0 where there is no object;
#   light [4]    float32  (ka, kd, lx, ly): ambient, diffuse, and light direction = normalize([lx, ly, 1]);
#   view  [6]    float32  (rx, ry, rz) radians and (tx, ty, tz), the Unsup3D view of the object.
# Real datasets have no such files; readers treat them as optional.
GT_SUFFIX = ".gt.npz"
GT_KEYS = ("depth", "light", "view")
GT_LIGHT_DIM = 4
GT_VIEW_DIM = 6
# Label ground truth that the datasets' own formats do not carry (e.g. face identities), written by the synthetic
# worlds at the root of each world as a CSV; the Beam jobs never take it as an input image.
SYNTHETIC_LABELS_FILENAME = "ground_truth.csv"
