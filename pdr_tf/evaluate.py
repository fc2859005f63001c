"""Evaluation of exported de-renderers: clustering of PDR features, disentanglement and de-rendering accuracy.

`evaluate` loads a SavedModel from `pdr_tf.export` and a converted TFRecord split, embeds every labelled image with
the `embed_images` signature, optionally averages features per face track (BBT), clusters them with k = number of
classes and scores the clusters (pdr_tf.evaluation.metrics), measures the mean PCC between the four
features (pdr_tf.evaluation.disentanglement) and, for records with ground truth, SIDE / MAD / light / view errors
of the `de_render` signature (pdr_tf.evaluation.derender_metrics). `evaluate_features` does the clustering part
on precomputed features, so baselines (VQ-VAE, pixels + PCA) are scored the same way. Definitions: docs/evaluation.md.
"""

import argparse
import csv
import logging
import os
import sys
import time

import gin
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from pdr_tf import cli
from pdr_tf.evaluation import clustering
from pdr_tf.evaluation import derender_eval
from pdr_tf.evaluation import disentanglement
from pdr_tf.evaluation import exported_derender
from pdr_tf import export
from pdr_tf.data import feature_spec
from pdr_tf.data import formats
from pdr_tf import config_checks
from pdr_tf import gin_config
from pdr_tf.data import input_pipeline

from pdr_tf.evaluation import metrics
from pdr_tf.evaluation import output_files
from pdr_tf.evaluation import plots
from pdr_tf.evaluation import report

_LOG = logging.getLogger(__name__)

FEATURE_NAMES = export.FEATURE_NAMES
FEATURE_SETS = {
  "depth_albedo": ("depth", "albedo"),  # the paper's PDR
  "all": FEATURE_NAMES,
  "depth": ("depth",),
  "albedo": ("albedo",),
  "light": ("light",),
  "view": ("view",),
}
LOG_EVERY_RECORDS = 256  # without a terminal (no progress bar), a log line per this many records
_STAGES = ("load_saved_model_s", "embed_and_de_render_s", "cluster_and_report_s")  # evaluate's stages, in order
# label field -> class names by index (None: names come from the records' label/name).
LABEL_FIELDS = {"label_id": None, "gender": formats.UTKFACE_GENDERS, "race": formats.UTKFACE_RACES}
# What evaluate may write into its output folder: results key -> file name suffix after <name>. It replaces only
# its own earlier outputs there (pdr_tf.evaluation.output_files: a manifest of the files it wrote and their sha256)
# and checks every name before it writes the first, so a refused run leaves the folder as it was.
OUTPUT_SUFFIXES = {
  "json": ".json",
  "markdown": ".md",
  "embedding_png": "_embedding.png",
  "confusion_png": "_confusion.png",
  "correlation_png": "_correlation.png",
  "assignments_csv": "_assignments.csv",
  "config_gin": "_config.gin",  # only with evaluate(write_config=True), as the command line does
}
OUTPUT_DIR_HINT = "choose another one with evaluate.output_dir (--gin_param=\"evaluate.output_dir='runs/eval/other'\")"


def output_filenames(name, config=False):
  """File names `evaluate` (and `evaluate_features`) may write for `name`: {results["outputs"] key: file name}."""
  output_files.check_filename(name)
  return {key: f"{name}{suffix}" for key, suffix in OUTPUT_SUFFIXES.items() if config or key != "config_gin"}


def _check_features(features):
  if not isinstance(features, dict) or not features:
    raise ValueError("features must be a non-empty dict of block name -> [N, D] array")
  out = {}
  for name, block in features.items():
    block = np.asarray(block)
    if block.ndim != 2 or block.shape[1] == 0:
      raise ValueError(f"feature block {name!r} must have shape [N, D] with D >= 1, got {block.shape}")
    out[name] = block
  sizes = {name: block.shape[0] for name, block in out.items()}
  if len(set(sizes.values())) != 1:
    raise ValueError(f"feature blocks differ in their number of samples: {sizes}")
  return out


