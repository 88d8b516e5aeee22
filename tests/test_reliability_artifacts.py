"""Reproducible artifacts (issue 13, item 4): the same key yields the same content, and nothing host-specific or
executable is stored or published.

A phase run twice from scratch, in two work directories, stores the same digest: its artifact holds only what defines
it (weights, processor, the training curve's values), while wall-clock figures and TensorBoard's event files go to the
phase's run record, which no key reads. No artifact holds a pickle, and the model card publishes the recipe exactly as
the publish key holds it: no store URI, cache path or endpoint.
"""

from __future__ import annotations

import json
import zipfile
from io import BytesIO
from pathlib import Path

import pytest
from test_training import finish, recipe_for, seed_curate, start_phase, stored_phase

from infimmr_core import publish
from infimmr_core.layout import METRICS_FILE, RUN_RECORD_SUFFIX, TIMINGS_FILE
from infimmr_core.recipes import load_recipe
from infimmr_core.run_record import is_wall_clock, split_history
from infimmr_core.stages import key_inputs, stage_key
from infimmr_core.store import LocalStore

pytestmark = pytest.mark.reliability


def _is_pickle(data: bytes) -> bool:
    """A raw pickle (protocol 2+ starts with PROTO) or torch.save's zip archive holding one."""
    if data[:1] == b"\x80" and data[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return True
    if data[:4] == b"PK\x03\x04":
        with zipfile.ZipFile(BytesIO(data)) as archive:
            return any(name.endswith(".pkl") for name in archive.namelist())
    return False


def _run_phase_in(root: Path, tiny_model_dir: Path):
    """Phase 1 of the smoke recipe from scratch in its own store, cache and work directory, reporting to TensorBoard
    (whose event files name the host and the time)."""
    root.mkdir()
    store = LocalStore(root / "store", cache_dir=root / "cache")
    recipe = recipe_for(store, tiny_model_dir, max_steps=2, save_steps=1, keep_last_checkpoints=1,
                        report_to=["tensorboard"])
    curate = seed_curate(store, recipe, root)
    proc, key, _ = start_phase(recipe, curate, root)
    finish(proc, timeout=400)
    return store, key


def test_a_phase_computed_twice_stores_the_same_digest_and_no_host_data(tmp_path, tiny_model_dir):
    first_store, first_key = _run_phase_in(tmp_path / "first-machine", tiny_model_dir)
    second_store, second_key = _run_phase_in(tmp_path / "second-machine", tiny_model_dir)
    assert first_key == second_key, "the two runs do not even share a key: the test compares nothing"
    first, second = first_store.manifest("phase1", first_key), second_store.manifest("phase1", second_key)

    differing = {f.path for f in first.files} ^ {f.path for f in second.files} | {
        a.path for a in first.files for b in second.files if a.path == b.path and a.sha256 != b.sha256}
    assert first.digest == second.digest, f"the same key stored different content: {sorted(differing)}"

    root = first_store.get_dir("phase1", first_key)
    for entry in first.files:
        data = (root / entry.path).read_bytes()
        assert not _is_pickle(data), f"{entry.path} is a pickle: loading the artifact would run code"
        for local in (tmp_path, tiny_model_dir):  # the work directories, and where the starting model was read
            assert str(local).encode() not in data, f"{entry.path} names a local path of the machine that made it"
    assert "model/training_args.bin" not in {f.path for f in first.files}

    # The training curve keeps every value a step computed, and no wall-clock figure.
    metrics, history = stored_phase(first_store, first_key)
    steps = [h for h in history if "loss" in h]
    assert [h["step"] for h in steps] == [1, 2] and {"reward", "loss", "learning_rate"} <= steps[0].keys()
    assert not [k for h in history for k in h if is_wall_clock(k)], history
    assert metrics["steps"] == 2 and metrics["tokens_per_second"] > 0, "the stage's metrics lost the throughput"

    # The timings and TensorBoard's events are kept beside it, in the run record no key reads.
    record = first_store.manifest(f"phase1{RUN_RECORD_SUFFIX}", first_key)
    assert record is not None, "the run record was not stored"
    record_root = first_store.get_dir(f"phase1{RUN_RECORD_SUFFIX}", first_key)
    timings = [json.loads(line) for line in (record_root / TIMINGS_FILE).read_text().splitlines()]
    assert [t["step"] for t in timings if "tokens_per_second" in t] == [1, 2]
    assert any(f.path.startswith("tensorboard/") for f in record.files), [f.path for f in record.files]


@pytest.mark.parametrize(("field", "wall_clock"), [
    ("loss", False), ("reward", False), ("rewards/accuracy/mean", False), ("learning_rate", False), ("step", False),
    ("epoch", False), ("total_flos", False), ("num_tokens", False), ("completions/mean_length", False),
    ("step_time", True), ("train_runtime", True), ("train_samples_per_second", True), ("eval_runtime", True),
    ("tokens_per_second", True), ("wall_seconds_since_log", True), ("seconds/generation", True),
    ("model_tflops_per_second", True), ("mfu", True),
])
def test_wall_clock_fields(field, wall_clock):
    assert is_wall_clock(field) is wall_clock


def test_split_history_keeps_values_and_moves_timings_with_their_step():
    history = [
        {"step": 1, "loss": 0.5, "reward": 0.25, "step_time": 1.2, "seconds/generation": 0.7, "mfu": 0.01},
        {"step": 2, "loss": 0.4, "reward": 0.5},
        {"step": 2, "train_runtime": 9.5, "train_loss": 0.45, "train_samples_per_second": 3.1},
    ]
    content, timings = split_history(history)
    assert content == [{"step": 1, "loss": 0.5, "reward": 0.25}, {"step": 2, "loss": 0.4, "reward": 0.5},
                       {"step": 2, "train_loss": 0.45}]
    assert timings == [{"step": 1, "step_time": 1.2, "seconds/generation": 0.7, "mfu": 0.01},
                       {"step": 2, "train_runtime": 9.5, "train_samples_per_second": 3.1}]


# --- the card ---------------------------------------------------------------------------------------------------

def _card(tmp_path: Path, tiny_model_dir: Path, overrides: list[str], name: str) -> tuple[str, str, list[str]]:
    """The publish stage's card for a smoke recipe with these overrides, its publish key, and the files it made."""
    import shutil

    from infimmr_core.context import StageContext
    from infimmr_core.layout import MODEL_DIR

    inputs = {stage: tmp_path / "inputs" / stage for stage in ("curate", "phase3", "evaluate")}
    if not inputs["phase3"].exists():
        shutil.copytree(tiny_model_dir, inputs["phase3"] / MODEL_DIR)
        # A pickle an older phase left beside the weights must never reach the Hub folder.
        (inputs["phase3"] / MODEL_DIR / "training_args.bin").write_bytes(b"\x80\x04K\x01.")
        (inputs["curate"]).mkdir(parents=True)
        (inputs["curate"] / "report.json").write_text(json.dumps({"rows_in": 4, "kept": 4}))
        inputs["evaluate"].mkdir(parents=True)
        (inputs["evaluate"] / "scores.json").write_text(json.dumps({"synthetic-text": {"n": 4, "accuracy": 50.0}}))
    recipe = load_recipe("smoke", overrides)
    digests = {"phase3": "a" * 64, "evaluate": "b" * 64, "curate": "c" * 64}
    out = tmp_path / name
    out.mkdir()
    ctx = StageContext(stage="publish", recipe=recipe, inputs=inputs, out_dir=out, work_dir=tmp_path / "work",
                       cache_dir=tmp_path / "cache", device="cpu", upstream_digests=digests)
    publish.run(ctx)
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    return (out / publish.HUB_DIR / "README.md").read_text(), stage_key("publish", recipe, digests), files


INTERNAL = [
    "store.uri=s3://internal-bucket/team-prefix", "store.endpoint_url=http://10.1.2.3:9000",
    "store.cache_dir=/srv/private-cache", "runtime.stage_timeout_seconds=1234567",
]


def test_the_card_publishes_no_store_uri_cache_path_or_endpoint(tmp_path, tiny_model_dir):
    card, _, files = _card(tmp_path, tiny_model_dir, INTERNAL, "internal")
    for leak in ("internal-bucket", "10.1.2.3", "/srv/private-cache", "1234567", "cache_dir", "endpoint"):
        assert leak not in card, f"the card publishes {leak!r}"
    assert "name: smoke" in card and "learning_rate" in card, "the card lost the recipe"
    assert not [f for f in files if f.endswith((".bin", ".pkl", ".pt", ".pth"))], files


def test_the_publish_key_covers_everything_the_card_contains(tmp_path, tiny_model_dir):
    """Operational settings change neither the key nor the card; a setting that changes the card changes the key."""
    plain_card, plain_key, _ = _card(tmp_path, tiny_model_dir, [], "plain")
    internal_card, internal_key, _ = _card(tmp_path, tiny_model_dir, INTERNAL, "internal")
    assert internal_key == plain_key and internal_card == plain_card
    changed_card, changed_key, _ = _card(tmp_path, tiny_model_dir, ["phases.2.learning_rate=3e-6"], "changed")
    assert changed_card != plain_card and changed_key != plain_key
