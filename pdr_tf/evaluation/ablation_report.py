"""The report of a LOOCC ablation: one row per variant, paired against the Unsup3D reference of the same seeds.

`pdr_tf.ablation` runs the variants and hands their per-seed summaries (`table1.per_seed_summary`) here;
`write_report` writes <output_dir>/ablation.md and ablation.json. Pure functions: no training, no TensorFlow.
"""

import json
import os
from typing import Dict, List, Sequence

from pdr_tf.evaluation import derender_eval
from pdr_tf.evaluation import report
from pdr_tf.evaluation import table1

COLUMNS = (
  ("variant", "Variant"),
  ("what", "What changes"),
  ("accuracy", "Cluster accuracy"),
  ("delta", "Δ accuracy vs its Unsup3D (per seed)"),
  ("derender", table1.RATIOS_HEADER),
  ("mean_pcc", "Mean PCC"),
  ("runs", "Seeds"),
)


def paired_deltas(runs: Sequence[dict], reference: Sequence[dict], key: str = "accuracy") -> List[float]:
  """runs[key] - reference[key] for every seed both have, in the runs' order."""
  by_seed = {r["seed"]: r[key] for r in reference if r.get(key) is not None}
  return [float(r[key] - by_seed[r["seed"]]) for r in runs if r.get(key) is not None and r["seed"] in by_seed]


def _cell(values):
  if not values:
    return None
  return report.summarize(values)[0]


def _fmt(value, signed=False):
  if value is None:
    return "-"
  if isinstance(value, tuple):
    mean, std = value
    return f"{mean:+.3f} ± {std:.3f}" if signed else f"{mean:.3f} ± {std:.3f}"
  return f"{value:+.3f}" if signed else f"{value:.3f}"


def variant_rows(variants: Sequence[dict], per_seed: Dict[str, List[dict]]) -> List[dict]:
  """Rows in the variants' order.

  Args:
    variants: dicts with name, what and reference (the name of the Unsup3D variant it is compared with, or None
      for a reference itself).
    per_seed: variant name -> per-seed summaries (table1.per_seed_summary); variants without runs are left out.
  """
  rows = []
  for variant in variants:
    runs = per_seed.get(variant["name"]) or []
    if not runs:
      continue
    reference = (per_seed.get(variant["reference"]) or []) if variant.get("reference") else []
    ratios = table1.mean_ratios(runs)
    deltas = paired_deltas(runs, reference) if reference else []
    pcc = table1.pcc_values(runs)
    rows.append(
      {
        "variant": variant["name"],
        "what": variant["what"],
        "accuracy": _cell([r["accuracy"] for r in runs]),
        "accuracy_per_seed": {r["seed"]: r["accuracy"] for r in runs},
        "delta": _cell(deltas),
        "delta_per_seed": deltas,
        "derender_ratios": ratios or None,
        "derender": table1.format_ratios(ratios) if ratios else None,
        "de_renders": bool(ratios) and not derender_eval.ratios_above(ratios),
        "mean_pcc": _cell(pcc),
        "runs": len(runs),
      }
    )
  return rows


def feature_rows(per_feature_set: Dict[str, Dict[str, List[float]]]) -> List[dict]:
  """Rows of the feature-set comparison: variant -> feature set -> per-seed accuracies."""
  rows = []
  for variant, by_set in per_feature_set.items():
    for feature_set, values in by_set.items():
      rows.append({"variant": variant, "feature_set": feature_set, "accuracy": _cell(values), "runs": len(values)})
  return rows


def format_markdown(rows: Sequence[dict], features: Sequence[dict], config: dict) -> str:
  lines = [
    f"# LOOCC ablation, {config['suite']} suite",
    "",
    f"Command: `{config.get('command', '')}`",
    f"Machine: {config.get('machine', '')}; date {config.get('date', '')}; preset {config.get('preset')}; "
    f"seeds {', '.join(str(s) for s in config.get('seeds', []))}.",
    "",
    "Every variant is the suite's LOOCC method with one change; Δ is its cluster accuracy minus that of the Unsup3D "
    "run (LOOCC off) trained with the same seed and length. A de-renderer de-renders when every ratio is at most "
    f"{derender_eval.DERENDERS_AT}.",
    "",
    "| " + " | ".join(title for _, title in COLUMNS) + " |",
    "|" + "---|" * len(COLUMNS),
  ]
  for row in rows:
    cells = {
      "variant": row["variant"],
      "what": row["what"],
      "accuracy": _fmt(row["accuracy"]),
      "delta": _fmt(row["delta"], signed=True),
      "derender": (row["derender"] or "-") + ("" if row["de_renders"] or not row["derender"] else " (no)"),
      "mean_pcc": _fmt(row["mean_pcc"]),
      "runs": str(row["runs"]),
    }
    lines.append("| " + " | ".join(cells[key] for key, _ in COLUMNS) + " |")
  if features:
    lines += [
      "",
      "## Feature sets (the same trained models, clustered on other features)",
      "",
      "| Variant | Features | Cluster accuracy | Seeds |",
      "|---|---|---|---|",
    ]
    for row in features:
      lines.append(f"| {row['variant']} | {row['feature_set']} | {_fmt(row['accuracy'])} | {row['runs']} |")
  return "\n".join(lines) + "\n"


def write_report(rows, features, config, output_dir) -> Dict[str, str]:
  """Writes ablation.md and ablation.json (rows, feature rows, config) to output_dir; returns their paths."""
  os.makedirs(output_dir, exist_ok=True)
  paths = {"markdown": os.path.join(output_dir, "ablation.md"), "json": os.path.join(output_dir, "ablation.json")}
  with open(paths["markdown"], "w", encoding="utf-8") as f:
    f.write(format_markdown(rows, features, config))
  with open(paths["json"], "w", encoding="utf-8") as f:
    json.dump(report.jsonable({"config": config, "rows": rows, "feature_sets": features}), f, indent=1)
  return paths