def _select_blocks(features, feature_set):
  if feature_set is None:
    return list(features)
  if isinstance(feature_set, str):
    if feature_set not in FEATURE_SETS:
      raise ValueError(
        f"unknown feature_set {feature_set!r}; expected one of {sorted(FEATURE_SETS)} or a list of block names"
      )
    names = list(FEATURE_SETS[feature_set])
  else:
    names = list(feature_set)
  missing = [n for n in names if n not in features]
  if not names or missing:
    raise ValueError(
      f"feature_set {feature_set!r} needs blocks {missing or names} but the features have {list(features)}"
    )
  return names


def evaluate_features(
  features,
  labels,
  group_ids=None,
  feature_set=None,
  method="ward",
  l2_normalize=False,
  num_clusters=None,
  seed=0,
  output_dir=None,
  name="evaluation",
  extra=None,
):
  """Clusters precomputed features and scores the clusters against labels (and writes the report).

  Args:
      features: dict block name -> [N, D_block] array, e.g. {"depth": ..., "albedo": ..., "light": ...,
          "view": ...} or {"vqvae": ...} for a baseline. With two or more blocks the disentanglement score
          between all of them is reported.
      labels: [N] class of each sample (ints or strings); every sample must be labelled.
      group_ids: optional [N] group (face track) of each sample; features are then averaged per group and each
          group is one sample with its (single) label.
      feature_set: which blocks are concatenated for clustering: a FEATURE_SETS key, a list of block names, or
          None for all blocks.
      method: "ward" or "kmeans" (see `clustering.cluster`).
      l2_normalize: scale each concatenated feature vector to unit norm before clustering.
      num_clusters: k; default the number of distinct labels.
      seed: KMeans seed.
      output_dir: when set, writes `<name>.json`, `<name>.md`, `<name>_assignments.csv` and the PNG plots there
          (`output_filenames`); a file there with one of those names that evaluate did not write stops it
          (FileExistsError) before it writes anything.
      name: base name of the output files.
      extra: dict merged into the results before writing (e.g. the config and de-rendering metrics).

  Returns:
      dict with n_samples, n_classes, k, class_counts, feature_set, blocks, dims, method, l2_normalize,
      grouped, clustering (metrics.clustering_report), accuracy / f1 (the paper's Table 1 pair: WCP and the
      majority-mapped weighted F1), disentanglement (or None with one block) and outputs (paths, when written).

  Raises:
      ValueError: no samples, a single class, k larger than the number of samples, or inconsistent inputs.
      FileExistsError, NotADirectoryError: output_dir holds files evaluate did not write with its outputs' names, or
          is a file (`output_files.check_writable`).
  """
  if output_dir:
    output_files.check_writable(output_dir, list(output_filenames(name).values()), OUTPUT_DIR_HINT)
  features = _check_features(features)
  labels = np.asarray(labels)
  n = next(iter(features.values())).shape[0]
  if labels.ndim != 1 or labels.shape[0] != n:
    raise ValueError(f"labels must have shape [{n}] to match the features, got {labels.shape}")
  if n == 0:
    raise ValueError("no labelled samples to evaluate (every label is missing or the input is empty)")
  blocks = _select_blocks(features, feature_set)
  dims = {b: int(features[b].shape[1]) for b in features}
  nonfinite = {
    b: int(np.count_nonzero(~np.isfinite(np.asarray(v, np.float64)).all(axis=1))) for b, v in features.items()
  }
  for b in blocks:
    if nonfinite[b]:
      raise ValueError(
        f"feature block {b!r} has non-finite values (NaN or inf) in {nonfinite[b]} of {n} samples: these features "
        "cannot be clustered (did the model's training diverge?)"
      )
  void = [b for b, bad in nonfinite.items() if bad]  # blocks not clustered: they only void the PCC
  grouped = group_ids is not None
  if grouped:
    averaged = {}
    for block_name, block in features.items():
      if block_name in void:
        continue
      averaged[block_name], ids = clustering.average_by_group(block, group_ids)
    labels, _ = clustering.labels_by_group(labels, group_ids)
    features, group_ids = averaged, ids
    n = labels.shape[0]
  classes, counts = np.unique(labels, return_counts=True)
  unit = "groups" if grouped else "samples"
  if classes.size < 2:
    raise ValueError(
      f"only one class ({classes[0]!r}) among the {n} labelled {unit}: clustering scores need at least two classes"
    )
  k = int(classes.size if num_clusters is None else num_clusters)
  if k > n:
    raise ValueError(f"k={k} clusters is larger than the number of {unit} N={n}")
  x = np.concatenate([np.asarray(features[b], np.float64) for b in blocks], axis=1)
  distinct = int(np.unique(x, axis=0).shape[0])
  if distinct < k:  # e.g. a collapsed model: the clusters then split identical vectors by tie-breaking
    _LOG.warning(
      "the %s features of the %d %s take only %d distinct values, fewer than the k = %d clusters: the cluster "
      "scores measure how ties were split, not the features",
      "+".join(blocks),
      n,
      unit,
      distinct,
      k,
    )
  predicted = clustering.cluster(x, k, method=method, seed=seed, l2_normalize=l2_normalize)
  scores = metrics.clustering_report(labels, predicted)
  disentangle = None
  if void:
    _LOG.warning("disentanglement score not computed: feature block(s) %s have non-finite values", void)
    disentangle = {"error": f"feature block(s) {void} have non-finite values (NaN or inf)"}
  elif len(features) >= 2:
    try:
      disentangle = disentanglement.disentanglement_report(features)
    except ValueError as e:  # e.g. a block with no varying dimension: reported, not fatal
      _LOG.warning("disentanglement score not computed: %s", e)
      disentangle = {"error": str(e)}
  results = {
    "n_samples": int(n),
    "n_classes": int(classes.size),
    "k": k,
    "class_counts": {str(c): int(m) for c, m in zip(classes, counts)},
    "feature_set": feature_set if isinstance(feature_set, str) or feature_set is None else list(feature_set),
    "blocks": blocks,
    "dims": dims,
    "distinct_feature_rows": distinct,
    "method": method,
    "l2_normalize": bool(l2_normalize),
    "grouped": grouped,
    "accuracy": scores["wcp"],
    "f1": scores["weighted_f1"],
    "clustering": scores,
    "disentanglement": disentangle,
  }
  results.update(extra or {})
  if output_dir:
    if l2_normalize:
      x = clustering.l2_normalize_rows(x)
    results["outputs"] = _write_outputs(results, x, labels, predicted, group_ids, features, output_dir, name)
  return results


