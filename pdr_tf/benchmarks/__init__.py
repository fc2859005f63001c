"""Benchmarks of pdr_tf: throughput measurements that print a table and write JSON (not timed tests)."""
