"""The publish stage: a Hub-ready folder (weights, processor, model card, results), pushed when the recipe names a
repo and a token is available. The token is read from the environment and never written anywhere."""

from __future__ import annotations

import json
import os
import shutil
from typing import Any

from infimmr_core.config import Recipe
from infimmr_core.context import StageContext
from infimmr_core.recipes import recipe_yaml
from infimmr_core.training import MODEL_DIR

HUB_DIR = "hub"

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
    lines = ["| set | n | accuracy (%) | format (%) |", "|---|---|---|---|"]
    for name, s in scores.items():
        lines.append(f"| {name} | {s['n']} | {s['accuracy']} | {s['format_rate']} |")
    return "\n".join(lines)


def model_card(recipe: Recipe, scores: dict[str, Any], curation_report: dict[str, Any]) -> str:
    protocol = next(iter(scores.values()))["protocol"] if scores else {}
    base = recipe.base_model.name_or_path
    front = ["---", "library_name: transformers", "pipeline_tag: image-text-to-text", "tags: [infimmr, grpo, curriculum-rl]"]
    if base != "tiny":
        front.append(f"base_model: {base}")
    front.append("---")
    return "\n".join(front + [
        f"# {recipe.name}",
        "",
        f"{recipe.description}".strip(),
        "",
        f"Trained with the three-phase Infi-MMR curriculum (text -> image + caption -> image) of GRPO from `{base}`.",
        "",
        "## Evaluation",
        scores_table(scores),
        "",
        "Protocol (applies to every number above):",
        "```json",
        json.dumps(protocol, indent=2),
        "```",
        "",
        "## Data",
        "```json",
        json.dumps(curation_report, indent=2),
        "```",
        "",
        "## Recipe",
        "```yaml",
        recipe_yaml(recipe).strip(),
        "```",
        "",
        "## Citation",
        CITATIONS,
        "",
    ])


def run(ctx: StageContext) -> dict[str, Any]:
    recipe = ctx.recipe
    hub = ctx.out_dir / HUB_DIR
    shutil.copytree(ctx.inputs["phase3"] / MODEL_DIR, hub)
    scores = json.loads((ctx.inputs["evaluate"] / "scores.json").read_text())
    report = json.loads((ctx.inputs["curate"] / "report.json").read_text())
    (hub / "README.md").write_text(model_card(recipe, scores, report), encoding="utf-8")
    (hub / "results.json").write_text(json.dumps(scores, indent=2))

    cfg = recipe.publish
    token = os.environ.get(cfg.token_env)
    if not cfg.repo_id or not token:
        why = "no publish.repo_id in the recipe" if not cfg.repo_id else f"${cfg.token_env} is not set"
        ctx.log(f"not pushing ({why}); the Hub-ready folder is in the store under {HUB_DIR}/")
        return {"pushed": False, "reason": why}
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    api.create_repo(cfg.repo_id, private=cfg.private, exist_ok=True)
    commit = api.upload_folder(repo_id=cfg.repo_id, folder_path=str(hub), commit_message=f"infimmr: {recipe.name}")
    ctx.log(f"pushed to {cfg.repo_id}: {commit.commit_url}")
    return {"pushed": True, "repo_id": cfg.repo_id, "commit": commit.oid, "commit_url": commit.commit_url}
