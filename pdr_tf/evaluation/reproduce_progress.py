"""The progress file of a reproduction: which (method, seed) runs are finished, and how long the rest should take.

`pdr_tf.reproduce` keeps <output_dir>/<suite>/progress.json. Each finished run is recorded with its per-seed summary,
so that a re-run of the same command (after a kill, say) skips it; the file also names the run in progress and an
estimate of the time left, from the times of the runs finished so far. The file records the settings that change
a run's result (`SETTINGS_KEYS`); a folder whose file records other settings is refused rather than mixed, because
its de-renderers would resume from checkpoints trained under those settings.

The file is replaced atomically (written beside it, then renamed), so a kill never leaves half of it.
"""

import datetime
import json
import os
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from pdr_tf.evaluation import report

VERSION = 1
# The run settings a finished run's result depends on (keys of reproduce's config); methods and seeds are not among
# them, so a later command with more seeds or methods extends the same folder.
SETTINGS_KEYS = (
  "suite",
  "preset",
  "gin_files",
  "gin_params",
  "train_steps",
  "train_data_dir",
  "eval_data_dir",
  "vqvae_steps",
  "pca_components",
  "pca_max_images",
  "gin_digest",  # the contents of every gin file the de-renderers read (gin_config.stack_digest)
)


def run_key(method: str, seed: int) -> str:
  return f"{method}/seed{int(seed)}"


def split_run_key(key: str) -> Tuple[str, int]:
  """The (method, seed) of a `run_key`; ValueError for anything else."""
  method, sep, seed = key.rpartition("/seed")
  if not (method and sep and seed.isdigit()):
    raise ValueError(f"{key!r} is not a run key (<method>/seed<k>)")
  return method, int(seed)


def settings_of(config: Dict) -> Dict:
  """The part of a reproduction's config that a run's result depends on."""
  return {key: config.get(key) for key in SETTINGS_KEYS}


def _difference(key, there, now) -> str:
  """'key: <there> there, <now> now'; for two dicts only the entries that differ ('key[name] changed')."""
  if isinstance(there, dict) and isinstance(now, dict):
    names = sorted(set(there) | set(now), key=str)
    return "; ".join(f"{key}[{name}] changed" for name in names if there.get(name) != now.get(name))
  return f"{key}: {there!r} there, {now!r} now"


def _now() -> str:
  return datetime.datetime.now().isoformat(timespec="seconds")


