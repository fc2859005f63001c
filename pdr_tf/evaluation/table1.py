"""The Table 1 report of a reproduction: per-seed summaries, the table beside the paper's numbers, and its files.

`pdr_tf.reproduce` runs the methods and hands their results here; `write_table` writes <output_dir>/table1.md and
table1.json. A suite is anything with `name`, `dataset` (a `report.PAPER_TABLE1` key) and `average_tracks`.
"""

import json

import numpy as np

from pdr_tf.evaluation import derender_eval
from pdr_tf.evaluation import output_files
from pdr_tf.evaluation import report

# Where an error about a file in the way points (table1.md / table1.json replace only their own earlier versions).
OUTPUT_DIR_HINT = "choose another --output_dir"

RATIO_NAMES = tuple(derender_eval.RATIO_KEYS)  # view, light, normals, depth
RATIOS_HEADER = "De-rendering, model / trivial: " + " / ".join(RATIO_NAMES)
TABLE_COLUMNS = tuple(report.TABLE1_COLUMNS) + (("derender", RATIOS_HEADER), ("mean_pcc", "Mean PCC"))


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
    "resumed": bool(results.get("resumed", False)),
    "workdir": results["workdir"],
  }
  derender = results.get("derender")
  if derender and "error" not in derender:  # a de-rendering that could not be scored has no ratios
    out["side"] = derender["side"]["model"]
    out["mad_deg"] = derender["normals_mad_deg"]["model"]
    out["derender_ratios"] = {name: derender["ratios"][name] for name in RATIO_NAMES}
  return out


def format_ratios(ratios) -> str:
  """'0.50 / 1.00 / 0.91 / 0.91' in RATIO_NAMES order ('-' for a missing one)."""
  return " / ".join("-" if ratios.get(n) is None else f"{ratios[n]:.2f}" for n in RATIO_NAMES)


def summary_line(summary) -> str:
  """One log line of a per-seed summary: clustering, and the de-rendering ratios and mean PCC where measured."""
  parts = [f"accuracy {summary['accuracy']:.4f}, F1 {summary['f1']:.4f}"]
  if summary.get("derender_ratios"):
    parts.append(f"de-rendering {format_ratios(summary['derender_ratios'])} ({' / '.join(RATIO_NAMES)}, model/trivial)")
  if summary.get("mean_pcc") is not None:
    parts.append(f"mean PCC {summary['mean_pcc']:.3f}")
  return "; ".join(parts)


def mean_ratios(runs):
  """Per ratio name, the mean over the runs that measured it (a finite value); {} when none did."""
  measured = [r["derender_ratios"] for r in runs if r.get("derender_ratios")]
  means = {}
  for name in RATIO_NAMES:
    values = [m[name] for m in measured if m.get(name) is not None and np.isfinite(m[name])]
    if values:
      means[name] = float(np.mean(values))
  return means


def pcc_values(runs):
  return [r["mean_pcc"] for r in runs if r.get("mean_pcc") is not None]


def table_rows(suite, measured: dict, per_seed: dict = None):
  """Table 1 rows of one suite: measured methods (mean ± std over seeds) beside the paper's numbers.

  Args:
    suite: the suite.
    measured: method -> {"accuracy": [per seed], "f1": [per seed]}.
    per_seed: method -> per-seed summaries; their de-rendering ratios (mean over seeds) and mean PCC (mean ± std)
      go into the method's row.

  Returns:
    list of row dicts for `report.format_table(rows, TABLE_COLUMNS)`.
  """
  rows = report.table1_rows({suite.dataset: measured})
  shown = report.DATASET_NAMES.get(suite.dataset, suite.dataset)
  rows = [r for r in rows if r["dataset"] == shown]
  by_name = {report.METHOD_NAMES.get(m, m): runs for m, runs in (per_seed or {}).items() if runs}
  for row in rows:
    runs = by_name.get(row["method"])
    if runs:
      ratios = mean_ratios(runs)
      row["derender_ratios"] = ratios or None
      row["derender"] = format_ratios(ratios) if ratios else None
      pcc = pcc_values(runs)
      row["mean_pcc"] = report.summarize(pcc)[0] if pcc else None
  return rows


