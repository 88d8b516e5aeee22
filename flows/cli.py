"""`infimmr`: run the pipeline or one stage, list and show recipes.

Progress and logs go to stderr; `--json` prints exactly one JSON object on stdout, for scripts.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any, Callable

from infimmr_core.config import Recipe
from infimmr_core.recipes import RecipeError, builtin_recipes, load_recipe, recipe_yaml
from infimmr_core import prefetch
from infimmr_core.stages import STAGES, pipeline_stages, stored_chain
from infimmr_core.store import ArtifactStore, Manifest, StoreError, store_from_config


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
        recipe.store.uri = store_from_config(recipe.store).uri
    return recipe


def _print_summary(summary: dict[str, Any], total: float) -> None:
    print(f"\nrecipe {summary['recipe']} -> store {summary['store']} ({total:.1f} s)", file=sys.stderr)
    for name, s in summary["stages"].items():
        print(f"  {name:<9} {s['state']:<10} {s['seconds']:>8.1f} s  {s['uri']}", file=sys.stderr)
        if parts := s.get("parts"):  # the curate stage's collect and shard tasks
            counts = {state: list(parts.values()).count(state) for state in sorted(set(parts.values()))}
            print(f"  {'':<9} parts: {', '.join(f'{n} {state}' for state, n in counts.items())}", file=sys.stderr)


def _print_curriculum(recipe: Recipe, summary: dict[str, Any]) -> None:
    """The run ends with what it taught: the curriculum table and where its learning curves are."""
    from infimmr_core.evaluation.curriculum_view import LEGEND, text_table

    evaluate = summary["stages"].get("evaluate")
    if evaluate is None:
        return
    raw = store_from_config(recipe.store).read_file("evaluate", evaluate["uri"].rsplit("/", 1)[-1], "curriculum.json")
    if raw is None:
        return
    print(f"\n{LEGEND}:\n{text_table(json.loads(raw))}\nlearning curves: {evaluate['uri']}/learning.png", file=sys.stderr)


def _print_warnings(recipe: Recipe, summary: dict[str, Any]) -> None:
    """What a completed run may still have got wrong, after its table, so it is the last thing read."""
    from infimmr_core.warmup.schedule import shortfall

    base = summary["stages"].get("base")
    if base is not None and recipe.warmup is not None:
        if note := shortfall(base.get("metrics") or {}, recipe.warmup.target_accuracy):
            print(f"\nwarning: {note}", file=sys.stderr)


def _stored_run(recipe: Recipe, refs: dict, missing: str | None) -> dict[str, Any] | None:
    """A run whose every stage is stored, answered from the store when the alternative is starting Prefect's temporary
    server for nothing (20-60 s on a loaded machine, most of a cached rerun); None when the run goes through Prefect:
    a stage to compute, or a Prefect server of the operator's, where the run shows up Cached."""
    from infimmr.flows.summary import stored_run

    summary = stored_run(recipe, refs, missing)
    if summary is None:
        return None
    from infimmr.flows.prefect_api import needs_temporary_server

    if not needs_temporary_server():
        return None
    print("every stage is stored: answered from the store without starting Prefect's temporary server "
          "(`--always-prefect` records a flow run)", file=sys.stderr)
    return summary


def _report(args: argparse.Namespace, recipe: Recipe, summary: dict[str, Any], started: float) -> int:
    total = time.perf_counter() - started
    summary["seconds"] = round(total, 3)
    _print_summary(summary, total)
    _print_curriculum(recipe, summary)
    _print_warnings(recipe, summary)
    if args.json:
        print(json.dumps(summary))
    return 0


def _run(args: argparse.Namespace, stage: str | None) -> int:
    recipe = _recipe_from(args)
    _quiet_offline_prefect()
    fetch = None
    if stage is None:
        started = time.perf_counter()
        refs, missing = stored_chain(store_from_config(recipe.store), recipe, pipeline_stages(recipe))
        if not args.force and not args.always_prefect and (summary := _stored_run(recipe, refs, missing)) is not None:
            return _report(args, recipe, summary, started)
        fetch = _fetch_base_model(recipe, missing, args.force)
        _start_standby(recipe, missing, args.force)
    try:
        return _run_through_prefect(args, recipe, stage)
    finally:
        if (why := prefetch.stop(fetch)) is not None:
            print(f"note: {why}", file=sys.stderr)


def _first_to_run(recipe: Recipe, missing: str | None, force: list[str]) -> str | None:
    return next((s for s in pipeline_stages(recipe) if s == missing or s in force), None)


def _fetch_base_model(recipe: Recipe, missing: str | None, force: list[str]):
    """Start fetching the base model now, beside Prefect's start-up, when the run will read it (see prefetch)."""
    first = _first_to_run(recipe, missing, force)
    if first is None or not prefetch.needs_fetch(recipe, first):
        return None
    return prefetch.start(recipe.base_model, store_from_config(recipe.store).cache_dir)


