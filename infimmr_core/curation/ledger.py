"""The ledger: what happened to every row, so that `rows_in == kept + filtered + quarantined` can be checked.

Quarantined rows and decontamination matches are streamed to JSONL files as they happen (memory stays bounded);
counts group by reason kind ("image file not found: a.png" counts as "image file not found").
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from infimmr_core.data.sources import Quarantined

BINS = 10


def reason_kind(reason: str) -> str:
    return reason.split(":", 1)[0]


class Ledger:
    def __init__(self, quarantine_path: Path, decontamination_path: Path):
        self.rows_in = 0
        self.filtered: Counter[str] = Counter()
        self.quarantined: Counter[str] = Counter()
        self.contaminated_by: Counter[str] = Counter()
        self.steps: list[dict[str, Any]] = []
        quarantine_path.parent.mkdir(parents=True, exist_ok=True)
        self.quarantine_path, self.decontamination_path = quarantine_path, decontamination_path
        self._quarantine = quarantine_path.open("w")
        self._decontamination = decontamination_path.open("w")

    def filter(self, reason: str) -> None:
        self.filtered[reason_kind(reason)] += 1

    def quarantine(self, q: Quarantined, step: str = "load") -> None:
        self.quarantined[reason_kind(q.reason)] += 1
        record = {"source": q.source, "position": q.position, "step": step, "reason": q.reason, "row": q.row}
        self._quarantine.write(json.dumps(record, default=str) + "\n")

    def contaminated(self, sample_id: str, position: str, match: Any) -> None:
        self.filter("contaminated")
        self.contaminated_by[match.benchmark] += 1
        record = {"id": sample_id, "position": position, "benchmark": match.benchmark, "item_id": match.item_id,
                  "signal": match.signal, "overlap": match.overlap}
        self._decontamination.write(json.dumps(record) + "\n")

    def step(self, name: str, remaining: int) -> None:
        self.steps.append({"step": name, "remaining": remaining})

    def close(self) -> None:
        self._quarantine.close()
        self._decontamination.close()

    def report(self, kept: int, pools: dict[str, int], rates: list[float]) -> dict[str, Any]:
        report = {
            "rows_in": self.rows_in,
            "kept": kept,
            "filtered": dict(sorted(self.filtered.items())),
            "quarantined": dict(sorted(self.quarantined.items())),
            "steps": self.steps,
            "decontamination": dict(sorted(self.contaminated_by.items())),
            "pools": pools,
            "pass_rate_bins": [round(i / BINS, 2) for i in range(BINS + 1)],
            "pass_rate_histogram": histogram(rates),
        }
        accounted = kept + sum(self.filtered.values()) + sum(self.quarantined.values())
        if self.rows_in != accounted:
            raise RuntimeError(f"curation lost rows: {report}")  # never publish a pool that silently dropped data
        return report


def histogram(rates: list[float], bins: int = BINS) -> list[int]:
    counts = [0] * bins
    for p in rates:
        counts[min(int(p * bins), bins - 1)] += 1
    return counts
