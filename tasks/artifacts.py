"""What the Prefect UI shows for each stage: tables and markdown built from the stage's stored artifact files, plus a
progress bar fed by the training process's log lines. Rendering is generic (any scalar fields become columns), so the
stages can add fields without touching this module; a missing or unreadable file just means no artifact."""

from __future__ import annotations

import base64
import json
import re
from typing import Any, Callable
from uuid import UUID

from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

from infimmr_core.evaluation.curriculum_view import LEGEND, markdown_table
from infimmr_core.layout import CURVES_FILE, WARMUP_LOG
from infimmr_core.plots import line_chart_png
from infimmr_core.store import ArtifactStore

CURVE_KEYS = ("step", "reward", "reward_std", "rewards/accuracy/mean", "rewards/format/mean", "loss", "kl", "learning_rate")


def _scalar(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool)) or value is None


Reader = Callable[[str], "bytes | None"]  # artifact-relative path -> its bytes, None when absent


def artifact_reader(store: ArtifactStore, stage: str, key: str) -> Reader:
    """Read single files of a stored artifact: the UI needs a few small files, never the model weights beside them."""
    return lambda name: store.read_file(stage, key, name)


def _read_json(read: Reader, name: str) -> Any:
    try:
        raw = read(name)
        return json.loads(raw) if raw is not None else None
    except ValueError:
        return None


def _read_text(read: Reader, name: str) -> str | None:
    raw = read(name)
    return raw.decode("utf-8", errors="replace") if raw is not None else None


def table_rows(value: Any) -> list[dict[str, Any]]:
    """A table from whatever shape a stage wrote: {"rows": [...]}, a list of records, or {name: record}. A row keeps
    its scalar fields, and a nested record of scalars (e.g. per-benchmark scores) as `field.key` columns; deeper
    structure (protocols, per-model results) is left to the markdown artifacts."""
    if isinstance(value, dict) and isinstance(value.get("rows"), list):
        value = value["rows"]
    if isinstance(value, dict):
        value = [{"name": name} | record for name, record in value.items() if isinstance(record, dict)]
    if not isinstance(value, list):
        return []
    rows = []
    for record in value:
        if not isinstance(record, dict):
            continue
        row = {}
        for k, v in record.items():
            if k == "protocol":  # shown once, as its own markdown artifact
                continue
            if _scalar(v):
                row[k] = v
            elif isinstance(v, dict) and all(_scalar(x) for x in v.values()):
                row |= {f"{k}.{sub}": x for sub, x in v.items()}
        rows.append(row)
    return rows


def curve_rows(metrics_lines: list[str]) -> list[dict[str, Any]]:
    """TRL log_history lines -> the training-step rows (the final summary line has no reward and is skipped)."""
    rows = []
    for line in metrics_lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and "reward" in entry:
            rows.append({k: entry[k] for k in CURVE_KEYS if k in entry})
    return rows


def curation_counts(report: dict[str, Any]) -> list[dict[str, Any]]:
    """report.json -> one row per count: rows in, what remained after each step, every filter, quarantine and
    decontamination reason, and the pool sizes."""
    rows = [{"kind": "rows in", "name": "", "count": report.get("rows_in")}]
    rows += [{"kind": "after step", "name": s.get("step"), "count": s.get("remaining")} for s in report.get("steps", [])]
    for kind, field in (("filtered", "filtered"), ("quarantined", "quarantined"), ("decontaminated", "decontamination"),
                        ("caption from", "captions"), ("pool", "pools")):
        rows += [{"kind": kind, "name": name, "count": count} for name, count in (report.get(field) or {}).items()]
    return rows