def _summary_table(results):
  scores = results["clustering"]
  rows = [
    {"metric": "cluster accuracy (WCP)", "value": scores["wcp"]},
    {"metric": "Hungarian accuracy", "value": scores["hungarian_accuracy"]},
    {"metric": "NMI", "value": scores["nmi"]},
    {"metric": "ARI", "value": scores["ari"]},
    {"metric": "pairwise F1", "value": scores["pairwise_f1"]},
    {"metric": "BCubed F1", "value": scores["bcubed_f1"]},
    {"metric": "weighted F1 (majority-mapped, released code)", "value": scores["weighted_f1"]},
  ]
  disentangle = results.get("disentanglement") or {}
  if "mean_pcc" in disentangle:
    rows.append({"metric": f"mean PCC ({', '.join(disentangle['names'])})", "value": disentangle["mean_pcc"]})
  return report.format_table(rows, [("metric", "Metric"), ("value", "Value")])


def _write_outputs(results, x, labels, predicted, group_ids, features, output_dir, name):
  filenames = output_filenames(name)
  # All names first: a foreign file among them stops evaluate before it writes anything.
  output_files.check_writable(output_dir, list(filenames.values()), OUTPUT_DIR_HINT)

  def write(key, writer):
    paths[key] = output_files.write_file(output_dir, filenames[key], writer, OUTPUT_DIR_HINT)

  paths = {}
  title = f"{name}: {'+'.join(results['blocks'])} features (PCA)"
  write("embedding_png", lambda path: plots.embedding_scatter(x, labels, path, title=title))
  write("confusion_png", lambda path: plots.confusion_matrix_plot(labels, predicted, path))
  disentangle = results.get("disentanglement") or {}
  if "matrix" in disentangle:
    write(
      "correlation_png",
      lambda path: plots.correlation_heatmap(
        disentangle["names"],
        np.asarray(disentangle["matrix"], dtype=np.float64),
        path,
        title=f"Mean |PCC| between features (mean {disentangle['mean_pcc']:.3f}, N={disentangle['n_samples']})",
      ),
    )
  elif output_files.remove_own(output_dir, filenames["correlation_png"], OUTPUT_DIR_HINT):
    _LOG.info("Removed the earlier run's %s: this run has no correlation matrix", filenames["correlation_png"])
  ids = group_ids if group_ids is not None else np.arange(labels.shape[0])

  def write_csv(path):
    with open(path, "x", newline="", encoding="utf-8") as f:
      writer = csv.writer(f)
      writer.writerow(["group_id" if group_ids is not None else "index", "label", "cluster"])
      for row in zip(ids, labels, predicted):
        writer.writerow([str(v) for v in row])

  write("assignments_csv", write_csv)
  results["outputs"] = dict(
    paths,
    json=os.path.join(output_dir, filenames["json"]),
    markdown=os.path.join(output_dir, filenames["markdown"]),
  )
  paths.update(
    report.write_report(results, output_dir, name, tables={"Clustering": _summary_table(results)}, hint=OUTPUT_DIR_HINT)
  )
  _LOG.info(
    "Wrote %s (JSON), %s (markdown), plots and cluster assignments in %s", paths["json"], paths["markdown"], output_dir
  )
  return paths


