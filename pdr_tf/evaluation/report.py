"""Evaluation reports: JSON + markdown files, markdown tables, mean ± std, and the paper's Table 1 for comparison."""

import json
import math
import os

import numpy as np

from pdr_tf.evaluation import output_files

# The paper's Table 1 (cluster accuracy = weighted cluster purity, F1 = weighted F1 of majority-mapped clusters).
PAPER_TABLE1 = {
  "bbt": {
    "vq_vae": {"accuracy": 0.4168, "f1": 0.2796},
    "stylegan2": {"accuracy": 0.4261, "f1": 0.3528},
    "ris": {"accuracy": 0.4790, "f1": 0.4346},
    "unsup3d": {"accuracy": 0.5754, "f1": 0.4572},
    "loocc_light": {"accuracy": 0.6252, "f1": 0.6133},
    "loocc_light_view": {"accuracy": 0.6096, "f1": 0.5669},
  },
  "shapenet_cars": {
    "vq_vae": {"accuracy": 0.4915, "f1": 0.3696},
    "unsup3d": {"accuracy": 0.5100, "f1": 0.3877},
    "loocc_light": {"accuracy": 0.5270, "f1": 0.4016},
    "loocc_light_view": {"accuracy": 0.5485, "f1": 0.4995},
  },
}
DATASET_NAMES = {"bbt": "BBT", "shapenet_cars": "ShapeNet"}
# The de-renderers' method names (reproduce's runs, table 1's rows, the ablation's reference and variants).
UNSUP3D = "unsup3d"  # LOOCC off
LOOCC_LIGHT = "loocc_light"
LOOCC_LIGHT_VIEW = "loocc_light_view"
METHOD_NAMES = {
  "vq_vae": "VQ-VAE",
  "stylegan2": "StyleGAN2",
  "ris": "RIS",
  UNSUP3D: "Unsup3D",
  LOOCC_LIGHT: "Ours - Light Only",
  LOOCC_LIGHT_VIEW: "Ours - Light + View",
}
TABLE1_COLUMNS = (
  ("dataset", "Dataset"),
  ("method", "Method"),
  ("accuracy", "Accuracy"),
  ("paper_accuracy", "Paper accuracy"),
  ("f1", "F1"),
  ("paper_f1", "Paper F1"),
  ("runs", "Runs"),
)
MISSING = "-"


def mean_std(values, ddof=1):
  """Mean and standard deviation of repeated measurements (e.g. one per seed).

  Args:
      values: 1-D sequence of finite numbers, at least one.
      ddof: delta degrees of freedom of the std (1: sample std); a single value has std 0.

  Returns:
      (mean, std) floats.
  """
  values = np.asarray(values, dtype=np.float64)
  if values.ndim != 1 or values.size == 0:
    raise ValueError(f"values must be a non-empty 1-D sequence, got shape {values.shape}")
  if not np.all(np.isfinite(values)):
    raise ValueError("values has non-finite entries")
  std = float(values.std(ddof=ddof)) if values.size > ddof else 0.0
  return float(values.mean()), std


def format_mean_std(mean, std, float_fmt="{:.4f}"):
  """Formats a (mean, std) pair, e.g. "0.5485 ± 0.0123"."""
  return f"{float_fmt.format(mean)} ± {float_fmt.format(std)}"


def _cell(value, float_fmt):
  if value is None:
    return MISSING
  if isinstance(value, (bool, np.bool_)):
    return str(bool(value))
  if isinstance(value, (int, np.integer)):
    return str(int(value))
  if isinstance(value, (float, np.floating)):
    return float_fmt.format(float(value)) if math.isfinite(value) else str(float(value))
  if isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, (int, float, np.number)) for v in value):
    return format_mean_std(value[0], value[1], float_fmt)
  return str(value).replace("|", "\\|").replace("\n", " ")


def format_table(rows, columns, float_fmt="{:.4f}"):
  """A markdown table.

  Args:
      rows: list of dicts; a missing key or None shows as "-"; floats use float_fmt; a (mean, std) tuple shows as
          "mean ± std".
      columns: sequence of keys, or of (key, header) pairs.
      float_fmt: format for floats.

  Returns:
      The table as a str (header, separator, one line per row, trailing newline).
  """
  if not columns:
    raise ValueError("columns must name at least one column")
  pairs = [(c, c) if isinstance(c, str) else tuple(c) for c in columns]
  lines = ["| " + " | ".join(_cell(h, float_fmt) for _, h in pairs) + " |", "|" + "|".join("---" for _ in pairs) + "|"]
  for row in rows:
    lines.append("| " + " | ".join(_cell(row.get(k), float_fmt) for k, _ in pairs) + " |")
  return "\n".join(lines) + "\n"


def jsonable(value):
  """Converts numpy values, tuples and non-finite floats (to None) so json.dumps(allow_nan=False) accepts them."""
  if isinstance(value, dict):
    return {str(k): jsonable(v) for k, v in value.items()}
  if isinstance(value, (list, tuple, np.ndarray)):
    return [jsonable(v) for v in (value.tolist() if isinstance(value, np.ndarray) else value)]
  if isinstance(value, (bool, np.bool_)):
    return bool(value)
  if isinstance(value, (int, np.integer)):
    return int(value)
  if isinstance(value, (float, np.floating)):
    return float(value) if math.isfinite(value) else None
  if value is None or isinstance(value, str):
    return value
  return str(value)


