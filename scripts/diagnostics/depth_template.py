"""Diagnostic: how much of a trained model's canonical depth depends on the image?

python scripts/diagnostics/depth_template.py WORKDIR DATA_DIR [NUM_IMAGES]

Restores the latest checkpoint of the training run in WORKDIR and predicts the canonical depth of NUM_IMAGES (64)
validation images. Prints, on an 8 x 8 grid of cells (each cell the mean of its pixels):
- the depth averaged over the images (the "template"), in thousandths relative to 1.0;
- the spread of each cell over the images, in thousandths;
- the fraction of each cell that the world's object covers in the input images (where the car is);
and the image-specific share of the depth's variation: sum_i |d_i - t|^2 / sum_i |d_i|^2 over the per-image
mean-centred depths d_i, t their mean. A share near 0 means every image gets the same depth, whatever it shows.
"""

import numpy as np
import trained_run  # the sibling module: a script's own folder is on sys.path


CELLS = 8


def cell_means(maps: np.ndarray) -> np.ndarray:
  """[B, H, W] -> [B, CELLS, CELLS] means over square cells (H, W multiples of CELLS)."""
  batch, height, width = maps.shape
  return maps.reshape(batch, CELLS, height // CELLS, CELLS, width // CELLS).mean((2, 4))


def image_specific_share(depth: np.ndarray) -> float:
  """Share of the per-image mean-centred depth variation that the mean over the images does not explain."""
  centred = depth - depth.mean((1, 2), keepdims=True)
  template = centred.mean(0, keepdims=True)
  return float(np.square(centred - template).sum() / np.square(centred).sum())


def main():
  workdir, data_dir, model, batch = trained_run.restore_with_val_batch(__doc__)
  depth = np.asarray(model.predict_scene(batch["image"])["depth"], np.float64)
  cells = cell_means(depth)
  np.set_printoptions(precision=1, suppress=True, linewidth=160)
  print(f"{len(depth)} 'val' images of {data_dir}; model {workdir}")
  print("canonical depth averaged over the images, (depth - 1) x 1000, per cell:")
  print((cells.mean(0) - 1.0) * 1000)
  print("its spread over the images x 1000, per cell:")
  print(cells.std(0) * 1000)
  print("fraction of each cell covered by the world's object in the input images:")
  print(np.array2string(cell_means((batch["gt_depth"].numpy() > 0).astype(np.float64)).mean(0), precision=2))
  print(f"image-specific share of the depth's variation: {image_specific_share(depth):.3f}")


if __name__ == "__main__":
  main()