def _start_standby(recipe: Recipe, missing: str | None, force: list[str]) -> None:
    """Start the process the first stage to compute will run in now, beside Prefect's start-up (about 10 s): its
    interpreter, torch and the model libraries took the demo's first stage 8 s (runner's standby). Only for a stage
    of its own on this machine: curation's parts run in warm workers, and a recipe with a GPU deployment may send
    the stage elsewhere."""
    from infimmr_core import runner

    first = _first_to_run(recipe, missing, force)
    if first is not None and first not in runner.WARM_STAGES and recipe.runtime.gpu_stage_deployment is None:
        runner.prepare_standby()


def _run_through_prefect(args: argparse.Namespace, recipe: Recipe, stage: str | None) -> int:
    from infimmr.flows.prefect_api import PrefectUnavailable, start_api

    try:
        wait_for_api = start_api()  # the server boots while the pipeline's modules load
        from infimmr.flows.pipeline import infimmr_pipeline, infimmr_stage
        from infimmr_core.stages import UpstreamMissing

        wait_for_api()
    except PrefectUnavailable as err:  # not a failed stage: nothing ran, and running it again will not help
        print(f"error: {err}", file=sys.stderr)
        return 3
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
    return _report(args, recipe, summary, started)


def _server(args: argparse.Namespace) -> int:
    _quiet_offline_prefect()
    from infimmr.flows.server import serve_forever

    store = load_recipe("smoke").store
    if args.store:
        store.uri = args.store
    return serve_forever(args.host, args.port, store, args.worker)


def _deploy(args: argparse.Namespace) -> int:
    _quiet_offline_prefect()
    from infimmr.flows.deploy import (
        DeployOptions, ScheduledRecipe, describe_schedule, register, remove_stale_schedule, serve_all,
    )

    if args.schedule_set and not args.schedule_recipe:
        print("error: --schedule-set needs --schedule-recipe (the recipe the schedule retrains with)", file=sys.stderr)
        return 2
    schedule = None if args.no_schedule or not args.schedule_recipe else ScheduledRecipe(args.schedule_recipe, args.schedule_set)
    opts = DeployOptions(cpu_pool=args.cpu_pool, gpu_pool=args.gpu_pool, cron=args.cron, timezone=args.timezone,
                         schedule=schedule)
    if schedule:
        schedule.parameters()  # a recipe that would not load fails here, before anything is registered
    removed = remove_stale_schedule(opts)
    if args.serve:
        print(describe_schedule(opts, removed), file=sys.stderr, flush=True)
        serve_all(opts)
        return 0
    for name in register(opts):
        print(name)
    print(describe_schedule(opts, removed), file=sys.stderr)
    return 0


def _curate_parts(recipe: Recipe, store: ArtifactStore) -> tuple[Manifest, dict[str, str]]:
    """The curate stage's parts in child processes, without Prefect, with a progress bar over the shards; each part
    is reused when the store holds it. Returns the curate manifest and each part's state."""
    from dataclasses import dataclass

    from tqdm import tqdm

    from infimmr_core.runner import run_stage_process
    from infimmr_core.stages import SHARD, ArtifactRef, curate_from_parts, plan_stage, produce, stored_ref, upstream_of

    @dataclass
    class Part:
        ref: ArtifactRef
        state: str

    def part(stage: str, upstream: dict[str, ArtifactRef], say: Callable[[str], None] = print_err) -> Part:
        ref = produce(store, plan_stage(stage, recipe, upstream),
                      lambda plan: run_stage_process(plan, recipe, upstream, on_line=say),
                      lease_seconds=recipe.store.lease_seconds)
        return Part(ref, "cached" if ref.reused else "completed")

    def shards(upstreams: dict[str, dict[str, ArtifactRef]]) -> dict[str, Part]:
        with tqdm(upstreams.items(), desc="curate shards", unit="shard", file=sys.stderr) as bar:
            return {name: part(SHARD, upstream, lambda line: bar.write(line, file=sys.stderr)) for name, upstream in bar}

    # A recipe that warms its base model up curates with that model: its base stage runs (or is reused) first.
    upstream = {name: part(name, {}).ref for name in upstream_of("curate", recipe)}
    merged, parts = curate_from_parts(store, recipe, force=False, run_part=part, run_shards=shards, upstream=upstream)
    ref = merged.ref if merged else stored_ref(store, "curate", recipe, upstream)
    manifest = store.manifest("curate", ref.key) if ref else None
    assert manifest is not None  # stored before, or the merge just stored it
    states = {**{name: o.state for name, o in parts.items()}, "curate": merged.state} if merged else {"curate": "cached"}
    return manifest, states


def print_err(line: str) -> None:
    print(line, file=sys.stderr)


