"""`infimmr`: run the pipeline or one stage, list and show recipes.

Progress and logs go to stderr; `--json` prints exactly one JSON object on stdout, for scripts.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from infimmr_core.config import Recipe
from infimmr_core.recipes import RecipeError, builtin_recipes, load_recipe, recipe_yaml
from infimmr_core.stages import STAGES


def _quiet_offline_prefect() -> None:
    # Machines without internet: no telemetry attempts, and no Prefect banner noise on stdout.
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


def _recipe_from(args: argparse.Namespace) -> Recipe:
    recipe = load_recipe(args.recipe, args.set)
    if args.store:
        recipe.store.uri = args.store
    if not recipe.store.uri.startswith("s3://"):
        # A relative directory means "here": pin it, so the run (and its Prefect cache records) names one place.
        from infimmr_core.store import store_from_config

        recipe.store.uri = store_from_config(recipe.store).uri
    return recipe


def _print_summary(summary: dict[str, Any], total: float) -> None:
    print(f"\nrecipe {summary['recipe']} -> store {summary['store']} ({total:.1f} s)", file=sys.stderr)
    for name, s in summary["stages"].items():
        print(f"  {name:<9} {s['state']:<10} {s['seconds']:>8.1f} s  {s['uri']}", file=sys.stderr)


def _run(args: argparse.Namespace, stage: str | None) -> int:
    recipe = _recipe_from(args)
    _quiet_offline_prefect()
    from infimmr.flows.pipeline import infimmr_pipeline, infimmr_stage
    from infimmr_core.stages import UpstreamMissing

    started = time.perf_counter()
    try:
        if stage is None:
            summary = infimmr_pipeline(recipe=recipe, force=args.force)
        else:
            summary = infimmr_stage(stage=stage, recipe=recipe, force=stage in args.force)
    except UpstreamMissing as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except Exception as err:  # a failed stage: Prefect has logged the details; say which and how to resume
        print(f"error: {err}\nfinished stages are kept in the store; run the same command again to resume", file=sys.stderr)
        return 1
    total = time.perf_counter() - started
    summary["seconds"] = round(total, 3)
    _print_summary(summary, total)
    if args.json:
        print(json.dumps(summary))
    return 0


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--recipe", default="smoke", help="built-in recipe name or path to a YAML recipe (default: smoke)")
    parser.add_argument("--store", help="artifact store URI, overriding the recipe: file://DIR or s3://BUCKET/PREFIX")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a recipe value by dotted key, e.g. phases.1.learning_rate=1e-6 (repeatable)")
    parser.add_argument("--force", action="append", default=[], choices=STAGES, metavar="STAGE",
                        help="recompute STAGE and everything downstream (repeatable)")
    parser.add_argument("--json", action="store_true", help="print one JSON object with every stage's outcome on stdout")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="infimmr", description="Infi-MMR curriculum GRPO pipeline.")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_run_options(sub.add_parser("run", help="run the whole pipeline (finished stages come from the store)"))
    stage = sub.add_parser("stage", help="run one stage (its inputs must already be in the store)")
    stage.add_argument("name", choices=STAGES)
    _add_run_options(stage)
    sub.add_parser("recipes", help="list the built-in recipes")
    show = sub.add_parser("recipe", help="recipe tools").add_subparsers(dest="recipe_command", required=True)
    show_cmd = show.add_parser("show", help="print a recipe fully resolved (every default spelled out)")
    show_cmd.add_argument("name", help="built-in recipe name or YAML path")
    show_cmd.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "recipes":
            print("\n".join(builtin_recipes()))
            return 0
        if args.command == "recipe":
            print(recipe_yaml(load_recipe(args.name, args.set)), end="")
            return 0
        return _run(args, args.name if args.command == "stage" else None)
    except RecipeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