def _derendering(per_seed):
  """One sentence per de-renderer: does it de-render (every mean ratio <= DERENDERS_AT)?"""
  lines = []
  for method, runs in per_seed.items():
    ratios = mean_ratios(runs)
    if not ratios:
      continue
    name = report.METHOD_NAMES.get(method, method)
    above = derender_eval.ratios_above(ratios)
    if above:
      shown = ", ".join(f"{n} {'-' if v is None else f'{v:.2f}x'}" for n, v in above.items())
      lines.append(
        f"- {name} does not de-render: {shown} the trivial predictors' error (bound "
        f"{derender_eval.DERENDERS_AT}x). Its clustering numbers rest on features of a model that has not learnt "
        "the scene."
      )
    else:
      lines.append(f"- {name} de-renders: {format_ratios(ratios)} ({' / '.join(RATIO_NAMES)}, model / trivial).")
  return lines


def _seeds(pairs):
  return ", ".join(str(seed) for seed, _, _ in pairs)


def _pcc_comparison(per_seed):
  """One sentence per LOOCC variant on mean PCC (lower: less correlated, more disentangled features), over the
  seeds it shares with Unsup3D."""
  lines = []
  for method in (report.LOOCC_LIGHT, report.LOOCC_LIGHT_VIEW):
    pairs = report.paired_values(per_seed.get(method) or [], per_seed.get(report.UNSUP3D) or [], "mean_pcc")
    if not pairs:
      continue
    got, base = (float(np.mean([p[i] for p in pairs])) for i in (1, 2))
    change = (got - base) / base if base else float("nan")
    lines.append(
      f"- {report.METHOD_NAMES[method]}: mean PCC {got:.3f} against Unsup3D's {base:.3f} ({change:+.0%}; the "
      f"paper: 0.26 -> 0.18, -31 %), over seed{'s' if len(pairs) > 1 else ''} {_seeds(pairs)}."
    )
  return lines


def _comparison(per_seed):
  """One honest sentence per LOOCC variant: does it beat Unsup3D on mean accuracy and F1 here, over the seeds both
  ran (each seed's pair compared, so that neither mean covers seeds the other lacks)?"""
  lines = []
  reference = per_seed.get(report.UNSUP3D) or []
  for method in (report.LOOCC_LIGHT, report.LOOCC_LIGHT_VIEW):
    runs = per_seed.get(method) or []
    if not runs or not reference:
      continue
    pairs = {k: report.paired_values(runs, reference, k) for k in ("accuracy", "f1")}
    if not pairs["accuracy"]:
      lines.append(f"- {report.METHOD_NAMES[method]} shares no seed with Unsup3D: not compared.")
      continue
    parts = []
    for key, label, whom in (("accuracy", "accuracy", "Unsup3D"), ("f1", "F1", "it")):
      got, base = (float(np.mean([p[i] for p in pairs[key]])) for i in (1, 2))
      wins = sum(p[1] > p[2] for p in pairs[key])
      verdict = "beats" if got > base else "does not beat"
      parts.append(f"{verdict} {whom} on {label} ({got:.4f} vs {base:.4f}; ahead in {wins} of {len(pairs[key])} seeds)")
    lines.append(
      f"- {report.METHOD_NAMES[method]} {parts[0]} and {parts[1]}, over "
      f"seed{'s' if len(pairs['accuracy']) > 1 else ''} {_seeds(pairs['accuracy'])}."
    )
  return lines


def _model_value(value):
  """A per-seed metric as the table shows it: summaries recorded before 2026-12-05 kept SIDE as derender_eval's
  whole {"model", "trivial", ...} dict; the model's value is the one meant."""
  return value.get("model") if isinstance(value, dict) else value


