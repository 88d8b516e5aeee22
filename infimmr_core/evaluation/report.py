"""Scores, the curriculum table and the markdown report, from per-sample results. Pure functions of their inputs
(no times, hosts or paths), so the same predictions always give byte-identical files."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from infimmr_core.config import EvaluationConfig

SCHEMA = "infimmr.evaluation/2"
HEADLINE = "official"  # the verdict every headline, model card and curriculum number uses
VERDICT_ORDER = ("official", "semantic")
MATHVERSE_TEXT_ONLY = "Text Only"


def _pct(hits: int, n: int) -> float | None:
    return round(100 * hits / n, 2) if n else None


def aggregate(benchmark: str | None, groups: list[str], correct: list[bool]) -> dict[str, Any]:
    """Headline accuracy (%) the way the benchmark reports it, with the per-group breakdown behind it.

    MathVerse's headline is the mean over its vision problem versions (Text Only is reported beside it); every other
    set's is plain accuracy over its rows."""
    by_group: dict[str, list[bool]] = defaultdict(list)
    for group, ok in zip(groups, correct):
        by_group[group].append(ok)
    breakdown = {g: {"n": len(v), "accuracy": _pct(sum(v), len(v))} for g, v in sorted(by_group.items())}
    headline = _pct(sum(correct), len(correct))
    if benchmark == "mathverse":
        versions = [b["accuracy"] for g, b in breakdown.items() if g != MATHVERSE_TEXT_ONLY]
        if versions:
            headline = round(sum(versions) / len(versions), 2)
    return {"accuracy": headline, "n": len(correct), "breakdown": breakdown}


def verdict_differences(scores: list[Any]) -> dict[str, Any]:
    """How the official verdicts differ from the semantic ones on a set's rows, and how many official verdicts a known
    official-code quirk decided (by quirk)."""
    quirks: dict[str, int] = defaultdict(int)
    for s in scores:
        if s.official.quirk:
            quirks[s.official.quirk] += 1
    return {
        "differs_from_semantic": {
            "official_only": sum(s.official.correct and not s.semantic.correct for s in scores),
            "semantic_only": sum(s.semantic.correct and not s.official.correct for s in scores),
        },
        "quirks": dict(sorted(quirks.items())),
    }


def scores_document(sets: dict[str, dict[str, Any]], models: list[str]) -> dict[str, Any]:
    """scores.json: one entry per eval set (iterate it to get every benchmark). Each entry repeats the final model's
    official score at its top level (`accuracy`, `format_rate`, `protocol`; the semantic score beside it as
    `semantic_accuracy`) for consumers that want one number per set, and holds every measured number under
    results[model][verdict] (official, semantic, judge), each with its own full protocol."""
    final = models[-1]
    document: dict[str, Any] = {}
    for name, entry in sets.items():
        headline = entry["results"][final][HEADLINE]
        document[name] = {
            **{k: entry[k] for k in ("benchmark", "dataset", "split", "subsets")},
            "n": headline["n"], "accuracy": headline["accuracy"], "verdict": HEADLINE,
            "semantic_accuracy": entry["results"][final]["semantic"]["accuracy"], "format_rate": headline["format_rate"],
            "model": final, "protocol": headline["protocol"], "results": entry["results"],
        }
    return document


def _scorer_labels(sets: dict[str, dict[str, Any]]) -> list[str]:
    labels = {s for entry in sets.values() for result in entry["results"].values() for s in result}
    return [v for v in VERDICT_ORDER if v in labels] + sorted(labels - set(VERDICT_ORDER))


