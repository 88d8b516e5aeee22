"""The publish stage: a Hub-ready folder (weights, processor, model card, results), pushed when the recipe names a
repo and a token is available. The token is read from the environment and never written anywhere."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import yaml

from infimmr_core.config import Recipe
from infimmr_core.context import StageContext
from infimmr_core.hub import push_folder
from infimmr_core.layout import MODEL_DIR
from infimmr_core.stages import SPECS

HUB_DIR = "hub"
# Pickled files (Trainer's training_args.bin, torch .pt/.pth/.bin) run code when loaded: never part of a Hub folder.
PICKLED = ("*.bin", "*.pkl", "*.pickle", "*.pt", "*.pth")

CITATIONS = """```bibtex
@article{liu2025infimmr,
  title   = {Infi-MMR: Curriculum-based Unlocking Multimodal Reasoning via Phased Reinforcement Learning in Multimodal Small Language Models},
  journal = {arXiv preprint arXiv:2505.23091},
  year    = {2025}
}
@article{peng2025lmmr1,
  title   = {LMM-R1: Empowering 3B LMMs with Strong Reasoning Abilities Through Two-Stage Rule-Based RL},
  journal = {arXiv preprint arXiv:2503.07536},
  year    = {2025}
}
```"""


def scores_table(scores: dict[str, Any]) -> str:
    """One row per evaluation set, one column per scalar field any set reports (the protocol goes below the table)."""
    sets = {name: s for name, s in scores.items() if isinstance(s, dict)}
    columns: list[str] = []
    for s in sets.values():
        columns += [k for k, v in s.items() if k not in columns and k != "protocol" and not isinstance(v, (dict, list))]
    lines = ["| set | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for name, s in sets.items():
        lines.append(f"| {name} | " + " | ".join("" if s.get(c) is None else str(s[c]) for c in columns) + " |")
    return "\n".join(lines)


def _protocols(scores: dict[str, Any]) -> dict[str, Any]:
    """The protocol once when every set shares it, else per set."""
    protocols = {n: s["protocol"] for n, s in scores.items() if isinstance(s, dict) and "protocol" in s}
    distinct = {json.dumps(p, sort_keys=True) for p in protocols.values()}
    return next(iter(protocols.values())) if len(distinct) == 1 else protocols


def curriculum_table(curriculum: dict[str, Any]) -> str:
    """The ablation table (base, each phase, deltas, published reference rows) as markdown."""
    columns = curriculum.get("columns", [])
    lines = ["| model | scorer | " + " | ".join(columns) + " |", "|---" * (len(columns) + 2) + "|"]
    for row in curriculum.get("rows", []):
        label = f"{row['label']} (published, not measured here)" if row.get("kind") == "published" else row["label"]
        cells = ["" if row["scores"].get(c) is None else str(row["scores"][c]) for c in columns]
        lines.append(f"| {label} | {row.get('scorer', '')} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def model_index(recipe: Recipe, scores: dict[str, Any]) -> list[dict[str, Any]]:
    """Hub `model-index` metadata: one result per evaluation set, the rule score of the published model."""
    results = []
    for name, s in scores.items():
        if not isinstance(s, dict) or s.get("accuracy") is None:
            continue
        dataset = {"name": name, "type": s.get("dataset", name)}
        if s.get("split"):
            dataset["split"] = s["split"]
        results.append({
            "task": {"type": "image-text-to-text", "name": "Multimodal math reasoning"},
            "dataset": dataset,
            "metrics": [{"type": "accuracy", "value": s["accuracy"], "name": "accuracy (rule-based, see protocol)"}],
        })
    return [{"name": recipe.name, "results": results}]


def _front_matter(recipe: Recipe, scores: dict[str, Any]) -> list[str]:
    meta: dict[str, Any] = {
        "library_name": "transformers", "pipeline_tag": "image-text-to-text", "tags": ["infimmr", "grpo", "curriculum-rl"],
    }
    if recipe.base_model.name_or_path != "tiny":
        meta["base_model"] = recipe.base_model.name_or_path
    meta["model-index"] = model_index(recipe, scores)
    return ["---", yaml.safe_dump(meta, sort_keys=False).strip(), "---"]


def _json_block(value: Any) -> list[str]:
    return ["```json", json.dumps(value, indent=2), "```"]


def published_recipe(recipe: Recipe) -> str:
    """The recipe as the publish key holds it: every field that shapes an artifact, none that says how or where it ran
    (store URI and endpoint, cache paths, endpoints, timeouts), so the key covers the card and the card names no
    internal location."""
    return yaml.safe_dump(SPECS["publish"].config(recipe), sort_keys=False, allow_unicode=True, width=100)


def model_card(recipe: Recipe, scores: dict[str, Any], curation_report: dict[str, Any],
               provenance: dict[str, str], curriculum: dict[str, Any] | None = None) -> str:
    base = recipe.base_model.name_or_path
    revision = f" (revision `{recipe.base_model.revision}`)" if recipe.base_model.revision else ""
    curriculum_section = ["", "### Curriculum", curriculum_table(curriculum)] if curriculum else []
    return "\n".join(_front_matter(recipe, scores) + [
        f"# {recipe.name}",
        "",
        f"{recipe.description}".strip(),
        "",
        f"Trained with the three-phase Infi-MMR curriculum (text -> image + caption -> image) of GRPO from `{base}`{revision}.",
        "",
        "## Evaluation",
        scores_table(scores),
        *curriculum_section,
        "",
        "Protocol (applies to every number above):",
        *_json_block(_protocols(scores)),
        "",
        "## Data",
        "Curation summary (rows read, filtered, deduplicated, quarantined and kept per pool):",
        *_json_block(curation_report),
        "",
        "## Recipe",
        "The resolved recipe this model was trained with (every default spelled out; where and how it ran is left out):",
        "```yaml",
        published_recipe(recipe).strip(),
        "```",
        "",
        "Provenance: content digests of the pipeline artifacts this model and card were built from.",
        *_json_block(provenance),
        "",
        "## Citation",
        CITATIONS,
        "",
    ])


def _push(ctx: StageContext, hub: Path, token: str) -> dict[str, Any]:
    cfg = ctx.recipe.publish
    message = f"infimmr: {ctx.recipe.name} ({ctx.upstream_digests['phase3'][:12]})"
    result = push_folder(hub, cfg.repo_id, token, private=cfg.private, message=message)
    ctx.log(f"{cfg.repo_id}: {'new commit ' + result['commit'] if result['new_commit'] else 'unchanged, no new commit'}")
    if cfg.include_datasets:
        data = push_folder(ctx.inputs["curate"] / "pools", f"{cfg.repo_id}-data", token, private=cfg.private,
                           repo_type="dataset", message=message)
        result["dataset"] = {k: data[k] for k in ("repo_id", "repo_url", "commit", "new_commit")}
    return result


def run(ctx: StageContext) -> dict[str, Any]:
    recipe = ctx.recipe
    hub = ctx.out_dir / HUB_DIR
    shutil.copytree(ctx.inputs["phase3"] / MODEL_DIR, hub, ignore=shutil.ignore_patterns(*PICKLED))
    scores = json.loads((ctx.inputs["evaluate"] / "scores.json").read_text())
    report = json.loads((ctx.inputs["curate"] / "report.json").read_text())
    curriculum_path = ctx.inputs["evaluate"] / "curriculum.json"
    curriculum = json.loads(curriculum_path.read_text()) if curriculum_path.exists() else None
    card = model_card(recipe, scores, report, ctx.upstream_digests, curriculum)
    (hub / "README.md").write_text(card, encoding="utf-8")
    (hub / "results.json").write_text(json.dumps(scores, indent=2))

    cfg = recipe.publish
    token = os.environ.get(cfg.token_env)
    if not cfg.repo_id or not token:
        why = "no publish.repo_id in the recipe" if not cfg.repo_id else f"${cfg.token_env} is not set"
        ctx.log(f"not pushing ({why}); the Hub-ready folder is in the store under {HUB_DIR}/")
        return {"pushed": False, "reason": why}
    return {"pushed": True, "private": cfg.private} | _push(ctx, hub, token)