def _curate(args: argparse.Namespace) -> int:
    """Curate one source with a recipe's curation settings, outside the pipeline; the artifacts are stored (and
    reused) under `--out` like any curate artifacts, at the keys of that one-source recipe."""
    from infimmr_core.config import SourceConfig
    from infimmr_core.runner import StageFailed

    mapping = {}
    for item in args.mapping:
        field, sep, column = item.partition("=")
        if not sep or not field or not column:
            print(f"error: --mapping {item!r} is not FIELD=COLUMN", file=sys.stderr)
            return 2
        mapping[field] = column
    recipe = load_recipe(args.recipe, args.set)
    try:
        recipe.curation.sources = [SourceConfig(kind=args.kind, path=args.source, format=args.format, mapping=mapping)]
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    recipe.store.uri = args.out
    store = store_from_config(recipe.store)
    recipe.store.uri = store.uri
    try:
        manifest, parts = _curate_parts(recipe, store)
    except StageFailed as err:
        print(f"error: {err}\nfinished parts are kept in the store; run the same command again to resume", file=sys.stderr)
        return 1
    uri = store.artifact_uri("curate", manifest.key)
    report = json.loads((store.get_dir("curate", manifest.key) / "report.json").read_text())
    files = {f.path: f"{uri}/{f.path}" for f in manifest.files}
    if args.json:
        print(json.dumps({**{k: report[k] for k in ("rows_in", "kept", "filtered", "quarantined", "pools")},
                          "uri": uri, "artifacts": files, "parts": parts}))
    else:
        print(f"{report['rows_in']} rows in, {report['kept']} kept -> {uri}")
        for kind in ("filtered", "quarantined"):
            for reason, count in report[kind].items():
                print(f"  {kind:<11} {count:>7}  {reason}")
        for name, count in report["pools"].items():
            print(f"  pool {name:<13} {count:>7}  {files[f'pools/{name}.parquet']}")
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
    run = sub.add_parser("run", help="run the whole pipeline (finished stages come from the store)")
    _add_run_options(run)
    run.add_argument("--always-prefect", action="store_true",
                     help="go through Prefect even when every stage is stored (without PREFECT_API_URL such a run is "
                          "answered from the store, without starting Prefect's temporary server or recording a flow run)")
    stage = sub.add_parser("stage", help="run one stage (its inputs must already be in the store)")
    stage.add_argument("name", choices=STAGES)
    _add_run_options(stage)
    server = sub.add_parser("server", help="start a local Prefect server with the crash automation, blocks and workers")
    server.add_argument("--host", default="127.0.0.1")
    server.add_argument("--port", type=int, default=4200)
    server.add_argument("--store", help="artifact store whose S3 result block to create (default: the smoke recipe's)")
    server.add_argument("--worker", action="append", default=[], metavar="POOL",
                        help="also run a process worker for POOL (repeatable); stopped before the server")
    deploy = sub.add_parser("deploy", help="register the deployments with the Prefect API, or --serve them from here")
    deploy.add_argument("--serve", action="store_true", help="serve from this process (one box, no work pool)")
    deploy.add_argument("--cpu-pool", default="infimmr-cpu", help="work pool for curate/evaluate/publish")
    deploy.add_argument("--gpu-pool", default="infimmr-gpu", help="work pool for the pipeline and the training phases")
    deploy.add_argument("--cron", default="0 3 * * 0", help="retraining schedule (default weekly, Sunday 03:00)")
    deploy.add_argument("--timezone", default="UTC")
    deploy.add_argument("--no-schedule", action="store_true", help="no retraining schedule, even with --schedule-recipe")
    deploy.add_argument("--schedule-recipe", metavar="NAME|PATH",
                        help="add a retraining schedule (--cron) with this recipe, e.g. infimmr-3b; none without it")
    deploy.add_argument("--schedule-set", action="append", default=[], metavar="KEY=VALUE",
                        help="override the scheduled recipe, e.g. the data snapshot: curation.sources.0.path=s3://b/2025-06")
    curate = sub.add_parser("curate", help="curate one source outside the pipeline and print its report")
    curate.add_argument("--source", required=True, metavar="PATH_OR_HUB_ID",
                        help="a .jsonl/.json/.parquet/.csv file, a save_to_disk folder, or a Hub id")
    curate.add_argument("--kind", default="canonical", help="row schema: canonical (default), deepscaler, virl39k, "
                        "geometry3k, mathv360k")
    curate.add_argument("--format", default="auto", help="jsonl, json, parquet, csv, disk, hub (default: auto)")
    curate.add_argument("--mapping", action="append", default=[], metavar="FIELD=COLUMN",
                        help="read canonical FIELD from source COLUMN, e.g. problem=question (repeatable)")
    curate.add_argument("--out", required=True, metavar="URI", help="store for the artifact: file://DIR or s3://BUCKET/PREFIX")
    curate.add_argument("--recipe", default="smoke", help="recipe whose curation settings apply (default: smoke)")
    curate.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a recipe value")
    curate.add_argument("--json", action="store_true", help="print one JSON object: counts by reason and artifact URIs")
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
        if args.command == "curate":
            return _curate(args)
        if args.command == "recipe":
            print(recipe_yaml(load_recipe(args.name, args.set)), end="")
            return 0
        if args.command == "server":
            return _server(args)
        if args.command == "deploy":
            return _deploy(args)
        return _run(args, args.name if args.command == "stage" else None)
    except (RecipeError, StoreError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
