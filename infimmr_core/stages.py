"""The pipeline as data: which stages exist, what each depends on, what code and config shape its output.

[base ->] curate -> phase1 -> phase2 -> phase3 -> evaluate -> publish, where every phase also reads the curated pools
and publish also reads the evaluation. Orchestrators (the Prefect flows, the CLI) walk this graph; they add no logic.

The `base` stage exists only in recipes with a `warmup` section: it warms `base_model` up, and its artifact is then
the base model wherever one is used (curation's rollouts and captions, phase 1's start, evaluation's `base` row), so
its digest is part of those stages' keys. Elsewhere (infimmr-3b) the graph has no such stage and no key mentions it.

The curate stage is built from parts, each its own artifact and its own cached task: `curate-collect` (read,
filter, decontaminate, dedup; writes the accepted samples as shards), one `curate-shard` per shard (captions and
rollouts, the expensive work), and the curate stage itself, which merges them (pass-rate band, pools, report).
A part's key holds only what shapes that part, so changing the band or the pool caps reuses every shard, and a
shard whose samples did not change (e.g. the earlier shards of a source that grew) keeps its key.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, Literal, Protocol, TypeVar

from pydantic import BaseModel, Field

from infimmr_core.config import Recipe, is_operational
from infimmr_core.keys import code_closure, code_hash, key_of, library_versions
from infimmr_core.layout import BASE_STAGE, COLLECT_PREFIX, LEDGER_FILES, SHARD_DIR
from infimmr_core.lease import LEASE_SECONDS, LeaseRecord, holding
from infimmr_core.store import ArtifactStore, Manifest

StageName = Literal["base", "curate", "phase1", "phase2", "phase3", "evaluate", "publish"]
STAGES: tuple[str, ...] = (BASE_STAGE, "curate", "phase1", "phase2", "phase3", "evaluate", "publish")
COLLECT, SHARD = "curate-collect", "curate-shard"  # the parts of the curate stage (see the module docstring)

_log = logging.getLogger(__name__)
_ML_LIBS = ("torch", "transformers", "tokenizers", "datasets", "pillow", "math-verify")


@dataclass(frozen=True)
class StageSpec:
    name: str
    upstream: tuple[str, ...]
    module: str  # infimmr_core module whose `run(ctx)` produces the artifact
    libraries: tuple[str, ...]
    config: Callable[[Recipe], dict[str, Any]]


def _dump(model: BaseModel) -> dict[str, Any]:
    """A config model as a key sees it: every field that shapes an artifact, none that only says how or where the
    stage runs (fields marked `operational` in infimmr_core.config)."""
    dumped = model.model_dump(mode="json", by_alias=True)
    _drop_operational(model, dumped)
    return dumped


def _drop_operational(value: Any, dumped: Any) -> None:
    if isinstance(value, BaseModel):
        for name, field in type(value).model_fields.items():
            key = field.serialization_alias or field.alias or name
            if is_operational(field):
                dumped.pop(key, None)
            else:
                _drop_operational(getattr(value, name), dumped.get(key))
    elif isinstance(value, (list, tuple)):
        for item, dumped_item in zip(value, dumped):
            _drop_operational(item, dumped_item)
    elif isinstance(value, dict):
        for name, item in value.items():
            _drop_operational(item, dumped.get(name))


def _phase_config(number: int) -> Callable[[Recipe], dict[str, Any]]:
    def config(recipe: Recipe) -> dict[str, Any]:
        sliced = {"phase": _dump(recipe.phases[number]), "prompts": _dump(recipe.prompts), "rewards": _dump(recipe.rewards)}
        if number == 1:  # later phases start from the previous phase's artifact, whose digest is in the key
            sliced["base_model"] = _dump(recipe.base_model)
        return sliced

    return config


def _collect_config(recipe: Recipe) -> dict[str, Any]:
    # Everything before the first shard: sources, filters, decontamination, dedup, shard size.
    later = {"captioning", "difficulty", "pools"}
    return {"curation": {k: v for k, v in _dump(recipe.curation).items() if k not in later}}


_BAND = {"enabled", "min_pass_rate", "max_pass_rate", "inclusive", "pass_rate_column"}


def _shards_use_base(recipe: Recipe) -> bool:
    """Does curation generate with the base model (as the captioner or the rollout policy)?"""
    cur = recipe.curation
    return (cur.captioning.enabled and cur.captioning.model is None) or (cur.difficulty.rolls_out and cur.difficulty.policy is None)


def _shard_config(recipe: Recipe) -> dict[str, Any]:
    """What shapes one shard's captions and pass rates, and nothing else: the band, the pools and the dataset's own
    pass-rate column are applied when the shards are merged."""
    cur = recipe.curation
    sliced: dict[str, Any] = {"seed": cur.seed}
    if cur.captioning.enabled:
        sliced["captioning"] = _dump(cur.captioning)
    if cur.difficulty.rolls_out:
        sliced["rollouts"] = {k: v for k, v in _dump(cur.difficulty).items() if k not in _BAND}
        sliced["prompts"], sliced["rewards"] = _dump(recipe.prompts), _dump(recipe.rewards)
    if _shards_use_base(recipe):
        sliced["base_model"] = _dump(recipe.base_model)
    return sliced


def _base_config(recipe: Recipe) -> dict[str, Any]:
    # The warm-up teaches answers in the rewards' format, to prompts built like the phases' and judges its dev checks
    # with the accuracy reward.
    return {"base_model": _dump(recipe.base_model), "warmup": _dump(recipe.warmup) if recipe.warmup else None,
            "prompts": _dump(recipe.prompts), "rewards": _dump(recipe.rewards)}


def _publish_config(recipe: Recipe) -> dict[str, Any]:
    # The card shows the whole recipe, so all of it shapes this artifact, except how and where it ran.
    return _dump(recipe)


# An upstream named BASE_STAGE is there only when the recipe has that stage and the stage uses the base model
# (`upstream_of`); every other upstream is always there.
SPECS: dict[str, StageSpec] = {
    BASE_STAGE: StageSpec(BASE_STAGE, (), "infimmr_core.warmup.stage", _ML_LIBS, _base_config),
    COLLECT: StageSpec(COLLECT, (), "infimmr_core.curation.collect", _ML_LIBS, _collect_config),
    # Upstream "shard" is one file of the collect artifact; its digest is that file's sha256.
    SHARD: StageSpec(SHARD, ("shard", BASE_STAGE), "infimmr_core.curation.enrich", _ML_LIBS, _shard_config),
    # The merge. Its key is the whole curation slice and no part digests, so a stored curate artifact is found
    # from the recipe alone (and the base model's digest, when a stage makes it): an all-cached rerun never looks at
    # the parts.
    "curate": StageSpec(
        "curate", (BASE_STAGE,), "infimmr_core.curation.stage", _ML_LIBS,
        lambda r: {
            "curation": _dump(r.curation), "base_model": _dump(r.base_model),
            "prompts": _dump(r.prompts), "rewards": _dump(r.rewards),
        },
    ),
    **{
        f"phase{n}": StageSpec(
            f"phase{n}", ("curate", BASE_STAGE) if n == 1 else ("curate", f"phase{n - 1}"), "infimmr_core.training",
            _ML_LIBS + ("trl", "accelerate", "peft"), _phase_config(n),
        )
        for n in (1, 2, 3)
    },
    # Every phase is upstream so the report can show the whole curriculum (base, phase 1, 2, 3); the base model is
    # evaluated too, so its spec is part of this stage's slice.
    "evaluate": StageSpec(
        "evaluate", (BASE_STAGE, "phase1", "phase2", "phase3"), "infimmr_core.evaluation.stage", _ML_LIBS,
        lambda r: {
            "evaluation": _dump(r.evaluation), "prompts": _dump(r.prompts), "rewards": _dump(r.rewards),
            "base_model": _dump(r.base_model),
        },
    ),
    "publish": StageSpec("publish", ("phase3", "evaluate", "curate"), "infimmr_core.publish", ("huggingface-hub",), _publish_config),
}


def uses_base(stage: str, recipe: Recipe) -> bool:
    """Does `stage` read the base stage's artifact? Only when the recipe has that stage, and only where the base model
    is used: curation's generation (its shards, and the merge whose key stands for them), phase 1's start, evaluation's
    `base` row."""
    if recipe.warmup is None or BASE_STAGE not in SPECS[stage].upstream:
        return False
    if stage in (SHARD, "curate"):
        return _shards_use_base(recipe)
    if stage == "evaluate":
        return "base" in recipe.evaluation.models
    return True


def upstream_of(stage: str, recipe: Recipe) -> tuple[str, ...]:
    """The stages whose artifacts `stage` reads, for this recipe. Evaluation reads the checkpoints it scores (its
    upstream names are `evaluation.models` labels)."""
    upstream = tuple(u for u in SPECS[stage].upstream if u != BASE_STAGE or uses_base(stage, recipe))
    if stage == "evaluate":
        upstream = tuple(u for u in upstream if u in recipe.evaluation.models)
    return upstream


def pipeline_stages(recipe: Recipe) -> tuple[str, ...]:
    """The stages a run of this recipe walks, in order: STAGES, without `base` when the recipe has no warm-up."""
    return tuple(s for s in STAGES if s != BASE_STAGE or recipe.warmup is not None)


class ArtifactRef(BaseModel):
    """What travels between stages: a small, hashable pointer to a stored artifact."""

    stage: str
    key: str
    uri: str
    digest: str = Field(description="Content digest (from the manifest): downstream keys depend on it.")
    path: str | None = Field(
        None, description="One file inside the artifact (a curation shard); then `digest` is that file's sha256."
    )
    metrics: dict[str, Any] = Field(default_factory=dict)
    reused: bool = Field(False, description="True when the artifact was already in the store and nothing ran.")

    @classmethod
    def from_manifest(cls, store: ArtifactStore, manifest: Manifest, reused: bool) -> ArtifactRef:
        return cls(
            stage=manifest.stage, key=manifest.key, uri=store.artifact_uri(manifest.stage, manifest.key),
            digest=manifest.digest, metrics=manifest.metrics, reused=reused,
        )


def _file_refs(store: ArtifactStore, ref: ArtifactRef, wanted: Callable[[str], bool]) -> list[ArtifactRef]:
    manifest = store.manifest(ref.stage, ref.key)
    if manifest is None:
        raise UpstreamMissing(f"{ref.stage} artifact {ref.key} is not in the store {store.uri}")
    files = sorted((f for f in manifest.files if wanted(f.path)), key=lambda f: f.path)
    return [ref.model_copy(update={"digest": f.sha256, "path": f.path, "metrics": {}}) for f in files]


def shard_refs(store: ArtifactStore, collect: ArtifactRef) -> dict[str, ArtifactRef]:
    """Shard name (shard-00003) -> a ref to that shard's file in the curate-collect artifact, in shard order."""
    refs = _file_refs(store, collect, lambda path: path.startswith(f"{SHARD_DIR}/"))
    return {ref.path.rsplit("/", 1)[-1].removesuffix(".parquet"): ref for ref in refs if ref.path}


