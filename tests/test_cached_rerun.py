"""`infimmr run` when every stage is stored (issue 15): answered from the store, without starting Prefect's temporary
server, with the same table and JSON a run through Prefect prints.

The store holds a small artifact at each stage's real key (computed by the real graph from the real recipe), so the
test runs in seconds; what a stage contains is not what the CLI reads to decide. Every temporary server the CLI might
start is made to exit at once (the injection of test_reliability_operator): a run that needs one fails with exit 3,
so the fast path is observed, not assumed. `benchmarks/perf/rerun.py` does the same on a really computed store.
"""

from __future__ import annotations

import json

import pytest
from test_reliability_operator import _cli_without_api, _run_cli

from infimmr_core.evaluation.curriculum_view import LEGEND
from infimmr_core.recipes import load_recipe
from infimmr_core.stages import ArtifactRef, pipeline_stages, plan_stage, upstream_of
from infimmr_core.store import LocalStore

CURRICULUM = {"models": ["base"], "columns": ["synthetic-text"], "n": {"synthetic-text": 4},
              "rows": [{"label": "base", "kind": "measured", "scorer": "official", "scores": {"synthetic-text": 25.0}}]}


def store_every_stage(tmp_path, but: str | None = None) -> tuple[str, dict[str, ArtifactRef]]:
    """A store with an artifact at the key of every stage of `smoke` (but `but`, the last stage to leave out), each
    upstream's digest in the next key, exactly as a run would chain them."""
    store = LocalStore(tmp_path / "store", cache_dir=tmp_path / "cache")
    recipe = load_recipe("smoke")
    recipe.store.uri = store.uri
    refs: dict[str, ArtifactRef] = {}
    for stage in pipeline_stages(recipe):
        if stage == but:
            break
        plan = plan_stage(stage, recipe, {name: refs[name] for name in upstream_of(stage, recipe)})
        folder = tmp_path / "made" / stage
        folder.mkdir(parents=True)
        (folder / "stage.txt").write_text(stage)
        if stage == "evaluate":
            (folder / "curriculum.json").write_text(json.dumps(CURRICULUM))
        manifest = store.put_dir(stage, plan.key, folder, key_inputs=plan.key_inputs, metrics={"seconds": 1.5})
        refs[stage] = ArtifactRef.from_manifest(store, manifest, reused=True)
    return store.uri, refs


@pytest.mark.slow  # 20 s on the shared 2-core box (keys of 7 stages, then the CLI's 5 s)
def test_all_stored_rerun_starts_no_prefect_server_and_prints_the_run(tmp_path):
    store_uri, refs = store_every_stage(tmp_path)
    env = _cli_without_api(tmp_path, TEST_SERVER_EXIT_CODE="7", PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="5")
    proc = _run_cli(["run", "--recipe", "smoke", "--store", store_uri, "--json"], env, tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]  # the old code started the (injected, failing) server: exit 3
    assert "temporary server" in proc.stderr and "did not answer" not in proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["recipe"] == "smoke" and summary["store"] == store_uri and summary["flow_run_id"] is None
    assert {name: (s["state"], s["prefect_state"], s["uri"], s["digest"], s["metrics"])
            for name, s in summary["stages"].items()} == {
        name: ("cached", None, ref.uri, ref.digest, {"seconds": 1.5}) for name, ref in refs.items()}
    for name, ref in refs.items():  # the table a run through Prefect prints, then the curriculum
        assert f"  {name:<9} {'cached':<10} {0.0:>8.1f} s  {ref.uri}" in proc.stderr, proc.stderr
    assert LEGEND in proc.stderr and "synthetic-text (n=4)" in proc.stderr
    assert not (tmp_path / "prefect-home" / "prefect.db").exists(), "a Prefect database was created"


@pytest.mark.slow  # imports the flows and waits for the (failing) server: 30 s on a loaded 2-core box
@pytest.mark.parametrize("case", ["publish not stored", "--always-prefect"])
def test_a_rerun_with_work_to_do_or_asked_to_goes_through_prefect(tmp_path, case):
    """The run needs Prefect, so it starts the temporary server (which the injection makes fail: exit 3, nothing
    ran)."""
    store_uri, _ = store_every_stage(tmp_path, but="publish" if case == "publish not stored" else None)
    env = _cli_without_api(tmp_path, TEST_SERVER_EXIT_CODE="7", PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="5")
    extra = ["--always-prefect"] if case == "--always-prefect" else []
    proc = _run_cli(["run", "--recipe", "smoke", "--store", store_uri, *extra], env, tmp_path, timeout=300)
    assert proc.returncode == 3 and "did not answer within 5 s" in proc.stderr, proc.stderr[-3000:]