def _check_label_field(label_field):
  if label_field not in LABEL_FIELDS:
    raise ValueError(f"unknown evaluate.label_field {label_field!r}; expected one of {sorted(LABEL_FIELDS)}")


def _label_names(batch, label_field, keep):
  values = batch[label_field].numpy()[keep]
  names = LABEL_FIELDS[label_field]
  if names is None:
    raw = batch["label_name"].numpy()[keep]
    return [r.decode("utf-8") or str(v) for r, v in zip(raw, values)]
  return [names[v] if 0 <= v < len(names) else str(v) for v in values]


def embed_dataset(
  loaded,
  data_dir,
  split=formats.EVALUATION_SPLIT,
  label_field="label_id",
  batch_size=64,
  max_examples=None,
  derender_metrics_on=True,
  saved_model_dir="SavedModel",
  image_size=formats.IMAGE_SIZE,
  timings=None,
  derender_xla=True,
):
  """Runs an exported model over a split: features of labelled records and de-rendering metrics.

  Args:
      loaded: the object returned by `export.load_export` (needs the embed_images signature; de_render when a
          record has ground truth and derender_metrics_on).
      data_dir, split: a converted dataset and split (pdr_tf.data.input_pipeline).
      label_field: "label_id", "gender" or "race"; records with -1 there are not clustered.
      batch_size: records per signature call.
      max_examples: read at most this many records (labelled or not); None for all.
      derender_metrics_on: compute de-rendering metrics on records with gt/has = 1.
      saved_model_dir: path for error messages.
      image_size: model input side.
      timings: optional dict; gets the seconds spent in reading, "embed_images", "de_render" and scoring, and
          "de_render_path": how de_render ran ("xla" or "signature", `ExportedDeRender.mode`; evaluate moves it
          to the results).
      derender_xla: run de_render compiled with XLA where possible (`evaluation.exported_derender`).

  Returns:
      (features {name: [N, D]}, labels [N] str, track_ids [N] str, records_read, derender result or None; a
      scene the de-rendering metrics cannot score gives {"error": "<which records: why>"} instead of a result).
  """
  timings = {} if timings is None else timings
  for key in ("read_s", "embed_images_s", "de_render_s", "derender_scoring_s"):
    timings.setdefault(key, 0.0)
  clock = time.monotonic
  _check_label_field(label_field)
  total = input_pipeline.num_examples(data_dir, split)
  if max_examples is not None:
    total = min(total, int(max_examples))
  dataset = input_pipeline.make_dataset(data_dir, split, batch_size, training=False)
  embed = loaded.signatures["embed_images"]
  derender = derender_eval.DerenderScorer(image_size)
  de_render = None  # built at the first batch with ground truth
  chunks = {name: [] for name in FEATURE_NAMES}
  labels, tracks, read = [], [], 0
  derender_error = None  # a scene the metrics cannot score stops the de-rendering metrics, not the clustering
  with tqdm(total=total, desc=f"embedding + de-rendering {split}", unit="img", disable=None) as progress:
    batches, tick, logged = input_pipeline.checked(dataset, data_dir, split), clock(), 0
    for batch in batches:
      timings["read_s"] += clock() - tick
      take = batch["image"].shape[0] if max_examples is None else min(batch["image"].shape[0], int(max_examples) - read)
      if take <= 0:
        break
      batch = {key: value[:take] for key, value in batch.items()}
      read += take
      progress.update(take)
      if progress.disable and (read - logged >= LOG_EVERY_RECORDS or read >= total):  # no terminal: log lines
        _LOG.info("embedding + de-rendering %s: %d/%d records", split, read, total)
        logged = read
      images = np.clip(formats.model_to_unit(batch["image"].numpy()), 0.0, 1.0)
      keep = batch[label_field].numpy() >= 0
      if np.any(keep):
        tick = clock()
        out = embed(images=tf.constant(images[keep]))
        for name in FEATURE_NAMES:
          chunks[name].append(out[f"{name}_features"].numpy())
        timings["embed_images_s"] += clock() - tick
        labels += _label_names(batch, label_field, keep)
        tracks += [t.decode("utf-8") for t in batch["track_id"].numpy()[keep]]
      has_gt = batch["gt_has"].numpy() == 1
      if derender_metrics_on and derender_error is None and np.any(has_gt):
        if "de_render" not in loaded.signatures:
          raise ValueError(
            f"SavedModel {saved_model_dir} has no de_render signature but {data_dir} has "
            "ground truth; re-export it or set evaluate.derender_metrics = False"
          )
        tick = clock()
        if de_render is None:
          de_render = exported_derender.ExportedDeRender(loaded, batch_size, xla=derender_xla)
        scene = de_render(images[has_gt])
        timings["de_render_s"] += clock() - tick
        timings["de_render_path"] = de_render.mode
        tick = clock()
        try:
          derender.add(
            scene["recon_depth"],
            scene["mask"],
            scene["light"],
            scene["view"],
            batch["gt_depth"].numpy()[has_gt],
            batch["gt_light"].numpy()[has_gt],
            batch["gt_view"].numpy()[has_gt],
          )
        except ValueError as e:  # e.g. a predicted depth <= 0 inside the mask
          derender_error = f"records {read - take + 1}-{read}: {e}"
        timings["derender_scoring_s"] += clock() - tick
      tick = clock()
  if read < total and input_pipeline.skips_corrupt():  # asked for: what follows a corrupt record is left out
    _LOG.warning(
      "read %d of the %d %r records of %s (make_dataset.skip_corrupt): the scores cover those %d",
      read,
      total,
      split,
      data_dir,
      read,
    )
  elif read < total:  # an empty or cut shard reads as fewer records without an error: never cluster a silent subset
    raise input_pipeline.CorruptDataError(
      f"{data_dir}: read {read} {split!r} records, but its {feature_spec.MANIFEST_FILENAME} lists {total}: a shard "
      "is empty, cut short or was replaced since the conversion; convert the dataset again"
    )
  tick = clock()
  if derender_error is None:
    try:
      derender_result = derender.result()
    except ValueError as e:  # e.g. every evaluation mask empty
      derender_error = str(e)
  if derender_error is not None:
    _LOG.warning("de-rendering metrics not computed (the clustering goes on): %s", derender_error)
    derender_result = {"error": derender_error}
  timings["derender_scoring_s"] += clock() - tick
  features = {name: (np.concatenate(c) if c else np.zeros((0, 1), np.float32)) for name, c in chunks.items()}
  return features, np.asarray(labels, dtype=str), np.asarray(tracks, dtype=str), read, derender_result


