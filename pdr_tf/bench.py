"""python -m pdr_tf.bench: the benchmark suite (`pdr_tf.benchmarks.suite`; also `python -m pdr_tf.benchmarks`)."""

import sys

from pdr_tf.benchmarks.suite import main

if __name__ == "__main__":
  sys.exit(main())
