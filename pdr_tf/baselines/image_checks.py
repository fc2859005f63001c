"""The baselines' check of their input images: the model's [-1, 1] pixel convention (`formats.uint8_to_model`)."""

import numpy as np

RANGE_TOLERANCE = 1e-3  # images must lie in [-1, 1] up to this slack (float round-off of upstream preprocessing)


def check_model_range(name, images) -> None:
  """ValueError naming `name` unless every value of `images` is finite and in [-1, 1] (up to RANGE_TOLERANCE)."""
  low, high = float(np.min(images)), float(np.max(images))
  if not (np.isfinite(low) and np.isfinite(high)) or low < -1 - RANGE_TOLERANCE or high > 1 + RANGE_TOLERANCE:
    raise ValueError(f"{name} must be finite and in [-1, 1], got values in [{low}, {high}]")
