"""The publish stage against a local HTTP server speaking the Hub's API, with the real huggingface_hub client."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from infimmr_core import publish
from infimmr_core.context import StageContext
from infimmr_core.recipes import load_recipe
from infimmr_core.layout import MODEL_DIR
from tests.hub_server import start_hub

TOKEN = "hf_localtesttoken_3f9a1c7e5b2d4680"
SCORES = {
    "synthetic-image": {"n": 8, "accuracy": 12.5, "format_rate": 50.0, "protocol": {"decoding": "greedy", "max_new_tokens": 32}},
    "synthetic-text": {"n": 8, "accuracy": 25.0, "format_rate": 62.5, "protocol": {"decoding": "greedy", "max_new_tokens": 32}},
}
REPORT = {"rows_in": 48, "kept": 40, "filtered": 6, "quarantined": 2, "pools": {"text": 20, "image": 20}}


@pytest.fixture
def hub(monkeypatch):
    server, state = start_hub(TOKEN)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    yield state
    server.shutdown()


def publish_context(tmp_path, tiny_model_dir, attempt: int, **publish_cfg) -> StageContext:
    inputs = {name: tmp_path / "inputs" / name for name in ("curate", "phase3", "evaluate")}
    if not (inputs["phase3"] / MODEL_DIR).exists():
        shutil.copytree(tiny_model_dir, inputs["phase3"] / MODEL_DIR)
        (inputs["curate"] / "pools").mkdir(parents=True)
        (inputs["curate"] / "pools" / "text.jsonl").write_text('{"id": "t1", "problem": "1+1", "answer": "2"}\n')
        (inputs["curate"] / "report.json").write_text(json.dumps(REPORT))
        inputs["evaluate"].mkdir(parents=True)
        (inputs["evaluate"] / "scores.json").write_text(json.dumps(SCORES))
    recipe = load_recipe("smoke", [f"publish.{k}={v}" for k, v in publish_cfg.items()])
    out = tmp_path / f"out{attempt}"
    out.mkdir()
    return StageContext(stage="publish", recipe=recipe, inputs=inputs, out_dir=out, work_dir=tmp_path / "work",
                        cache_dir=tmp_path / "cache", device="cpu",
                        upstream_digests={"phase3": "a" * 64, "evaluate": "b" * 64, "curate": "c" * 64})


def test_publish_pushes_card_and_weights_once_and_never_leaks_the_token(hub, tmp_path, tiny_model_dir, capfd):
    from huggingface_hub import HfApi, hf_hub_download

    first = publish.run(publish_context(tmp_path, tiny_model_dir, 1, repo_id="local-user/infimmr-smoke", include_datasets="true"))
    second = publish.run(publish_context(tmp_path, tiny_model_dir, 2, repo_id="local-user/infimmr-smoke", include_datasets="true"))

    repo = hub.repos[("model", "local-user/infimmr-smoke")]
    assert repo.private, "repos are private by default"
    assert first["pushed"] and first["new_commit"] and first["commit"] == repo.commits[1].oid
    assert not second["new_commit"] and second["commit"] == first["commit"], "unchanged content made a new commit"
    assert [c.title for c in repo.commits] == ["initial commit", f"infimmr: smoke ({'a' * 12})"]
    assert hub.repos[("dataset", "local-user/infimmr-smoke-data")].private and first["dataset"]["new_commit"]
    assert not second["dataset"]["new_commit"]

    # What a user sees through the real client: weights, processor, generation config and the card.
    api = HfApi(endpoint=first["repo_url"].rsplit("/", 2)[0], token=TOKEN)
    files = set(api.list_repo_files("local-user/infimmr-smoke"))
    assert {"model.safetensors", "config.json", "generation_config.json", "README.md", "results.json"} <= files
    assert any(f.startswith(("preprocessor_config", "processor_config")) for f in files), files
    assert [c.commit_id for c in api.list_repo_commits("local-user/infimmr-smoke")][0] == first["commit"]
    card = open(hf_hub_download("local-user/infimmr-smoke", "README.md", cache_dir=tmp_path / "hf-cache",
                                endpoint=api.endpoint, token=TOKEN)).read()
    assert "| synthetic-image | 8 | 12.5 | 50.0 |" in card and '"decoding": "greedy"' in card
    assert '"rows_in": 48' in card and "name: smoke" in card and "a" * 64 in card
    assert "liu2025infimmr" in card and "peng2025lmmr1" in card

    # A private repo is invisible without the token, as on the Hub.
    with pytest.raises(Exception, match="404|Repository Not Found|not found"):
        HfApi(endpoint=api.endpoint, token=False).model_info("local-user/infimmr-smoke")

    # The token is in no log line, result or file.
    out, err = capfd.readouterr()
    assert TOKEN not in out + err
    assert TOKEN not in json.dumps([first, second])
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path
    for commit in repo.commits:
        assert all(TOKEN.encode() not in data for data in commit.files.values())


def test_publish_without_token_keeps_the_folder(tmp_path, tiny_model_dir, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    metrics = publish.run(publish_context(tmp_path, tiny_model_dir, 1, repo_id="local-user/x"))
    assert metrics == {"pushed": False, "reason": "$HF_TOKEN is not set"}
    assert (tmp_path / "out1" / "hub" / "README.md").is_file()


@pytest.mark.parametrize(
    "scores, header, row",
    [
        (SCORES, "| set | n | accuracy | format_rate |", "| synthetic-text | 8 | 25.0 | 62.5 |"),
        ({"a": {"n": 2, "accuracy": None}, "b": {"n": 3, "pass@1": 0.5}}, "| set | n | accuracy | pass@1 |", "| a | 2 |  |  |"),
        ({"a": {"n": 1, "by_source": {"x": 1}}}, "| set | n |", "| a | 1 |"),
    ],
)
def test_scores_table_renders_any_scalar_fields(scores, header, row):
    table = publish.scores_table(scores).splitlines()
    assert table[0] == header and row in table


def test_token_from_a_prefect_secret_block_only_for_the_publish_call(prefect_server, monkeypatch):
    from prefect.blocks.system import Secret
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from infimmr.tasks.secrets import hub_token

    monkeypatch.delenv("HF_TOKEN", raising=False)
    cfg = load_recipe("smoke", ["publish.repo_id=local-user/x", "publish.token_secret=infimmr-test-hf-token"]).publish
    with temporary_settings({PREFECT_API_URL: prefect_server}):
        Secret(value=TOKEN).save("infimmr-test-hf-token", overwrite=True)
        with hub_token(cfg):
            assert os.environ["HF_TOKEN"] == TOKEN
        assert "HF_TOKEN" not in os.environ
        with hub_token(cfg.model_copy(update={"token_secret": "no-such-block"})):
            assert "HF_TOKEN" not in os.environ  # publish then reports the missing token itself


CURRICULUM = {
    "columns": ["mathverse", "math500"],
    "rows": [
        {"label": "base", "kind": "measured", "scorer": "rule", "scores": {"mathverse": 30.0, "math500": 40.0}},
        {"label": "phase3", "kind": "measured", "scorer": "rule", "scores": {"mathverse": 35.5, "math500": None}},
        {"label": "Infi-MMR-3B", "kind": "published", "scorer": "published (not measured here)", "scores": {"mathverse": 43.68}},
    ],
}


@pytest.mark.parametrize(
    ("line",),
    [
        ("| model | scorer | mathverse | math500 |",),
        ("| base | rule | 30.0 | 40.0 |",),
        ("| phase3 | rule | 35.5 |  |",),
        ("| Infi-MMR-3B (published, not measured here) | published (not measured here) | 43.68 |  |",),
    ],
)
def test_curriculum_table_rows(line):
    assert line in publish.curriculum_table(CURRICULUM).splitlines()


def test_card_front_matter_carries_model_index_and_curriculum():
    import yaml

    from infimmr_core.recipes import load_recipe

    recipe = load_recipe("infimmr-3b")
    scores = {
        "mathverse": {"n": 3940, "accuracy": 35.5, "dataset": "AI4Math/MathVerse", "split": "testmini", "protocol": {"p": 1}},
        "broken": {"n": 0, "accuracy": None},
    }
    card = publish.model_card(recipe, scores, {"rows_in": 1}, {"phase3": "d" * 64}, CURRICULUM)
    _, front, body = card.split("---\n", 2)
    meta = yaml.safe_load(front)
    assert meta["base_model"] == "Qwen/Qwen2.5-VL-3B-Instruct"
    (index,) = meta["model-index"]
    assert index["name"] == "infimmr-3b"
    assert index["results"] == [{
        "task": {"type": "image-text-to-text", "name": "Multimodal math reasoning"},
        "dataset": {"name": "mathverse", "type": "AI4Math/MathVerse", "split": "testmini"},
        "metrics": [{"type": "accuracy", "value": 35.5, "name": "accuracy (rule-based, see protocol)"}],
    }]
    assert "### Curriculum" in body and "| base | rule | 30.0 | 40.0 |" in body