class Progress:
  """The progress file of one suite folder (see the module docstring).

  Args:
    path: the file (<output_dir>/<suite>/progress.json).
    settings: `settings_of(config)` of this command.
    jobs: the (method, seed) runs this command will make, in order.
    groups: method -> group for the time estimate (e.g. every de-renderer in one); a method with no finished run
      is estimated at its group's mean, then at the mean of every finished run. Default: each method its own.
    accept: settings key -> predicate on a recorded value that differs from this command's but records the same
      settings in an older form (e.g. an older digest format); an accepted value is replaced by the current one at
      once, when the file is read.

  Raises:
    ValueError: the file exists but is not a progress file of this version, or it records other settings.
  """

  def __init__(
    self,
    path: str,
    settings: Dict,
    jobs: Sequence[Tuple[str, int]],
    groups: Optional[Dict[str, str]] = None,
    accept: Optional[Dict[str, Callable[[object], bool]]] = None,
  ):
    self.path = path
    self.accept = dict(accept or {})
    self.groups = dict(groups or {})
    self.settings = report.jsonable(settings)  # as it reads back from the file (tuples become lists)
    self.jobs = [(m, int(s)) for m, s in jobs]
    self.runs: Dict[str, Dict] = {}
    self.running: Optional[Dict] = None
    if os.path.exists(path):
      self._load()

  def _load(self) -> None:
    try:
      with open(self.path, encoding="utf-8") as f:
        data = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
      raise ValueError(
        f"{self.path} is not a readable progress file ({e}). Rename it to start the record anew: the finished runs "
        "are then run again, and interrupted de-renderers resume from their checkpoints"
      ) from e
    if not isinstance(data, dict) or data.get("version") != VERSION or not isinstance(data.get("runs"), dict):
      raise ValueError(f"{self.path} is not a version-{VERSION} progress file of pdr_tf.reproduce")
    for key, entry in data["runs"].items():
      try:
        split_run_key(key)
      except ValueError as e:
        raise ValueError(f"{self.path}: {e}") from e
      if not isinstance(entry, dict) or not isinstance(entry.get("summary"), dict):
        raise ValueError(f"{self.path}: run {key!r} has no per-seed summary")
    recorded = data.get("settings") or {}
    differ = sorted(
      key
      for key in SETTINGS_KEYS
      if recorded.get(key) != self.settings.get(key)
      and not (key in self.accept and self.accept[key](recorded.get(key)))
    )
    if differ:
      detail = "; ".join(_difference(key, recorded.get(key), self.settings.get(key)) for key in differ)
      raise ValueError(
        f"{self.path} records runs made with other settings ({detail}); its de-renderers would resume from "
        "those runs' checkpoints. Use another --output_dir."
      )
    self.runs = data["runs"]
    if any(recorded.get(key) != self.settings.get(key) for key in SETTINGS_KEYS):  # an older form, accepted
      self._write()  # recorded in the current form from now on

  def finished(self, method: str, seed: int) -> Optional[Dict]:
    """The recorded per-seed summary of a finished run, or None."""
    entry = self.runs.get(run_key(method, seed))
    return entry["summary"] if entry else None

  def recorded(self, methods: Sequence[str]) -> Dict[str, List[Dict]]:
    """Every finished run of `methods` in the file, this command's and earlier commands' (the file's settings are
    this command's, so they are comparable): method -> summaries in seed order, in `methods` order, methods without
    a finished run left out."""
    by_method: Dict[str, List[Tuple[int, Dict]]] = {}
    for key, entry in self.runs.items():
      method, seed = split_run_key(key)
      if method in methods:
        by_method.setdefault(method, []).append((seed, entry["summary"]))
    return {m: [summary for _, summary in sorted(by_method[m], key=lambda x: x[0])] for m in methods if m in by_method}

  def start(self, method: str, seed: int) -> None:
    self.running = {"method": method, "seed": int(seed), "started": _now()}
    self._write()

  def record(self, method: str, seed: int, summary: Dict) -> None:
    """Records a finished run (its summary must hold "seconds") and rewrites the file."""
    self.runs[run_key(method, seed)] = {"summary": report.jsonable(summary), "finished": _now()}
    self.running = None
    self._write()

  def counts(self) -> Tuple[int, int]:
    """(runs of this command finished, runs of this command in all)."""
    return sum(self.finished(m, s) is not None for m, s in self.jobs), len(self.jobs)

  def seconds_left(self) -> Optional[float]:
    """A rough estimate of the seconds this command's unfinished runs need: each at the mean time of the finished
    runs of its method, else of its group, else of all finished runs. Runs resumed from a checkpoint (summary
    "resumed") are left out, since their time covers only what was left. None before any run counts."""
    by_method: Dict[str, list] = {}
    for key, entry in self.runs.items():
      if not entry["summary"].get("resumed"):
        by_method.setdefault(key.split("/")[0], []).append(float(entry["summary"]["seconds"]))
    if not by_method:
      return None
    by_group: Dict[str, list] = {}
    for method, times in by_method.items():
      by_group.setdefault(self.groups.get(method, method), []).extend(times)
    overall = float(np.mean([t for ts in by_method.values() for t in ts]))

    def estimate(method):
      if method in by_method:
        return float(np.mean(by_method[method]))
      group = self.groups.get(method, method)
      return float(np.mean(by_group[group])) if group in by_group else overall

    return float(sum(estimate(m) for m, s in self.jobs if self.finished(m, s) is None))

  def _write(self) -> None:
    done, total = self.counts()
    data = {
      "version": VERSION,
      "settings": self.settings,
      "updated": _now(),
      "finished": done,
      "total": total,
      "running": self.running,
      "estimated_seconds_left": self.seconds_left(),
      "runs": self.runs,
    }
    os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
    tmp = f"{self.path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
      json.dump(data, f, indent=1, allow_nan=False)
      f.write("\n")
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, self.path)
