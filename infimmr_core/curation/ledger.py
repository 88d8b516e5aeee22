"""The ledger: what happened to every row, so that `rows_in == kept + filtered + quarantined` can be checked.

Quarantined rows and decontamination matches are streamed to JSONL files as they happen (memory stays bounded);
counts group by reason kind ("image file not found: a.png" counts as "image file not found"). Each part of the
curate stage (collect, every shard) keeps its own ledger and stores its counts; the merge adds them up.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

from infimmr_core.data.schema import Sample
from infimmr_core.data.sources import Quarantined
from infimmr_core.layout import COUNTS_FILE, DECONTAMINATION_FILE, QUARANTINE_FILE

BINS = 10


def position(sample: Sample) -> str:
    """Where a sample came from, for its quarantine record; generated samples have no file position, their id says."""
    return str(sample.metadata.get("source_position", sample.id))


def reason_kind(reason: str) -> str:
    return reason.split(":", 1)[0]


class Ledger:
    """Counts by reason, plus the quarantine and decontamination records streamed into `folder`."""

    def __init__(self, folder: Path):
        self.rows_in = 0
        self.filtered: Counter[str] = Counter()
        self.quarantined: Counter[str] = Counter()
        self.contaminated_by: Counter[str] = Counter()
        self.captions: Counter[str] = Counter()  # kept captions by origin: "source" (the dataset's) or "captioner"
        self.steps: list[dict[str, Any]] = []
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.quarantine_path, self.decontamination_path = folder / QUARANTINE_FILE, folder / DECONTAMINATION_FILE
        self._quarantine = self.quarantine_path.open("w")
        self._decontamination = self.decontamination_path.open("w")

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

    def save(self, **extra: Any) -> None:
        """Close the record files and write the counts (and `extra`) beside them: what a part of the stage stores."""
        self.close()
        counts = {"rows_in": self.rows_in, "filtered": self.filtered, "quarantined": self.quarantined,
                  "contaminated_by": self.contaminated_by, "captions": self.captions, "steps": self.steps, **extra}
        (self.folder / COUNTS_FILE).write_text(json.dumps(counts, indent=2, sort_keys=True))

    def absorb(self, files: dict[str, Path]) -> dict[str, Any]:
        """Add a saved ledger's counts and append its records; `files` maps the names of LEDGER_FILES to where they
        are. Returns the saved counts (its steps are for the caller to combine)."""
        counts = json.loads(files[COUNTS_FILE].read_text())
        self.rows_in += counts["rows_in"]
        self.filtered.update(counts["filtered"])
        self.quarantined.update(counts["quarantined"])
        self.contaminated_by.update(counts["contaminated_by"])
        self.captions.update(counts.get("captions", {}))
        for name, sink in ((QUARANTINE_FILE, self._quarantine), (DECONTAMINATION_FILE, self._decontamination)):
            with files[name].open() as records:
                shutil.copyfileobj(records, sink)
        return counts

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
            "captions": dict(sorted(self.captions.items())),
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