def merge_inputs(store: ArtifactStore, collect: ArtifactRef, shards: dict[str, ArtifactRef]) -> dict[str, ArtifactRef]:
    """The curate stage's inputs: the collect part's ledger files (not its shards) and every shard's artifact."""
    ledger = _file_refs(store, collect, lambda path: path in LEDGER_FILES)
    return {COLLECT_PREFIX + ref.path: ref for ref in ledger if ref.path} | shards


def _uses_vllm(recipe: Recipe, stage: str) -> bool:
    # The merge generates nothing, but its key stands for the whole curate stage (it holds no part digests).
    if stage in (SHARD, "curate"):
        c = recipe.curation
        return "vllm" in {c.captioning.generation.backend, c.difficulty.generation.backend}
    return stage == "evaluate" and recipe.evaluation.generation.backend == "vllm"


def _holds(tree: Any, field: str, matches: Callable[[Any], bool]) -> bool:
    """Does any object in a config slice have `field` with a value that `matches`?"""
    if isinstance(tree, dict):
        return any((k == field and matches(v)) or _holds(v, field, matches) for k, v in tree.items())
    return isinstance(tree, list) and any(_holds(item, field, matches) for item in tree)


# Builders of things a recipe may ask for instead of real ones: the tiny model, synthetic data, offline benchmark
# fixtures. Their code is part of a stage's code only when the stage's slice of the recipe uses them, so a fixture
# edit never changes the key of a real recipe. Production code imports them only where it uses them.
CONDITIONAL_CODE: dict[str, Callable[[dict[str, Any]], bool]] = {
    "infimmr_core.tiny_model": lambda sliced: _holds(sliced, "name_or_path", lambda v: v == "tiny"),
    "infimmr_core.data.synthetic": lambda sliced: _holds(sliced, "kind", lambda v: str(v).startswith("synthetic")),
    "infimmr_core.data.digit_sums": lambda sliced: _holds(sliced, "kind", lambda v: str(v).startswith("synthetic_sum")),
    "infimmr_core.evaluation.fixtures": lambda sliced: _holds(sliced, "source", lambda v: v == "fixture"),
}