def pass_rate_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The pass-rate histogram as rows of (bin, samples), with a bar drawn in text so the table reads as a chart."""
    edges, counts = report.get("pass_rate_bins") or [], report.get("pass_rate_histogram") or []
    top = max(counts, default=0) or 1
    return [
        {"pass_rate": f"{lo:.1f}-{hi:.1f}", "samples": n, "bar": "#" * round(20 * n / top)}
        for lo, hi, n in zip(edges, edges[1:], counts)
    ]


def _curate(stage: str, read: Reader, metrics: dict[str, Any]) -> None:
    report = _read_json(read, "report.json")
    if not isinstance(report, dict):
        return
    create_table_artifact(key=f"{stage}-counts", table=curation_counts(report),
                          description="Curation: rows in, after each step, and by reason (report.json)")
    if rows := pass_rate_rows(report):
        create_table_artifact(key=f"{stage}-pass-rates", table=rows, description="Curation: pass-rate histogram of kept samples")
    create_markdown_artifact(key=f"{stage}-report", markdown="```json\n" + json.dumps(report, indent=2) + "\n```",
                             description="Curation report")


def _phase(stage: str, read: Reader, metrics: dict[str, Any]) -> None:
    rows = curve_rows((_read_text(read, "metrics.jsonl") or "").splitlines())
    if not rows:
        return
    create_table_artifact(key=f"{stage}-curve", table=rows, description=f"{stage}: training curve (TRL log history)")
    png = read(CURVES_FILE) or line_chart_png(
        rows, tuple(s for s in ("reward", "rewards/accuracy/mean", "rewards/format/mean") if s in rows[0]))
    create_markdown_artifact(
        key=f"{stage}-plot", description=f"{stage}: reward curve",
        markdown=f"![{stage} reward curve](data:image/png;base64,{base64.b64encode(png).decode()})",
    )


def _evaluate(stage: str, read: Reader, metrics: dict[str, Any]) -> None:
    scores = _read_json(read, "scores.json")
    if isinstance(scores, dict) and (rows := table_rows(scores)):
        create_table_artifact(key=f"{stage}-scores", table=rows, description="Evaluation scores (scores.json)")
        protocols = {n: s["protocol"] for n, s in scores.items() if isinstance(s, dict) and "protocol" in s}
        if protocols:
            create_markdown_artifact(key=f"{stage}-protocol", description="Evaluation protocol per set",
                                     markdown="```json\n" + json.dumps(protocols, indent=2) + "\n```")
    curriculum = _read_json(read, "curriculum.json")
    if rows := table_rows(curriculum):
        create_table_artifact(key=f"{stage}-curriculum", table=rows, description="Scores after each phase")
    if (png := read("learning.png")) is not None:
        table = markdown_table(curriculum) if isinstance(curriculum, dict) else ""
        create_markdown_artifact(
            key=f"{stage}-learning", description="What each phase taught: curves and held-out accuracy",
            markdown=f"![learning curves](data:image/png;base64,{base64.b64encode(png).decode()})\n\n{LEGEND}\n\n{table}",
        )
    if (report := _read_text(read, "report.md")) is not None:
        create_markdown_artifact(key=f"{stage}-report", markdown=report, description="Evaluation report")


def warmup_rows(log_text: str) -> list[dict[str, Any]]:
    """warmup.jsonl -> one row per dev check (the vision pre-warm's lines and the closing line naming the kept step
    are not checks)."""
    entries = [json.loads(line) for line in log_text.splitlines() if line.strip()]
    return [{"step": e["step"], **{f"dev_accuracy.{t}": a for t, a in e["dev_accuracy"].items()}}
            for e in entries if e.get("stage") == "warmup" and "dev_accuracy" in e]


def _base(stage: str, read: Reader, metrics: dict[str, Any]) -> None:
    if rows := warmup_rows(_read_text(read, WARMUP_LOG) or ""):
        create_table_artifact(key=f"{stage}-warmup", table=rows, description="Warm-up: dev accuracy per task at each check")


def _publish(stage: str, read: Reader, metrics: dict[str, Any]) -> None:
    if metrics.get("repo_url") or metrics.get("commit_url"):
        create_link_artifact(key=f"{stage}-hub", link=metrics.get("repo_url") or metrics["commit_url"],
                             link_text=metrics.get("repo_id"), description="The published Hub repository")
    if (card := _read_text(read, "hub/README.md")) is not None:
        create_markdown_artifact(key=f"{stage}-card", markdown=card, description="Model card")


RENDERERS: dict[str, Callable[[str, Reader, dict[str, Any]], None]] = {
    "base": _base, "curate": _curate, "phase1": _phase, "phase2": _phase, "phase3": _phase, "evaluate": _evaluate, "publish": _publish,
}


def stage_artifacts(store: ArtifactStore, stage: str, key: str, metrics: dict[str, Any]) -> None:
    if render := RENDERERS.get(stage):  # the parts of the curate stage show through the curate stage
        render(stage, artifact_reader(store, stage, key), metrics)


def training_step(line: str) -> bool:
    """Does this child-process line report one logged training step? (transformers prints each log dict.)

    Recognised by its shape, never parsed as Python: `ast.literal_eval` in the flow's thread races Prefect's heartbeat
    thread inside CPython 3.11's AST constructor ("SystemError: AST constructor recursion depth mismatch")."""
    return bool(_LOG_DICT.match(line.strip()))


_LOG_DICT = re.compile(r"^\{'[^']+': [^{}]*'reward': [^{}]*\}$")


_LOGGED = re.compile(r"'(reward|rewards/accuracy/mean)': '?(-?[0-9.]+(?:e[-+]?[0-9]+)?)'?")


def progress_bar(stage: str, done: int, total: int, line: str = "", width: int = 30) -> str:
    """One text line: how far a phase is, and the step's reward and (sampled) accuracy when the line logs them."""
    filled = round(width * min(done, total) / max(total, 1))
    values = dict(_LOGGED.findall(line))
    shown = "".join(f", {name} {float(values[key]):.3f}" for key, name in
                    (("reward", "reward"), ("rewards/accuracy/mean", "accuracy")) if key in values)
    return f"{stage} [{'#' * filled}{'.' * (width - filled)}] {done}/{total} steps{shown}"


class TrainingProgress:
    """A progress artifact advanced by each logged step of a training phase, and the same progress as a text bar."""

    def __init__(self, stage: str, total_steps: int):
        self.stage, self.total, self.done = stage, max(total_steps, 1), 0
        self.artifact_id: UUID = create_progress_artifact(
            progress=0.0, key=f"{stage}-progress", description=f"{stage}: training steps done (%)")

    def on_line(self, line: str) -> str | None:
        """The progress bar's new text when `line` logs a training step, else None."""
        if not training_step(line):
            return None
        self.done += 1
        update_progress_artifact(self.artifact_id, progress=min(100.0, 100.0 * self.done / self.total))
        return progress_bar(self.stage, self.done, self.total, line)
