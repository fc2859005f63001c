"""Diagnostic: which feature blocks encode the light and the view? (cross-validated linear read-out)

python scripts/diagnostics/light_in_features.py WORKDIR DATA_DIR [NUM_IMAGES]

Restores the latest checkpoint of the training run in WORKDIR, encodes NUM_IMAGES (393) validation images with ground
truth, and for each PDR feature block (depth, albedo, light, view) fits a ridge regression to each true scene
component (lx, ly, the view's pitch rx and yaw ry), scored by 5-fold cross-validated R^2 (0: no better than the mean;
1: read exactly). In a physically disentangled representation the light components are read from the light block and
not from the depth and albedo blocks; LOOCC's light perturbations are meant to make the albedo and depth features
blind to the light. The worlds draw light and view independently of the identity, so what a block's R^2 shows is
that block's doing.
"""

import numpy as np
import trained_run  # the sibling module: a script's own folder is on sys.path
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import KFold, cross_val_predict

from pdr_tf.render import scene

TARGETS = {"lx": ("gt_light", 2), "ly": ("gt_light", 3), "rx": ("gt_view", 0), "ry": ("gt_view", 1)}
ALPHAS = np.logspace(-3, 3, 13)


def cross_validated_r2(features, target, folds=5, seed=0) -> float:
  """Cross-validated R^2 (`folds` folds, fewer for fewer than `folds` images) of a ridge regression (alpha chosen
  inside each fold) of `target` [N] on `features` [N, D]; 0 for a constant target or features. The features are not
  standardised: a sparse ReLU unit, active on a few images, scaled to unit variance would give those images
  extreme values, and a block's units share one scale anyway."""
  target = np.asarray(target, np.float64)
  if target.std() == 0:
    return 0.0
  features = np.asarray(features, np.float64)
  if not np.any(features.std(axis=0) > 0):
    return 0.0
  model = RidgeCV(alphas=ALPHAS)
  folds = KFold(min(folds, len(target)), shuffle=True, random_state=seed)
  predicted = cross_val_predict(model, features, target, cv=folds)
  return float(1.0 - np.mean((predicted - target) ** 2) / target.var())


def read_out_table(features, truth):
  """{block: {component: R^2}} for `features` {block: [N, D]} and `truth` {component: [N]}."""
  return {block: {name: cross_validated_r2(f, t) for name, t in truth.items()} for block, f in features.items()}


def main():
  _, _, model, batch = trained_run.restore_with_val_batch(__doc__, default_images=393)
  features = {name: np.asarray(f) for name, f in model.encode(batch["image"]).items()}
  truth = {name: batch[key].numpy()[:, index] for name, (key, index) in TARGETS.items()}
  table = read_out_table({name: features[name] for name in scene.PROPERTIES}, truth)
  print(f"{len(batch['image'])} 'val' images; 5-fold cross-validated R^2 of a ridge read-out (0: the mean, 1: exact)")
  print("block    " + "".join(f"{name:>8s}" for name in TARGETS))
  for block, row in table.items():
    print(f"{block:8s} " + "".join(f"{row[name]:8.3f}" for name in TARGETS))


if __name__ == "__main__":
  main()