TABLE_FILES = {"markdown": "table1.md", "json": "table1.json"}


def check_table_writable(output_dir: str) -> None:
  """Checks, writing nothing, that the table files may be written into `output_dir` (`output_files.check_writable`:
  NotADirectoryError for a file in its place, FileExistsError for files of those names that pdr_tf did not write)."""
  output_files.check_writable(output_dir, list(TABLE_FILES.values()), OUTPUT_DIR_HINT)


def write_table(suite, per_seed: dict, config: dict, output_dir: str):
  """Writes <output_dir>/table1.md and table1.json and returns (paths, markdown table).

  Args:
    suite: the suite.
    per_seed: method -> list of per-seed summaries (each with accuracy, f1 and the other metrics): the runs the
      table holds, which may include earlier commands' runs of the same folder.
    config: the run's settings (written into both files).
    output_dir: the suite's output folder.
  """
  measured = {
    m: {"accuracy": [r["accuracy"] for r in runs], "f1": [r["f1"] for r in runs]}
    for m, runs in per_seed.items()
    if runs
  }
  rows = table_rows(suite, measured, per_seed)
  table = report.format_table(rows, TABLE_COLUMNS)
  seed_rows = [
    dict(
      r,
      method=m,
      derender=format_ratios(r["derender_ratios"]) if r.get("derender_ratios") else None,
      side=_model_value(r.get("side")),
      seconds=None if r.get("seconds") is None else f"{r['seconds']:.0f}",
    )
    for m, runs in per_seed.items()
    for r in runs
  ]
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
      ("derender", RATIOS_HEADER),
      ("mean_pcc", "Mean PCC"),
      ("side", "SIDE"),
      ("mad_deg", "MAD (deg)"),
      ("train_steps", "Steps"),
      ("seconds", "Seconds"),
    ],
  )
  comparison = _comparison(per_seed) + _pcc_comparison(per_seed)
  derendering = _derendering(per_seed)
  check_table_writable(output_dir)  # both, before writing either
  text = json.dumps(
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
        "derendering": derendering,
      }
    ),
    indent=2,
    allow_nan=False,
  )
  paths = {"json": output_files.write_text(output_dir, TABLE_FILES["json"], text + "\n", OUTPUT_DIR_HINT)}
  parts = [
    f"# Table 1 reproduction: {suite.name} suite ({report.DATASET_NAMES[suite.dataset]})\n",
    f"Command: `{config['command']}`  \nMachine: {config['machine']}  \nDate: {config['date']}  \n"
    f"Seeds in the table: {sorted({r['seed'] for runs in per_seed.values() for r in runs})} (every finished run "
    f"the folder records; this command's: {config['seeds']}); preset: {config.get('preset', 'none')}; "
    "accuracy = weighted cluster purity (WCP), "
    "F1 = weighted F1 of majority-mapped clusters (released code); Ward clustering, k = number of classes"
    f"{', features averaged per track' if suite.average_tracks else ''}; de-renderers use depth + albedo "
    "features. Measured numbers on this project's data are not comparable one-to-one with the paper's "
    "(different data, model sizes and training length).\n",
    table,
    "\n## Does each de-renderer de-render?\n",
    f"On the evaluation split's ground truth, each error against the same error of a predictor that ignores the "
    f"image (best constant view, best constant light direction, flat depth); a model de-renders when every ratio is "
    f"at or below {derender_eval.DERENDERS_AT}.\n",
    "\n".join(derendering) or "(no de-renderer with ground truth in this table)",
    "\n",
    "\n## LOOCC against Unsup3D\n",
    "\n".join(comparison) or "(Unsup3D or LOOCC not run)",
    "\n",
    "\n## Per seed\n",
    seed_table,
  ]
  paths["markdown"] = output_files.write_text(output_dir, TABLE_FILES["markdown"], "\n".join(parts), OUTPUT_DIR_HINT)
  return paths, table