def stage_code(module: str, sliced: dict[str, Any]) -> tuple[str, ...]:
    """The modules whose structure is part of a stage's key: its module's import closure, with each conditional
    builder only when the slice uses it."""
    used = {name for name, uses in CONDITIONAL_CODE.items() if uses(sliced)}
    return code_closure(module, frozenset(CONDITIONAL_CODE) - used)


def key_inputs(stage: str, recipe: Recipe, upstream_digests: dict[str, str]) -> dict[str, Any]:
    spec = SPECS[stage]
    upstream = upstream_of(stage, recipe)
    missing = set(upstream) - set(upstream_digests)
    if missing:
        raise ValueError(f"stage {stage} needs the digests of {sorted(missing)}")
    libraries = spec.libraries + (("vllm",) if _uses_vllm(recipe, stage) else ())
    sliced = spec.config(recipe)
    return {
        "stage": stage,
        "config": sliced,
        "upstream": {name: upstream_digests[name] for name in upstream},
        "code": code_hash(stage_code(spec.module, sliced)),
        "libraries": library_versions(libraries),
    }


def stage_key(stage: str, recipe: Recipe, upstream_digests: dict[str, str]) -> str:
    return key_of(key_inputs(stage, recipe, upstream_digests))


def downstream_of(stages: set[str] | list[str]) -> set[str]:
    """The given stages and everything that (transitively) reads them."""
    closed = set(stages)
    for name in STAGES:  # STAGES is topologically ordered
        if set(SPECS[name].upstream) & closed:
            closed.add(name)
    return closed


