"""Per-parameter statistics of predicted scenes against ground truth: pure functions.

Where the validation ratios say *whether* a de-renderer beats the trivial predictors, these say *how* it fails: a
parameter whose prediction is one value for every image (a collapse: small spread), one that follows the truth but
shrunk (correlation with a small spread), or one that is not learnt at all (no correlation). The parameters are
compared in their own frames (model: canonical, world: its canonical), so means may differ by the learnt frame;
spreads and correlations do not depend on a small fixed rotation between the two.
"""

from typing import Dict, List, Sequence

import numpy as np

LIGHT_NAMES = ("ka", "kd", "lx", "ly")
VIEW_NAMES = ("rx", "ry", "rz", "tx", "ty", "tz")


def parameter_rows(pred, gt, names: Sequence[str]) -> List[Dict]:
  """One row per column of [N, P] `pred` and `gt`: name, pred/gt mean and std, their Pearson correlation (NaN when
  either column is constant) and the least-squares slope of pred on gt (corr x pred std / gt std: 1 for a
  prediction at the truth's scale, below 1 for a shrunk one; 0 for a constant prediction, NaN for a constant truth)."""
  pred, gt = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
  if pred.ndim != 2 or pred.shape != gt.shape or pred.shape[1] != len(names):
    raise ValueError(f"pred and gt must both be [N, {len(names)}], got {pred.shape} and {gt.shape}")
  if pred.shape[0] < 2:
    raise ValueError(f"need at least 2 scenes for spreads and correlations, got {pred.shape[0]}")
  rows = []
  for index, name in enumerate(names):
    p, g = pred[:, index], gt[:, index]
    both_vary = p.std() > 0 and g.std() > 0
    corr = float(np.corrcoef(p, g)[0, 1]) if both_vary else float("nan")
    slope = float(np.mean((p - p.mean()) * (g - g.mean())) / g.var()) if g.std() > 0 else float("nan")
    rows.append(
      {
        "name": name,
        "pred_mean": float(p.mean()),
        "pred_std": float(p.std()),
        "gt_mean": float(g.mean()),
        "gt_std": float(g.std()),
        "corr": corr,
        "slope": slope,
      }
    )
  return rows


def masked_std_rows(pred_depth, gt_depth, mask) -> List[Dict]:
  """The depth's relief: per-image std of [N, H, W] predicted and true input-view depth over the pixels `mask`
  covers, averaged over the images (one row, named "depth relief"; corr: of the per-image stds)."""
  pred_depth, gt_depth = np.asarray(pred_depth, np.float64), np.asarray(gt_depth, np.float64)
  mask = np.asarray(mask) > 0
  if not pred_depth.shape == gt_depth.shape == mask.shape or pred_depth.ndim != 3:
    raise ValueError(f"depths and mask must all be [N, H, W], got {pred_depth.shape}, {gt_depth.shape}, {mask.shape}")
  keep = mask.reshape(len(mask), -1).sum(1) >= 2
  if keep.sum() < 2:
    raise ValueError("fewer than 2 images cover at least 2 pixels of the mask")
  per_image = np.array(
    [[d[m].std() for d, m in zip(depth[keep], mask[keep])] for depth in (pred_depth, gt_depth)]
  ).T  # [N, 2]
  return parameter_rows(per_image[:, :1], per_image[:, 1:], ("depth relief",))


def format_rows(rows: Sequence[Dict]) -> str:
  """A fixed-width text table of `parameter_rows` output."""
  lines = [f"{'':>13} {'predicted':>16} {'ground truth':>16} {'corr':>6} {'slope':>6}"]
  for r in rows:
    lines.append(
      f"{r['name']:>13} {r['pred_mean']:+8.3f}±{r['pred_std']:<7.3f} {r['gt_mean']:+8.3f}±{r['gt_std']:<7.3f} "
      f"{r['corr']:+6.2f} {r['slope']:+6.2f}"
    )
  return "\n".join(lines)