def curriculum(sets: dict[str, dict[str, Any]], cfg: EvaluationConfig) -> dict[str, Any]:
    """curriculum.json: the ablation table. Measured rows (one per model and verdict: official first, the headline;
    then semantic; then judge), delta rows (each model minus the one before it, and the last minus the first), then
    published reference rows, labelled as such."""
    columns = list(sets)
    rows: list[dict[str, Any]] = []
    for scorer in _scorer_labels(sets):
        measured = []
        for model in cfg.models:
            scores = {c: sets[c]["results"][model].get(scorer, {}).get("accuracy") for c in columns}
            if all(v is None for v in scores.values()):
                continue
            measured.append({"label": model, "kind": "measured", "scorer": scorer, "scores": scores})
        rows += measured
        pairs = list(zip(measured, measured[1:]))
        if len(measured) > 2:
            pairs.append((measured[0], measured[-1]))
        for before, after in pairs:
            rows.append({
                "label": f"{after['label']} - {before['label']}", "kind": "delta", "scorer": scorer,
                "scores": {c: _delta(after["scores"][c], before["scores"][c]) for c in columns},
            })
    for ref in cfg.reference_rows:
        rows.append({
            "label": ref.label, "kind": "published", "scorer": "published (not measured here)", "source": ref.source,
            "scores": {c: ref.scores.get(c) for c in columns},
        })
    return {"schema": SCHEMA, "headline": HEADLINE, "columns": columns, "models": list(cfg.models), "rows": rows}


def _delta(after: float | None, before: float | None) -> float | None:
    return None if after is None or before is None else round(after - before, 2)


def _cell(value: float | None, kind: str) -> str:
    if value is None:
        return "–"
    return f"{value:+.2f}" if kind == "delta" else f"{value:.2f}"


def markdown(table: dict[str, Any], sets: dict[str, dict[str, Any]]) -> str:
    columns = table["columns"]
    lines = [
        "# Evaluation", "",
        "Accuracy (%) per benchmark. *measured* rows were produced by this pipeline under the protocol below; "
        "*delta* rows subtract the row named second; *published* rows are copied from the cited papers and were "
        "**not measured here** (their protocols differ).", "",
        "Verdicts: **official** (the headline) reproduces each benchmark's official scoring code, quirks included, so "
        "it compares with published numbers; **semantic** is the mathematically right verdict (equivalent forms, "
        "units, option letter or text), shown beside it; *judge* is an LLM judge where configured.", "",
        "| model | kind | scorer | " + " | ".join(columns) + " |",
        "|---" * (len(columns) + 3) + "|",
    ]
    for row in table["rows"]:
        cells = " | ".join(_cell(row["scores"].get(c), row["kind"]) for c in columns)
        lines.append(f"| {row['label']} | {row['kind']} | {row['scorer']} | {cells} |")
    published = [r for r in table["rows"] if r["kind"] == "published"]
    if published:
        lines += ["", "Published rows: " + "; ".join(f"{r['label']}: {r['source']}" for r in published) + "."]
    for name, entry in sets.items():
        final = entry["results"][table["models"][-1]][HEADLINE]
        semantic = entry["results"][table["models"][-1]]["semantic"]
        proto = final["protocol"]
        lines += [
            "", f"## {name}", "",
            f"- benchmark `{entry['benchmark']}`, dataset `{entry['dataset']}`, split `{entry['split']}`, "
            f"subsets {entry['subsets']}, n = {final['n']}",
            f"- prompt template `{proto['prompt_template_id']}`, decoding {proto['decoding']}, "
            f"max pixels {proto['max_pixels']}, backend {proto['backend']}",
            f"- official verdict (headline): {proto['scorer']['semantics']}; headline: {proto['headline']}",
            f"- semantic verdict: {semantic['protocol']['scorer']['semantics']}",
            f"- {table['models'][-1]}: official {_cell(final['accuracy'], 'measured')}, semantic "
            f"{_cell(semantic['accuracy'], 'measured')}; rows right only under official: "
            f"{final['differs_from_semantic']['official_only']}, only under semantic: "
            f"{final['differs_from_semantic']['semantic_only']}"
            + "".join(f"; official-code quirk '{q}' decided {n} row(s)" for q, n in final["quirks"].items()),
        ]
        groups = sorted({g for r in entry["results"].values() for g in r[HEADLINE]["breakdown"]})
        if len(groups) > 1:
            lines += ["", "| model | " + " | ".join(groups) + " |", "|---" * (len(groups) + 1) + "|"]
            for model in table["models"]:
                breakdown = entry["results"][model][HEADLINE]["breakdown"]
                lines.append(f"| {model} | " + " | ".join(
                    _cell(breakdown.get(g, {}).get("accuracy"), "measured") for g in groups) + " |")
    return "\n".join(lines) + "\n"
