"""Diagnostic: do folder locks always name their holder when processes race for them?

python scripts/diagnostics/lock_stress.py [TRIALS] [PROCESSES]

In each of TRIALS (100) trials, PROCESSES (4) processes released together by a barrier try to take the same
`pdr_tf.data.locks.FolderLock`; the winner holds it for 50 ms. Every refusal should name the holder ("in use by pid
..."); a refusal that reads the lock file before its owner is written says "an unknown process". Prints how many of
the refusals named no holder, and the wins (one per trial, unless a process starts after the winner let go).
"""

import multiprocessing
import os
import shutil
import sys
import tempfile
import time

from pdr_tf.data import locks


def _try(path, barrier, results):
  barrier.wait()
  try:
    with locks.FolderLock(path, "stress"):
      time.sleep(0.05)
      results.put("won")
  except locks.LockHeldError as e:
    results.put("named" if "in use by pid" in str(e) else "unnamed")


def main(trials=100, processes=4):
  counts = {"won": 0, "named": 0, "unnamed": 0}
  for _ in range(trials):
    folder = tempfile.mkdtemp()
    try:
      results, barrier = multiprocessing.Queue(), multiprocessing.Barrier(processes)
      workers = [
        multiprocessing.Process(target=_try, args=(os.path.join(folder, ".lock"), barrier, results))
        for _ in range(processes)
      ]
      for worker in workers:
        worker.start()
      for worker in workers:
        worker.join()
      for _ in workers:
        counts[results.get()] += 1
    finally:
      shutil.rmtree(folder, ignore_errors=True)
  refusals = counts["named"] + counts["unnamed"]
  print(
    f"{trials} trials x {processes} processes: {counts['won']} wins, {refusals} refusals, of which "
    f"{counts['unnamed']} named no holder"
  )
  return counts


if __name__ == "__main__":
  main(*(int(a) for a in sys.argv[1:3]))