class UpstreamMissing(RuntimeError):
    pass


class StagePlan(BaseModel):
    """A stage with its inputs fixed: its key, computed once, and everything that went into it."""

    stage: str
    key: str
    key_inputs: dict[str, Any]
    replace: bool = Field(False, description="A forced recompute: its commit replaces the stored artifact (beside "
                          "it, then switching over) instead of adopting it.")


def plan_stage(stage: str, recipe: Recipe, upstream: dict[str, ArtifactRef]) -> StagePlan:
    inputs = key_inputs(stage, recipe, {name: ref.digest for name, ref in upstream.items()})
    return StagePlan(stage=stage, key=key_of(inputs), key_inputs=inputs)


def produce(
    store: ArtifactStore, plan: StagePlan, run: Callable[[StagePlan], Manifest], *, force: bool = False,
    single_flight: bool = True, lease_seconds: float = LEASE_SECONDS,
) -> ArtifactRef:
    """The one path from a key to an artifact: the stored artifact when its manifest exists (unless forced), else
    what `run` stores. The Prefect stage task and the CLI both go through here.

    Single flight: `run` is called only while this run holds the key's lease (infimmr_core.lease), so two runs that
    need the same key compute it once; the other waits, finds it stored and reuses it. `single_flight=False` is for
    a `run` that hands the stage to another process which goes through here itself (a stage deployment).
    `lease_seconds` is the recipe's store.lease_seconds: how long the lease outlives its last renewal."""
    if not force and (manifest := store.manifest(plan.stage, plan.key)):
        return ArtifactRef.from_manifest(store, manifest, reused=True)
    work = plan.model_copy(update={"replace": force})
    if not single_flight:
        return ArtifactRef.from_manifest(store, run(work), reused=False)
    with holding(store, plan.stage, plan.key, ttl=lease_seconds, on_wait=partial(_say_waiting, store, plan)):
        if not force and (manifest := store.manifest(plan.stage, plan.key)):  # the run we waited for stored it
            return ArtifactRef.from_manifest(store, manifest, reused=True)
        return ArtifactRef.from_manifest(store, run(work), reused=False)