@gin.configurable(module="pdr_tf", denylist=["write_config"])
def evaluate(
  saved_model_dir=None,
  data_dir=None,
  split=formats.EVALUATION_SPLIT,
  feature_set="depth_albedo",
  method="ward",
  l2_normalize=False,
  average_tracks=False,
  label_field="label_id",
  num_clusters=None,
  derender_metrics=True,
  output_dir=None,
  name="evaluation",
  batch_size=64,
  max_examples=None,
  seed=0,
  derender_xla=True,
  write_config=False,
):
  """Evaluates an exported model on a converted split and writes JSON, markdown and PNG plots.

  Args:
      saved_model_dir: SavedModel version folder (or export base folder: its highest version is used).
      data_dir: converted TFRecord folder (pdr_tf.data.feature_spec layout).
      split: split to evaluate.
      feature_set: "depth_albedo" (the paper's PDR; default), "all", "depth", "albedo", "light" or "view".
      method: "ward" (agglomerative, Ward linkage; default) or "kmeans".
      l2_normalize: unit-normalise each (concatenated, track-averaged) feature vector before clustering.
      average_tracks: average features per track/id (BBT) and cluster tracks.
      label_field: which label defines the classes: "label_id" (cars, BBT identities) or, for UTKFace, which
          has no identities, "gender" or "race".
      num_clusters: k; default the number of classes.
      derender_metrics: compute SIDE / MAD / light / view errors on records with ground truth.
      output_dir: where to write; default runs/eval/<name>. Other files may be there: evaluate replaces only its
          own earlier outputs (`output_filenames`) and stops, before it reads or writes anything, when the folder
          holds a file with one of their names that it did not write, or when output_dir is a file.
      name: base name of the output files.
      batch_size: images per signature call.
      max_examples: read at most this many records of the split.
      seed: KMeans seed.
      derender_xla: run de_render compiled with XLA where the platform allows (the SavedModel's check-free
          de_render_unchecked; `evaluation.exported_derender`), else through the de_render signature.
      write_config: also write `<name>_config.gin`, the operative gin config (the command line does; not a gin
          parameter).

  Returns:
      The results dict (see `evaluate_features`) plus config, records_read, n_images and derender (None without
      ground truth; {"error": "<records>: <reason>"} when a scene could not be scored).

  Raises:
      ValueError, FileNotFoundError: bad inputs.
      FileExistsError, NotADirectoryError: the output folder (see output_dir), before anything is written.
  """
  if not saved_model_dir:
    raise ValueError("evaluate: saved_model_dir is not set (bind evaluate.saved_model_dir in the gin file)")
  if not data_dir:
    raise ValueError("evaluate: data_dir is not set (bind evaluate.data_dir in the gin file)")
  _select_blocks(dict.fromkeys(FEATURE_NAMES), feature_set)
  _check_label_field(label_field)  # before the SavedModel is loaded (embed_dataset checks it for its own callers)
  if method not in clustering.METHODS:
    raise ValueError(f"unknown clustering method {method!r}; expected one of {clustering.METHODS}")
  batch_size = config_checks.integer("evaluate.batch_size", batch_size, minimum=1)
  if max_examples is not None:
    max_examples = config_checks.integer("evaluate.max_examples", max_examples, minimum=1)
  if num_clusters is not None:
    num_clusters = config_checks.integer("evaluate.num_clusters", num_clusters, minimum=2)
  output_dir = output_dir or os.path.join("runs", "eval", name)
  # Checked before the long embedding; checked again just before writing.
  output_files.check_writable(output_dir, list(output_filenames(name, config=write_config).values()), OUTPUT_DIR_HINT)
  config = {
    "saved_model_dir": saved_model_dir,
    "data_dir": data_dir,
    "split": split,
    "feature_set": feature_set,
    "method": method,
    "l2_normalize": l2_normalize,
    "average_tracks": average_tracks,
    "label_field": label_field,
    "num_clusters": num_clusters,
    "derender_metrics": derender_metrics,
    "batch_size": batch_size,
    "max_examples": max_examples,
    "seed": seed,
    "derender_xla": derender_xla,
  }
  timings = {}
  tick = time.monotonic()
  loaded, resolved = export.load_export(saved_model_dir, signatures=("embed_images",))
  timings["load_saved_model_s"] = time.monotonic() - tick
  config["saved_model_dir"] = resolved
  tick = time.monotonic()
  features, labels, tracks, read, derender = embed_dataset(
    loaded,
    data_dir,
    split,
    label_field=label_field,
    batch_size=batch_size,
    max_examples=max_examples,
    derender_metrics_on=derender_metrics,
    saved_model_dir=resolved,
    timings=timings,
    derender_xla=derender_xla,
  )
  timings["embed_and_de_render_s"] = time.monotonic() - tick
  _LOG.info(
    "embedded %d records in %.1f s (embed_images %.1f s, de_render %.1f s, scoring %.1f s, reading %.1f s)",
    read,
    timings["embed_and_de_render_s"],
    timings["embed_images_s"],
    timings["de_render_s"],
    timings["derender_scoring_s"],
    timings["read_s"],
  )
  if labels.size == 0:
    raise ValueError(
      f"no labelled records ({label_field} >= 0) among the {read} records of split {split!r} in "
      f"{data_dir}: nothing to cluster"
    )
  group_ids = None
  if average_tracks:
    if np.any(tracks == ""):
      raise ValueError(
        f"average_tracks is on but {int((tracks == '').sum())} labelled records of {data_dir} have no track/id"
      )
    group_ids = tracks
  _LOG.info(
    "clustering %d labelled images (%s features, %s, k = %s)",
    labels.size,
    feature_set,
    method,
    num_clusters or "number of classes",
  )
  extra = {
    "config": config,
    "records_read": int(read),
    "n_images": int(labels.size),
    "derender": derender,
    "de_render_path": timings.pop("de_render_path", None),
    "timings_s": timings,
  }
  tick = time.monotonic()
  results = evaluate_features(
    features,
    labels,
    group_ids=group_ids,
    feature_set=feature_set,
    method=method,
    l2_normalize=l2_normalize,
    num_clusters=num_clusters,
    seed=seed,
    output_dir=output_dir,
    name=name,
    extra=extra,
  )
  timings["cluster_and_report_s"] = time.monotonic() - tick
  timings["total_s"] = sum(v for k, v in timings.items() if k in _STAGES)
  if write_config:
    results["outputs"]["config_gin"] = output_files.write_text(
      output_dir, output_filenames(name, config=True)["config_gin"], gin.operative_config_str(), OUTPUT_DIR_HINT
    )
  # Written before the last stage's time (and the config file) was known: written again with them.
  report.write_report(results, output_dir, name, tables={"Clustering": _summary_table(results)}, hint=OUTPUT_DIR_HINT)
  _LOG.info(
    "stage times: load %.1f s, embed + de-render %.1f s, cluster + report %.1f s",
    timings["load_saved_model_s"],
    timings["embed_and_de_render_s"],
    timings["cluster_and_report_s"],
  )
  _LOG.info(
    "%s: accuracy (WCP) %.4f, F1 %.4f, NMI %.4f on %d %s",
    name,
    results["accuracy"],
    results["f1"],
    results["clustering"]["nmi"],
    results["n_samples"],
    "tracks" if average_tracks else "images",
  )
  return results


