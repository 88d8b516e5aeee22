"""The demo's pipeline at small sizes, through the real stages: the warm-up (`base`), curation with rollouts of the
warmed-up policy, GRPO and the evaluate stage, each keyed and stored as in a pipeline run.

What it holds: every phase starts from the weights of the stage before it (by digest), curation measured pass rates
with the warmed-up policy, and the evaluate stage reports the paired change of held-out accuracy with its 95% interval.
That phase 1 learns beyond noise is tests/test_demo_learns.py's job (default suite; here the warm-up stops at a lower
target and the pool is the difficulty band's, where GRPO's gain was measured at -13.5, +6.0 and -15.0 points); the
full demo's figures come from `benchmarks/demo_seeds.py`. The stages run in this process through the worker's own
entry point (no Prefect, no child processes). Slow: about 2 minutes of CPU.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infimmr_core import worker
from infimmr_core.layout import MODEL_DIR
from infimmr_core.models import load_model
from infimmr_core.recipes import load_recipe
from infimmr_core.stages import ArtifactRef, curate_from_parts, plan_stage, produce, upstream_of
from infimmr_core.store import LocalStore, Manifest
from infimmr_core.weights import weights_digest

# Small sizes: the text task alone in the warm-up (no vision pre-warm), short phases 2 and 3 only to check hand-offs.
SMALL = [
    "warmup.tasks=[{name: sum-text, input: text, source: {kind: synthetic_sum_text, count: 400, seed: 101}}]",
    "warmup.vision_steps=0",
    "curation.sources=[{kind: synthetic_sum_text, count: 512, seed: 201}]",
    # Phases 2 and 3 run one step on the text pool: enough to check the hand-offs without image tasks in the warm-up.
    "phases.2.input=text", "phases.3.input=text",
    "phases.2.max_steps=1", "phases.3.max_steps=1",
    "phases.2.per_device_train_batch_size=16", "phases.3.per_device_train_batch_size=16",
    "evaluation.sets=[{name: sum-text, kind: synthetic_sum_text, count: 200, seed: 7001, input: text}]",
    "evaluation.models=[base, phase1]",
]


class InProcess:
    """Stages through the one key -> artifact path (`produce`), each run by the worker's main in this process."""

    def __init__(self, store: LocalStore, recipe, tmp: Path):
        self.store, self.recipe, self.tmp = store, recipe, tmp

    def __call__(self, stage: str, upstream: dict[str, ArtifactRef]) -> ArtifactRef:
        plan = plan_stage(stage, self.recipe, upstream)

        def run(plan) -> Manifest:
            spec, result = self.tmp / f"{stage}-spec.json", self.tmp / f"{stage}-result.json"
            spec.write_text(json.dumps({
                "stage": stage, "key": plan.key, "key_inputs": plan.key_inputs,
                "recipe": self.recipe.model_dump(mode="json", by_alias=True),
                "upstream": {n: r.model_dump(mode="json") for n, r in upstream.items()}, "result_path": str(result),
            }))
            worker.main(str(spec))
            return Manifest.model_validate_json(result.read_text())

        return produce(self.store, plan, run)


def run_demo(recipe, tmp: Path) -> dict[str, ArtifactRef]:
    store = LocalStore(tmp / "store", cache_dir=tmp / "cache")
    recipe.store.uri, recipe.store.cache_dir = store.uri, str(store.cache_dir)
    stage = InProcess(store, recipe, tmp)
    refs = {"base": stage("base", {})}

    class Part:
        def __init__(self, ref):
            self.ref, self.state = ref, "completed"

    merged, _ = curate_from_parts(
        store, recipe, force=False, run_part=lambda name, up: Part(stage(name, up)),
        run_shards=lambda ups: {name: Part(stage("curate-shard", up)) for name, up in ups.items()},
        upstream={"base": refs["base"]},
    )
    refs["curate"] = merged.ref
    for name in ("phase1", "phase2", "phase3", "evaluate"):
        refs[name] = stage(name, {u: refs[u] for u in upstream_of(name, recipe)})
    return refs


def model_digest(ref: ArtifactRef, store_root: Path) -> str:
    return weights_digest(load_model(store_root / ref.stage / ref.key / MODEL_DIR))


@pytest.mark.slow
def test_phases_hand_off_their_weights_and_the_change_is_reported_with_its_interval(tmp_path):
    recipe = load_recipe("demo", SMALL)
    refs = run_demo(recipe, tmp_path)
    root = tmp_path / "store"

    curriculum = json.loads((root / "evaluate" / refs["evaluate"].key / "curriculum.json").read_text())
    measured = {r["label"]: r for r in curriculum["rows"] if r["scorer"] == "official" and r["kind"] == "measured"}
    change = next(r for r in curriculum["rows"] if r["scorer"] == "official" and r["label"] == "phase1 - base")
    low, high = change["intervals"]["sum-text"]
    print(f"\nheld-out sum-text (n=200): base {measured['base']['scores']['sum-text']}% -> phase1 "
          f"{measured['phase1']['scores']['sum-text']}%, change {change['scores']['sum-text']:+} points, "
          f"95% interval [{low:+}, {high:+}]")
    assert low <= change["scores"]["sum-text"] <= high

    # Every phase started from the weights of the stage before it, as they are stored.
    for stage, previous in (("phase1", "base"), ("phase2", "phase1"), ("phase3", "phase2")):
        assert refs[stage].metrics["start_weights"] == model_digest(refs[previous], root), stage

    # The curate stage rolled out the warmed-up policy (its pass rates are measured, not absent).
    report = json.loads((root / "curate" / refs["curate"].key / "report.json").read_text())
    assert sum(report["pass_rate_histogram"]) == report["kept"] > 0