def _flatten(results, prefix=""):
  for key, value in results.items():
    name = f"{prefix}{key}"
    if isinstance(value, dict):
      yield from _flatten(value, f"{name}/")
    elif isinstance(value, (list, np.ndarray)):
      yield name, json.dumps(jsonable(value))
    else:
      yield name, value


def write_report(results, output_dir, name, tables=None, hint=""):
  """Writes `<name>.json` (the results) and `<name>.md` (a key/value table, plus optional tables).

  Either file may replace only an earlier output of pdr_tf (`output_files`): a file of the user's with one of
  those names stops the write before anything is written.

  Args:
      results: dict of results; nested dicts become "a/b" keys in the markdown. Non-finite floats are written
          as JSON null.
      output_dir: folder to write into (created if needed).
      name: base file name, without folders or extension.
      tables: optional dict section title -> markdown str (e.g. from `format_table`), appended as sections.
      hint: how to choose another output folder, appended to the errors.

  Returns:
      {"json": path, "markdown": path}.

  Raises:
      ValueError: bad results or name.
      FileExistsError, NotADirectoryError: as `output_files.check_writable`, before anything is written.
  """
  if not isinstance(results, dict):
    raise ValueError(f"results must be a dict, got {type(results).__name__}")
  if not name or os.sep in name or (os.altsep and os.altsep in name):
    raise ValueError(f"name must be a plain file name, got {name!r}")
  filenames = {"json": f"{name}.json", "markdown": f"{name}.md"}
  output_files.check_writable(output_dir, list(filenames.values()), hint)
  text = json.dumps(jsonable(results), indent=2, allow_nan=False) + "\n"
  rows = [{"key": k, "value": v} for k, v in _flatten(results)]
  parts = [f"# {name}\n", format_table(rows, [("key", "Key"), ("value", "Value")])]
  for title, table in (tables or {}).items():
    parts += [f"\n## {title}\n", table]
  return {
    "json": output_files.write_text(output_dir, filenames["json"], text, hint),
    "markdown": output_files.write_text(output_dir, filenames["markdown"], "\n".join(parts), hint),
  }


def table1_measurement(reports):
  """Turns clustering reports (one per run, from `metrics.clustering_report`) into a Table 1 measurement.

  Returns:
      {"accuracy": [wcp per run], "f1": [weighted_f1 per run]}, the paper's two metrics.
  """
  if isinstance(reports, dict):
    reports = [reports]
  if not reports:
    raise ValueError("reports is empty")
  return {"accuracy": [r["wcp"] for r in reports], "f1": [r["weighted_f1"] for r in reports]}


def paired_values(runs, reference, key):
  """[(seed, run value, reference value)] for every seed both per-seed summary lists have `key` for, in the runs'
  order: comparisons of two methods pair their runs by seed, so that neither mean covers seeds the other lacks."""
  by_seed = {r["seed"]: r[key] for r in reference if r.get(key) is not None}
  return [(r["seed"], r[key], by_seed[r["seed"]]) for r in runs if r.get(key) is not None and r["seed"] in by_seed]


def summarize(value):
  """A float stays a float (one run); a sequence becomes (mean, std) or a float for a single run."""
  if isinstance(value, (int, float, np.number)):
    return float(value), 1
  values = list(value)
  if len(values) == 1:
    return float(values[0]), 1
  return mean_std(values), len(values)


def table1_rows(measured, include_unmeasured=True):
  """Rows that put measured numbers beside the paper's Table 1 (render with `format_table(rows, TABLE1_COLUMNS)`).

  Args:
      measured: dict dataset -> method -> {"accuracy": float or per-run sequence, "f1": same}; dataset and method
          keys as in PAPER_TABLE1 ("bbt", "shapenet_cars"; "unsup3d", "loocc_light", ...); other keys get rows
          with no paper numbers.
      include_unmeasured: also list the paper's rows with nothing measured (e.g. the VQ-VAE baseline).

  Returns:
      list of dicts with keys dataset, method (display names), accuracy, f1 (float, (mean, std) or None),
      paper_accuracy, paper_f1 (float or None) and runs (int or None).
  """
  datasets = list(PAPER_TABLE1) + [d for d in measured if d not in PAPER_TABLE1]
  rows = []
  for dataset in datasets:
    paper = PAPER_TABLE1.get(dataset, {})
    got = measured.get(dataset, {})
    for method in list(paper) + [m for m in got if m not in paper]:
      if method not in got and not include_unmeasured:
        continue
      row = {
        "dataset": DATASET_NAMES.get(dataset, dataset),
        "method": METHOD_NAMES.get(method, method),
        "paper_accuracy": paper.get(method, {}).get("accuracy"),
        "paper_f1": paper.get(method, {}).get("f1"),
        "accuracy": None,
        "f1": None,
        "runs": None,
      }
      if method in got:
        for key in ("accuracy", "f1"):
          if key not in got[method]:
            raise ValueError(f"measured[{dataset!r}][{method!r}] has no {key!r}")
          row[key], row["runs"] = summarize(got[method][key])
      rows.append(row)
  return rows
