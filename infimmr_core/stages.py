"""The pipeline as data: which stages exist, what each depends on, what code and config shape its output.

curate -> phase1 -> phase2 -> phase3 -> evaluate -> publish, where every phase also reads the curated pools and
publish also reads the evaluation. Orchestrators (the Prefect flows, the CLI) walk this graph; they add no logic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Literal

from pydantic import BaseModel, Field

from infimmr_core.config import Recipe
from infimmr_core.keys import code_hash, key_of, library_versions
from infimmr_core.store import ArtifactStore, Manifest

StageName = Literal["curate", "phase1", "phase2", "phase3", "evaluate", "publish"]
STAGES: tuple[str, ...] = ("curate", "phase1", "phase2", "phase3", "evaluate", "publish")

_ML_LIBS = ("torch", "transformers", "tokenizers", "datasets", "pillow", "math-verify")


@dataclass(frozen=True)
class StageSpec:
    name: str
    upstream: tuple[str, ...]
    module: str  # infimmr_core module whose `run(ctx)` produces the artifact
    libraries: tuple[str, ...]
    config: Callable[[Recipe], dict[str, Any]]


def _dump(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json", by_alias=True)


def _phase_config(number: int) -> Callable[[Recipe], dict[str, Any]]:
    def config(recipe: Recipe) -> dict[str, Any]:
        sliced = {"phase": _dump(recipe.phases[number]), "prompts": _dump(recipe.prompts), "rewards": _dump(recipe.rewards)}
        if number == 1:  # later phases start from the previous phase's artifact, whose digest is in the key
            sliced["base_model"] = _dump(recipe.base_model)
        return sliced

    return config


def _publish_config(recipe: Recipe) -> dict[str, Any]:
    # The card shows the whole recipe, so all of it shapes this artifact, except where it ran.
    return {k: v for k, v in _dump(recipe).items() if k not in {"store", "runtime"}}


SPECS: dict[str, StageSpec] = {
    "curate": StageSpec(
        "curate", (), "infimmr_core.curation", _ML_LIBS,
        lambda r: {
            "curation": _dump(r.curation), "base_model": _dump(r.base_model),
            "prompts": _dump(r.prompts), "rewards": _dump(r.rewards),
        },
    ),
    **{
        f"phase{n}": StageSpec(
            f"phase{n}", ("curate",) if n == 1 else ("curate", f"phase{n - 1}"), "infimmr_core.training",
            _ML_LIBS + ("trl", "accelerate", "peft"), _phase_config(n),
        )
        for n in (1, 2, 3)
    },
    # Every phase is upstream so the report can show the whole curriculum (base, phase 1, 2, 3); the base model is
    # evaluated too, so its spec is part of this stage's slice.
    "evaluate": StageSpec(
        "evaluate", ("phase1", "phase2", "phase3"), "infimmr_core.evaluation", _ML_LIBS,
        lambda r: {
            "evaluation": _dump(r.evaluation), "prompts": _dump(r.prompts), "rewards": _dump(r.rewards),
            "base_model": _dump(r.base_model),
        },
    ),
    "publish": StageSpec("publish", ("phase3", "evaluate", "curate"), "infimmr_core.publish", ("huggingface-hub",), _publish_config),
}


class ArtifactRef(BaseModel):
    """What travels between stages: a small, hashable pointer to a stored artifact."""

    stage: str
    key: str
    uri: str
    digest: str = Field(description="Content digest (from the manifest): downstream keys depend on it.")
    metrics: dict[str, Any] = Field(default_factory=dict)
    reused: bool = Field(False, description="True when the artifact was already in the store and nothing ran.")

    @classmethod
    def from_manifest(cls, store: ArtifactStore, manifest: Manifest, reused: bool) -> ArtifactRef:
        return cls(
            stage=manifest.stage, key=manifest.key, uri=store.artifact_uri(manifest.stage, manifest.key),
            digest=manifest.digest, metrics=manifest.metrics, reused=reused,
        )


def _uses_vllm(recipe: Recipe, stage: str) -> bool:
    if stage == "curate":
        c = recipe.curation
        return "vllm" in {c.captioning.generation.backend, c.difficulty.generation.backend}
    return stage == "evaluate" and recipe.evaluation.generation.backend == "vllm"


def key_inputs(stage: str, recipe: Recipe, upstream_digests: dict[str, str]) -> dict[str, Any]:
    spec = SPECS[stage]
    missing = set(spec.upstream) - set(upstream_digests)
    if missing:
        raise ValueError(f"stage {stage} needs the digests of {sorted(missing)}")
    libraries = spec.libraries + (("vllm",) if _uses_vllm(recipe, stage) else ())
    return {
        "stage": stage,
        "config": spec.config(recipe),
        "upstream": {name: upstream_digests[name] for name in spec.upstream},
        "code": code_hash(spec.module),
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


def stored_ref(store: ArtifactStore, stage: str, recipe: Recipe, upstream: dict[str, ArtifactRef]) -> ArtifactRef | None:
    """The stored artifact for `stage` given its inputs, or None when it has not been produced."""
    key = stage_key(stage, recipe, {n: r.digest for n, r in upstream.items()})
    manifest = store.manifest(stage, key)
    return ArtifactRef.from_manifest(store, manifest, reused=True) if manifest else None


def resolve_upstream(store: ArtifactStore, stage: str, recipe: Recipe) -> dict[str, ArtifactRef]:
    """The stored inputs of `stage` for this recipe, walking the graph from the start; a clear error names the first
    stage that has to run before this one can."""
    needed = _ancestors(stage)
    refs: dict[str, ArtifactRef] = {}
    for name in STAGES:
        if name not in needed:
            continue
        ref = stored_ref(store, name, recipe, {u: refs[u] for u in SPECS[name].upstream})
        if ref is None:
            raise UpstreamMissing(
                f"stage {stage} needs the output of stage {name}, which is not in the store {store.uri} for this "
                f"recipe: run `infimmr stage {name}` (or `infimmr run`) first"
            )
        refs[name] = ref
    return {u: refs[u] for u in SPECS[stage].upstream}


def _ancestors(stage: str) -> set[str]:
    found: set[str] = set()
    todo = list(SPECS[stage].upstream)
    while todo:
        name = todo.pop()
        if name not in found:
            found.add(name)
            todo.extend(SPECS[name].upstream)
    return found
