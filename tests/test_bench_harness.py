"""`make bench`'s harness (benchmarks/perf): targets, side-by-side timing, the table, and a module that is missing
or broken becoming a row instead of stopping the run."""

from __future__ import annotations

import json
import math
import sys
import types

import pytest

from benchmarks.perf import run as bench_run
from benchmarks.perf.common import ROW_KEYS, meets, ratio_row, side_by_side


@pytest.mark.parametrize("ratio, target, met", [
    (3.2, ">= 3.0", True), (2.9, ">= 3.0", False), (0.04, "<= 0.05", True), (0.06, "<= 0.05", False),
    (1.0, "> 1", False), (1.1, "< 1.2", True), (5.0, "", None),
])
def test_meets(ratio, target, met):
    assert meets(ratio, target) is met


def test_meets_rejects_an_unknown_target():
    with pytest.raises(ValueError, match="not of the form"):
        meets(1.0, "about 3")


def test_side_by_side_alternates():
    calls: list[str] = []
    a_times, b_times = side_by_side(lambda: calls.append("a"), lambda: calls.append("b"), repeats=3)
    assert calls == ["a", "b"] * 3
    assert len(a_times) == len(b_times) == 3 and all(t >= 0 for t in a_times + b_times)


def test_ratio_row_has_exactly_the_shared_keys():
    row = ratio_row("x", "items/s", "ours", "theirs", 30.0, 10.0, "items/s", target=">= 3.0")
    assert tuple(row) == ROW_KEYS
    assert (row["ratio"], row["met"]) == (3.0, True)


def test_missing_and_failing_modules_become_rows(tmp_path, monkeypatch, capsys):
    broken = types.ModuleType("benchmarks.perf.store")

    def run(quick=False):
        raise RuntimeError("boom")

    broken.run = run
    fine = types.ModuleType("benchmarks.perf.generation")
    fine.run = lambda quick=False: [ratio_row("generation", "speed-up", "batched", "one by one", 3.0, 1.0, "x",
                                              target=">= 3.0")]
    monkeypatch.setitem(sys.modules, "benchmarks.perf.store", broken)
    monkeypatch.setitem(sys.modules, "benchmarks.perf.generation", fine)
    monkeypatch.setattr(bench_run, "MODULES", ("store", "generation", "no_such_bench"))
    assert bench_run.main(["--quick", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "bench.json").read_text())
    notes = {row["bench"]: row["note"] for row in report["rows"]}
    assert notes["store"] == "failed: RuntimeError: boom"
    assert notes["no_such_bench"] == "not built"
    assert report["rows"][1]["met"] is True and report["machine"]["cores"] >= 1
    table = (tmp_path / "bench.md").read_text()
    assert "| generation | speed-up | batched | one by one | 3 | 1 | x | 3 | >= 3.0 | yes |" in table
    assert "not built" in capsys.readouterr().out


def test_table_cells():
    assert bench_run.fmt(float("nan")) == "-" and bench_run.fmt(None) == "-"
    assert bench_run.fmt(287.4) == "287" and bench_run.fmt(12345.6) == "12,346" and bench_run.fmt("a|b") == "a\\|b"
    assert math.isnan(bench_run.status_row("x", "not built")["ratio"])
