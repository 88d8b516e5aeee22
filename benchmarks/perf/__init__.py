"""`make bench` (issue 15): one module per benchmark, each with `run(quick=False) -> list[dict]` of rows
(common.Row's keys), collected and tabled by `python -m benchmarks.perf.run`."""