def make_parser() -> argparse.ArgumentParser:
  """This entry point's command line: `main` parses it; tests/test_doc_commands.py checks the docs against it."""
  parser = argparse.ArgumentParser(
    prog="python -m pdr_tf.evaluate",
    description=__doc__.splitlines()[0],
    epilog="Example: python -m pdr_tf.evaluate --gin_file=gin/eval_cars.gin "
    "--gin_param='evaluate.feature_set=\"all\"'. Metric definitions: docs/evaluation.md.",
  )
  parser.add_argument("--gin_file", action="append", default=[], help="gin file (repeatable)")
  parser.add_argument(
    "--gin_param",
    action="append",
    default=[],
    help="gin binding such as evaluate.method='kmeans' (repeatable; applied after the files)",
  )
  cli.add_log_level(parser)
  return parser


def main(argv=None):
  """Command line: parse gin files and bindings, run `evaluate`, log where the outputs are."""
  parser = make_parser()
  args = parser.parse_args(argv)
  cli.setup_logging(args.log_level)
  try:
    gin_config.parse(args.gin_file, args.gin_param)
  except gin_config.GinConfigError as e:
    _LOG.error("%s", cli.error_text(e))
    return 2
  try:
    results = evaluate(write_config=True)
  except (
    OSError,  # no such file, a file of the user's, a folder under a file, a read-only file system, a full disk
    ValueError,
    input_pipeline.CorruptDataError,
  ) as e:
    _LOG.error("evaluation failed: %s", cli.error_text(e))
    return 1
  _LOG.info("Done. Outputs: %s", ", ".join(results["outputs"].values()))
  return 0


if __name__ == "__main__":
  sys.exit(main())
