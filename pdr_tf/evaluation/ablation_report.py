"""The report of a LOOCC ablation: one row per variant, paired by seed against Unsup3D and the released LOOCC.

`pdr_tf.ablation` runs the variants and hands their per-seed summaries (`table1.per_seed_summary`) here;
`write_report` writes <output_dir>/ablation.md and ablation.json. Pure functions: no training, no TensorFlow.
"""

import json
from typing import Dict, List, Sequence

from pdr_tf.evaluation import derender_eval
from pdr_tf.evaluation import output_files
from pdr_tf.evaluation import report
from pdr_tf.evaluation import table1

COLUMNS = (
  ("variant", "Variant"),
  ("what", "What changes"),
  ("steps", "Steps"),
  ("accuracy", "Cluster accuracy"),
  ("f1", "F1"),
  ("delta", "Δ accuracy vs Unsup3D (mean ± std over paired seeds)"),
  ("delta_released", "Δ accuracy vs released LOOCC (paired)"),
  ("derender", table1.RATIOS_HEADER),
  ("mean_pcc", "Mean PCC"),
  ("runs", "Seeds (pairs)"),
)


def paired_deltas(runs: Sequence[dict], reference: Sequence[dict], key: str = "accuracy") -> List[float]:
  """runs[key] - reference[key] for every seed both have, in the runs' order."""
  return [float(got - base) for _, got, base in report.paired_values(runs, reference, key)]


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


def _deltas(runs, per_seed, name):
  reference = (per_seed.get(name) or []) if name else []
  return paired_deltas(runs, reference) if reference else []


def variant_rows(
  variants: Sequence[dict], per_seed: Dict[str, List[dict]], failed: Dict[str, str] = None
) -> List[dict]:
  """Rows in the variants' order.

  Args:
    variants: dicts with name, what, steps, reference (the Unsup3D variant of the same length it is compared with,
      None for a reference itself) and released (the released LOOCC variant of the same length, None for it and
      for the references).
    per_seed: variant name -> per-seed summaries (table1.per_seed_summary).
    failed: variant name -> why it stopped (its row says so); variants neither run nor failed are left out.
  """
  failed = failed or {}
  rows = []
  for variant in variants:
    runs = per_seed.get(variant["name"]) or []
    if not runs and variant["name"] not in failed:
      continue
    ratios = table1.mean_ratios(runs)
    deltas = _deltas(runs, per_seed, variant.get("reference"))
    deltas_released = _deltas(runs, per_seed, variant.get("released"))
    pcc = table1.pcc_values(runs)
    rows.append(
      {
        "variant": variant["name"],
        "what": variant["what"],
        "steps": variant.get("steps"),
        "failed": failed.get(variant["name"]),
        "accuracy": _cell([r["accuracy"] for r in runs]),
        "accuracy_per_seed": {r["seed"]: r["accuracy"] for r in runs},
        "f1": _cell([r["f1"] for r in runs if r.get("f1") is not None]),
        "delta": _cell(deltas),
        "delta_per_seed": deltas,
        "delta_released": _cell(deltas_released),
        "delta_released_per_seed": deltas_released,
        "derender_ratios": ratios or None,
        "derender": table1.format_ratios(ratios) if ratios else None,
        "de_renders": bool(ratios) and not derender_eval.ratios_above(ratios),
        "mean_pcc": _cell(pcc),
        "runs": len(runs),
        "pairs": len(deltas),
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
    f"this command's seeds {', '.join(str(s) for s in config.get('seeds', []))}; every finished run the variants' "
    "folders record is in the table (its Seeds column counts them).",
    "",
    "`released` is the suite's LOOCC method as released; every other LOOCC row changes one setting of it, and the "
    "`unsup3d` rows turn LOOCC off. Δ is a row's cluster accuracy minus that of the Unsup3D (or released LOOCC) run "
    "trained with the same seed and length, as mean ± std over the seeds both have. A de-renderer de-renders when "
    f"every ratio is at most {derender_eval.DERENDERS_AT} ((no) marks one that does not).",
  ]
  if config.get("earlier_variants"):
    lines += [
      "",
      "Rows of earlier commands into this folder (the same settings; this command did not run them): "
      + ", ".join(config["earlier_variants"])
      + ".",
    ]
  for name, why in (config.get("left_out") or {}).items():
    lines += ["", f"Left out: the runs of {name}, trained with other settings ({why})."]
  lines += [
    "",
    "| " + " | ".join(title for _, title in COLUMNS) + " |",
    "|" + "---|" * len(COLUMNS),
  ]
  for row in rows:
    derender = row["derender"] or "-"
    if row["derender"] and not row["de_renders"]:
      derender += " (no)"
    cells = {
      "variant": row["variant"],
      "what": row["what"] + (f" **failed: {row['failed']}**" if row.get("failed") else ""),
      "steps": "-" if row.get("steps") is None else f"{row['steps']:,}",
      "accuracy": _fmt(row["accuracy"]),
      "f1": _fmt(row["f1"]),
      "delta": _fmt(row["delta"], signed=True),
      "delta_released": _fmt(row["delta_released"], signed=True),
      "derender": derender,
      "mean_pcc": _fmt(row["mean_pcc"]),
      "runs": f"{row['runs']} ({row['pairs']})",
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


REPORT_FILES = {"markdown": "ablation.md", "json": "ablation.json"}


def check_report_writable(output_dir) -> None:
  """Checks, writing nothing, that the report files may be written into output_dir (`output_files.check_writable`):
  an ablation calls it before its first run, so that a file of the user's stops it before hours of training."""
  output_files.check_writable(output_dir, list(REPORT_FILES.values()), table1.OUTPUT_DIR_HINT)


def write_report(rows, features, config, output_dir) -> Dict[str, str]:
  """Writes ablation.md and ablation.json (rows, feature rows, config) to output_dir; returns their paths. Either
  replaces only its own earlier version (`output_files`): a file of the user's with one of the names stops it first."""
  names, hint = REPORT_FILES, table1.OUTPUT_DIR_HINT
  check_report_writable(output_dir)  # both, before writing either
  text = json.dumps(report.jsonable({"config": config, "rows": rows, "feature_sets": features}), indent=1)
  return {
    "markdown": output_files.write_text(output_dir, names["markdown"], format_markdown(rows, features, config), hint),
    "json": output_files.write_text(output_dir, names["json"], text, hint),
  }
