"""The Table 1 report of a reproduction: per-seed summaries, the table beside the paper's numbers, and its files.

`pdr_tf.reproduce` runs the methods and hands their results here; `write_table` writes <output_dir>/table1.md and
table1.json. A suite is anything with `name`, `dataset` (a `report.PAPER_TABLE1` key) and `average_tracks`.
"""

import json
import os

import numpy as np

from pdr_tf.evaluation import report


def per_seed_summary(results):
  scores = results["clustering"]
  disentangle = results.get("disentanglement") or {}
  out = {
    "seed": results["seed"],
    "accuracy": float(results["accuracy"]),
    "f1": float(results["f1"]),
    "hungarian_accuracy": scores.get("hungarian_accuracy"),
    "nmi": scores.get("nmi"),
    "ari": scores.get("ari"),
    "pairwise_f1": scores.get("pairwise_f1"),
    "bcubed_f1": scores.get("bcubed_f1"),
    "n_samples": results["n_samples"],
    "mean_pcc": disentangle.get("mean_pcc"),
    "train_steps": results.get("train_steps"),
    "seconds": results["seconds"],
    "workdir": results["workdir"],
  }
  derender = results.get("derender")
  if derender:
    out["side"], out["mad_deg"] = derender.get("side"), derender.get("mad_deg")
  return out


def table_rows(suite, measured: dict):
  """Table 1 rows of one suite: measured methods (mean ± std over seeds) beside the paper's numbers.

  Args:
    suite: the suite.
    measured: method -> {"accuracy": [per seed], "f1": [per seed]}.

  Returns:
    list of row dicts for `report.format_table(rows, report.TABLE1_COLUMNS)`.
  """
  rows = report.table1_rows({suite.dataset: measured})
  shown = report.DATASET_NAMES.get(suite.dataset, suite.dataset)
  return [r for r in rows if r["dataset"] == shown]


def _comparison(measured):
  """One honest sentence per LOOCC variant: does it beat Unsup3D on mean accuracy and F1 here?"""
  lines = []
  if "unsup3d" not in measured:
    return lines
  base = {k: float(np.mean(measured["unsup3d"][k])) for k in ("accuracy", "f1")}
  for method in ("loocc_light", "loocc_light_view"):
    if method in measured:
      got = {k: float(np.mean(measured[method][k])) for k in ("accuracy", "f1")}
      verdict = {k: "beats" if got[k] > base[k] else "does not beat" for k in got}
      lines.append(
        f"- {report.METHOD_NAMES[method]} {verdict['accuracy']} Unsup3D on accuracy "
        f"({got['accuracy']:.4f} vs {base['accuracy']:.4f}) and {verdict['f1']} it on F1 "
        f"({got['f1']:.4f} vs {base['f1']:.4f})."
      )
  return lines


def write_table(suite, per_seed: dict, config: dict, output_dir: str):
  """Writes <output_dir>/table1.md and table1.json and returns (paths, markdown table).

  Args:
    suite: the suite.
    per_seed: method -> list of per-seed summaries (each with accuracy, f1 and the other metrics).
    config: the run's settings (written into both files).
    output_dir: the suite's output folder.
  """
  measured = {
    m: {"accuracy": [r["accuracy"] for r in runs], "f1": [r["f1"] for r in runs]}
    for m, runs in per_seed.items()
    if runs
  }
  rows = table_rows(suite, measured)
  table = report.format_table(rows, report.TABLE1_COLUMNS)
  seed_rows = [dict(r, method=m) for m, runs in per_seed.items() for r in runs]
  seed_table = report.format_table(
    seed_rows,
    [
      ("method", "Method"),
      ("seed", "Seed"),
      ("accuracy", "Accuracy (WCP)"),
      ("f1", "F1"),
      ("hungarian_accuracy", "Hungarian acc."),
      ("nmi", "NMI"),
      ("ari", "ARI"),
      ("bcubed_f1", "BCubed F1"),
      ("mean_pcc", "Mean PCC"),
      ("side", "SIDE"),
      ("mad_deg", "MAD (deg)"),
      ("train_steps", "Steps"),
      ("seconds", "Seconds"),
    ],
  )
  comparison = _comparison(measured)
  os.makedirs(output_dir, exist_ok=True)
  paths = {"markdown": os.path.join(output_dir, "table1.md"), "json": os.path.join(output_dir, "table1.json")}
  with open(paths["json"], "w", encoding="utf-8") as f:
    json.dump(
      report.jsonable(
        {
          "suite": suite.name,
          "dataset": suite.dataset,
          "config": config,
          "table": rows,
          "measured": measured,
          "per_seed": per_seed,
          "paper": report.PAPER_TABLE1[suite.dataset],
          "comparison": comparison,
        }
      ),
      f,
      indent=2,
      allow_nan=False,
    )
    f.write("\n")
  parts = [
    f"# Table 1 reproduction: {suite.name} suite ({report.DATASET_NAMES[suite.dataset]})\n",
    f"Command: `{config['command']}`  \nMachine: {config['machine']}  \nDate: {config['date']}  \n"
    f"Seeds: {config['seeds']}; quick: {config['quick']}; accuracy = weighted cluster purity (WCP), "
    "F1 = weighted F1 of majority-mapped clusters (released code); Ward clustering, k = number of classes"
    f"{', features averaged per track' if suite.average_tracks else ''}; de-renderers use depth + albedo "
    "features. Measured numbers on this project's data are not comparable one-to-one with the paper's "
    "(different data, model sizes and training length).\n",
    table,
    "\n## LOOCC against Unsup3D\n",
    "\n".join(comparison) or "(Unsup3D or LOOCC not run)",
    "\n",
    "\n## Per seed\n",
    seed_table,
  ]
  with open(paths["markdown"], "w", encoding="utf-8") as f:
    f.write("\n".join(parts))
  return paths, table
