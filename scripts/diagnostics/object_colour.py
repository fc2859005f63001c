"""Diagnostic: does a trained model reproduce each object's colour?

python scripts/diagnostics/object_colour.py WORKDIR DATA_DIR [NUM_IMAGES]

Restores the latest checkpoint of the training run in WORKDIR, reconstructs NUM_IMAGES (64) validation images with
ground truth, and compares the colour of the object in the input and in the reconstruction. The object's pixels are
those darker than the worlds' light background (input luminance below 0.8 in the [-1, 1] convention); an image's
colour is the mean chroma (each channel minus the pixel's channel mean) over them. Prints, per channel, how the
reconstruction's colour correlates with the input's over the images, and the mean absolute colour error of the model
beside two predictors that ignore the image: grey (no chroma) and the batch's mean colour. A model that has not
learnt colours paints every object in the mean hue: correlations near 0 and an error near the mean colour's.
"""

import sys

import numpy as np
import trained_run  # the sibling module: a script's own folder is on sys.path

BACKGROUND_LUMINANCE = 0.8


def object_chroma(images: np.ndarray, mask: np.ndarray) -> np.ndarray:
  """[B, 3] mean chroma of `images` [B, H, W, 3] over the pixels of `mask` [B, H, W, 1] (0 where it is empty)."""
  chroma = images - images.mean(-1, keepdims=True)
  return (chroma * mask).sum((1, 2)) / np.maximum(mask.sum((1, 2)), 1.0)


def main():
  workdir, data_dir, model, batch = trained_run.restore_with_val_batch(__doc__)
  images = np.asarray(batch["image"], np.float64)
  recon = np.asarray(model.de_render(batch["image"])["recon_image"], np.float64)
  mask = (images.mean(-1, keepdims=True) < BACKGROUND_LUMINANCE).astype(np.float64)
  if not mask.sum((1, 2, 3)).all():
    sys.exit(f"{data_dir}: some 'val' images have no pixel darker than {BACKGROUND_LUMINANCE} (no object to measure)")
  truth, model_colour = object_chroma(images, mask), object_chroma(recon, mask)
  corr = [np.corrcoef(truth[:, k], model_colour[:, k])[0, 1] for k in range(3)]
  error = {
    "model": np.abs(truth - model_colour).mean(),
    "grey": np.abs(truth).mean(),
    "mean colour": np.abs(truth - truth.mean(0)).mean(),
  }
  print(f"{len(images)} 'val' images of {data_dir}; model {workdir}; object colour = mean chroma of its pixels")
  print("correlation with the input's colour, R / G / B: " + " / ".join(f"{c:+.2f}" for c in corr))
  print("mean absolute colour error: " + ", ".join(f"{name} {value:.4f}" for name, value in error.items()))
  print(
    f"spread of the colour over the images: input {truth.std(0).mean():.4f}, model {model_colour.std(0).mean():.4f}"
  )


if __name__ == "__main__":
  main()
