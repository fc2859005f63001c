"""Timing helpers shared by the benchmarks: medians after warm-up, and interleaved timing under shared load."""

import statistics
import time
from typing import Callable, Dict


def force(value):
  """Waits for a result: pulls every tensor in `value` to the host (GPU ops are asynchronous)."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel

  for t in tf.nest.flatten(value):
    if hasattr(t, "numpy"):
      t.numpy()


def time_call(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
  """Median wall time of `fn()` in seconds over `repeats` calls, after `warmup` untimed calls (tracing)."""
  for _ in range(warmup):
    force(fn())
  times = []
  for _ in range(max(1, repeats)):
    start = time.perf_counter()
    force(fn())
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def time_interleaved(fns: Dict[str, Callable[[], object]], repeats: int) -> Dict[str, Dict[str, float]]:
  """Times several callables in alternation (one warm-up each, then `repeats` rounds a, b, a, b, ...), so that a
  ratio between them is taken under the same machine load; returns {name: {"median": s, "min": s}}."""
  for fn in fns.values():
    force(fn())
  times = {name: [] for name in fns}
  for _ in range(max(1, repeats)):
    for name, fn in fns.items():
      start = time.perf_counter()
      force(fn())
      times[name].append(time.perf_counter() - start)
  return {name: {"median": statistics.median(t), "min": min(t)} for name, t in times.items()}


def ms(seconds) -> float:
  """Seconds to milliseconds, rounded to 0.01 ms."""
  return round(1000.0 * seconds, 2)
