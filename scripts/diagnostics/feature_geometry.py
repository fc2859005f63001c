"""Diagnostic: is a feature block's class information missing, or only shaped so that Ward does not find it?

python scripts/diagnostics/feature_geometry.py DATA_DIR WORKDIR [WORKDIR ...] [--tracks] [--json OUT]

Embeds the labelled `test` records of DATA_DIR with each WORKDIR's exported model (its export/ folder, as written at
the end of training) and prints, per feature block (depth, albedo, light, view) and for depth + albedo:

- dims, dead: the block's width and how many of its dimensions do not vary over the images;
- PR: the participation ratio of the covariance's eigenvalues, (sum l)^2 / sum l^2, the number of dimensions the
  variance effectively spreads over;
- variance: the covariance's trace, the block's scale in Ward's Euclidean distances;
- between: the share of that variance between the class means (sum over classes of n_c |mean_c - mean|^2 over the
  total sum of squares), the class separation as Ward's distances see it;
- ward: the cluster accuracy (WCP) of Ward with k = classes on the features as they are, on each dimension
  standardised to zero mean and unit variance (ward z), and on each feature vector scaled to unit length (ward l2:
  the cosine geometry in which LOOCC's NT-Xent compares features);
- probe: a linear probe's accuracy, logistic regression on the standardised features, 5-fold stratified cross
  validation: how much class information a linear read-out finds, however the clusters are shaped.

--tracks averages the features per track first (BBT), as the evaluation does. Needs the SavedModel in
WORKDIR/export.
"""

import argparse
import sys

import numpy as np
from sklearn import linear_model, model_selection, preprocessing

from pdr_tf import evaluate as evaluate_lib
from pdr_tf import export
from pdr_tf.evaluation import clustering, metrics, output_files
from pdr_tf.training import workdir as workdir_lib

BLOCKS = ("depth", "albedo", "light", "view")
REPORT_WRITER = "scripts/diagnostics/feature_geometry.py"  # the --json report's writer (`output_files.REPORT_KEY`)
COMBINED = ("depth", "albedo")  # the paper's feature set
PROBE_FOLDS = 5


def participation_ratio(x):
  """(sum l)^2 / sum l^2 over the eigenvalues l of the covariance of [N, D] features: 1 for one direction, D for
  variance spread evenly over D; 0 when nothing varies."""
  x = np.asarray(x, np.float64)
  eig = np.clip(np.linalg.eigvalsh(np.cov(x, rowvar=False).reshape(x.shape[1], x.shape[1])), 0.0, None)
  total = eig.sum()
  return float(total**2 / np.square(eig).sum()) if total > 0 else 0.0


def between_share(x, labels):
  """Share of the total sum of squares of [N, D] features that lies between the class means, in [0, 1]."""
  x = np.asarray(x, np.float64)
  labels = np.asarray(labels)
  centred = x - x.mean(axis=0)
  total = np.square(centred).sum()
  if total == 0:
    return 0.0
  between = 0.0
  for c in np.unique(labels):
    members = centred[labels == c]
    between += members.shape[0] * np.square(members.mean(axis=0)).sum()
  return float(between / total)


def dead_dims(x, rel=1e-6):
  """Dimensions of [N, D] features whose standard deviation is below rel times the block's largest (or zero)."""
  std = np.asarray(x, np.float64).std(axis=0)
  return int(np.sum(std <= rel * max(std.max(), 1e-30)))


def standardize(x):
  """Each varying dimension to zero mean, unit variance; constant dimensions to zero."""
  x = np.asarray(x, np.float64)
  std = x.std(axis=0)
  return (x - x.mean(axis=0)) / np.where(std > 0, std, 1.0)


def ward_accuracy(x, labels):
  labels = np.asarray(labels)
  k = np.unique(labels).size
  return float(metrics.clustering_report(labels, clustering.cluster(x, k, method="ward"))["wcp"])


def probe_accuracy(x, labels, folds=PROBE_FOLDS, seed=0):
  """Mean 5-fold stratified cross-validated accuracy of a logistic regression on standardised features; None when a
  class has fewer samples than folds."""
  labels = np.asarray(labels)
  _, counts = np.unique(labels, return_counts=True)
  if counts.min() < folds:
    return None
  probe = linear_model.LogisticRegression(max_iter=2000)
  split = model_selection.StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
  scores = []
  for train, test in split.split(x, labels):
    scaler = preprocessing.StandardScaler().fit(x[train])
    probe.fit(scaler.transform(x[train]), labels[train])
    scores.append(probe.score(scaler.transform(x[test]), labels[test]))
  return float(np.mean(scores))


def block_report(x, labels):
  """The statistics of one [N, D] feature block against [N] labels (see the module doc)."""
  x = np.asarray(x, np.float64)
  return {
    "dims": int(x.shape[1]),
    "dead": dead_dims(x),
    "participation_ratio": participation_ratio(x),
    "variance": float(np.var(x, axis=0).sum()),
    "between_share": between_share(x, labels),
    "ward": ward_accuracy(x, labels),
    "ward_standardized": ward_accuracy(standardize(x), labels),
    "ward_l2": ward_accuracy(clustering.l2_normalize_rows(x), labels),
    "probe": probe_accuracy(x, labels),
  }


def geometry(features, labels, group_ids=None):
  """block_report of every BLOCKS entry present and of depth + albedo; features averaged per group when given."""
  if group_ids is not None:
    features = {b: clustering.average_by_group(v, group_ids)[0] for b, v in features.items()}
    labels, _ = clustering.labels_by_group(labels, group_ids)
  rows = {b: block_report(features[b], labels) for b in BLOCKS if b in features}
  if all(b in features for b in COMBINED):
    rows["+".join(COMBINED)] = block_report(np.concatenate([features[b] for b in COMBINED], axis=1), labels)
  return rows


def _format(value):
  if value is None:
    return "-"
  return f"{value:.3f}" if isinstance(value, float) else str(value)


def markdown(reports):
  columns = (
    "dims",
    "dead",
    "participation_ratio",
    "variance",
    "between_share",
    "ward",
    "ward_standardized",
    "ward_l2",
    "probe",
  )
  lines = [
    "| run | block | dims | dead | PR | variance | between | ward | ward z | ward l2 | probe |",
    "|---|---|" + "---|" * len(columns),
  ]
  for run, rows in reports.items():
    for block, row in rows.items():
      lines.append(f"| {run} | {block} | " + " | ".join(_format(row[c]) for c in columns) + " |")
  return "\n".join(lines)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("data_dir")
  parser.add_argument("workdirs", nargs="+")
  parser.add_argument("--tracks", action="store_true", help="average the features per track first (BBT)")
  parser.add_argument("--json", default=None, help="also write the numbers here")
  args = parser.parse_args(argv)
  output_files.check_json_argument(parser, args.json, REPORT_WRITER)
  reports = {}
  for workdir in args.workdirs:
    try:
      loaded, resolved = export.load_export(workdir_lib.export(workdir), signatures=("embed_images",))
    except (OSError, ValueError) as e:
      sys.exit(f"{workdir}: no usable export ({e})")
    features, labels, tracks, _, _ = evaluate_lib.embed_dataset(
      loaded, args.data_dir, "test", label_field="label_id", derender_metrics_on=False, saved_model_dir=resolved
    )
    reports[workdir] = geometry(features, labels, tracks if args.tracks else None)
  print(markdown(reports))
  report = {"data_dir": args.data_dir, "tracks": args.tracks, "runs": reports}
  if args.json and not output_files.write_json_argument(args.json, report, REPORT_WRITER, indent=1):
    sys.exit(1)


if __name__ == "__main__":
  main()
