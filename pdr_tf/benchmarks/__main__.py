"""python -m pdr_tf.benchmarks: the benchmark suite (`pdr_tf.benchmarks.suite`), the same as python -m pdr_tf.bench."""

import sys

from pdr_tf.benchmarks.suite import main

if __name__ == "__main__":
  sys.exit(main())
