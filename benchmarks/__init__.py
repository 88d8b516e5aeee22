"""Benchmarks: `benchmarks.perf` is `make bench` (issue 15); the scripts beside it are run one by one."""