def leads_its_key(stage: str, recipe: Recipe) -> bool:
    """Does this process take the key's lease (single flight)? Every node of a multi-node phase runs the same stage at
    the same key, and the phase finishes only with all of them: rank 0 holds the lease, the other ranks join it
    without one (waiting for it would deadlock the rendezvous)."""
    if stage.startswith("phase") and stage.removeprefix("phase").isdigit():
        return recipe.phases[int(stage.removeprefix("phase"))].distributed.machine_rank == 0
    return True


def _say_waiting(store: ArtifactStore, plan: StagePlan, holder: LeaseRecord | None) -> None:
    who = f"{holder.owner} (host {holder.host}, pid {holder.pid})" if holder else "a run whose lease is unreadable"
    _log.warning("%s: key %s is being computed by %s in %s; waiting for it", plan.stage, plan.key, who, store.uri)


def stored_ref(store: ArtifactStore, stage: str, recipe: Recipe, upstream: dict[str, ArtifactRef]) -> ArtifactRef | None:
    """The stored artifact for `stage` given its inputs, or None when it has not been produced."""
    manifest = store.manifest(stage, plan_stage(stage, recipe, upstream).key)
    return ArtifactRef.from_manifest(store, manifest, reused=True) if manifest else None


class PartOutcome(Protocol):
    ref: ArtifactRef
    state: str  # "completed" | "cached"


Outcome = TypeVar("Outcome", bound=PartOutcome)


def curate_from_parts(
    store: ArtifactStore, recipe: Recipe, *, force: bool,
    run_part: Callable[[str, dict[str, ArtifactRef]], Outcome],
    run_shards: Callable[[dict[str, dict[str, ArtifactRef]]], dict[str, Outcome]],
    upstream: dict[str, ArtifactRef] | None = None,
) -> tuple[Outcome | None, dict[str, Outcome]]:
    """The curate stage from its parts: collect, then every shard, then the merge; each part is reused when stored,
    so a rerun after a failure redoes only what failed. How a part runs (a Prefect task, a child process under a
    progress bar) is the caller's; what runs, in which order, on which inputs, is decided here. `upstream` holds the
    curate stage's own inputs (the base stage's artifact, when the recipe has one).

    Returns the merge's outcome and every part's, or (None, {}) when the curate artifact is already stored (then
    nothing ran and no part was looked at)."""
    base = {name: ref for name, ref in (upstream or {}).items() if name in upstream_of("curate", recipe)}
    if not force and stored_ref(store, "curate", recipe, base) is not None:
        return None, {}
    collect = run_part(COLLECT, {})
    shards = run_shards({name: {"shard": ref, **base} for name, ref in shard_refs(store, collect.ref).items()})
    merged = run_part("curate", merge_inputs(store, collect.ref, {name: o.ref for name, o in shards.items()}) | base)
    return merged, {COLLECT: collect, **shards}


def resolve_upstream(store: ArtifactStore, stage: str, recipe: Recipe) -> dict[str, ArtifactRef]:
    """The stored inputs of `stage` for this recipe, walking the graph from the start; a clear error names the first
    stage that has to run before this one can."""
    needed = _ancestors(stage, recipe)
    refs, missing = stored_chain(store, recipe, [name for name in STAGES if name in needed])
    if missing is not None:
        raise UpstreamMissing(
            f"stage {stage} needs the output of stage {missing}, which is not in the store {store.uri} for this "
            f"recipe: run `infimmr stage {missing}` (or `infimmr run`) first"
        )
    return {u: refs[u] for u in upstream_of(stage, recipe)}


def stored_chain(
    store: ArtifactStore, recipe: Recipe, stages: list[str] | tuple[str, ...],
) -> tuple[dict[str, ArtifactRef], str | None]:
    """The stored artifact of each of `stages` (in graph order, each one's upstream among them), looked up by key as
    `produce` would; stops at the first stage that is not stored and names it (None when every one is)."""
    refs: dict[str, ArtifactRef] = {}
    for name in stages:
        ref = stored_ref(store, name, recipe, {u: refs[u] for u in upstream_of(name, recipe)})
        if ref is None:
            return refs, name
        refs[name] = ref
    return refs, None


def _ancestors(stage: str, recipe: Recipe) -> set[str]:
    found: set[str] = set()
    todo = list(upstream_of(stage, recipe))
    while todo:
        name = todo.pop()
        if name not in found:
            found.add(name)
            todo.extend(upstream_of(name, recipe))
    return found
