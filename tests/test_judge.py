"""The LLM-judge path against a real OpenAI-compatible HTTP server on 127.0.0.1 that the test starts: the real client
code sends the requests; the server grades the way a judge model would (it compares the boxed answer with the
standard answer in the prompt), so the judged scores are known in advance."""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch

from infimmr_core.config import JudgeConfig
from infimmr_core.evaluation.stage import run
from infimmr_core.evaluation.benchmarks import mathverse_item, mathvista_item
from infimmr_core.evaluation.judge import JudgeClient, JudgeError, judge, parse_verdict
from infimmr_core.evaluation.scorers import SCORERS
from test_eval_stage import _context


class JudgeServer:
    """Chat-completions endpoint. Verdict prompts: "Judgement: 1" when the last \\boxed{} of the student response
    equals the standard answer's first token; extract prompts: the last \\boxed{} content."""

    def __init__(self):
        self.requests: list[dict] = []
        self.fail_next = 0  # answer this many requests with HTTP 503 first (retry path)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
                if server.fail_next:
                    server.fail_next -= 1
                    self.send_error(503)
                    return
                reply = json.dumps({"id": "x", "object": "chat.completion", "model": body["model"], "choices": [{
                    "index": 0, "finish_reason": "stop",
                    "message": {"role": "assistant", "content": server.grade(body["messages"][-1]["content"])},
                }]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @staticmethod
    def grade(prompt: str) -> str:
        boxes = re.findall(r"\\boxed\{([^{}]*)\}", prompt)
        if prompt.startswith("Extract"):
            return boxes[-1] if boxes else ""
        gold = prompt.split("[Standard answer]\n", 1)[1].split()[0]
        return f"The student's answer matches.\nJudgement: {int(bool(boxes) and boxes[-1] == gold)}"


@pytest.fixture
def judge_server():
    server = JudgeServer()
    server.thread.start()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


def _config(server, **kw) -> JudgeConfig:
    return JudgeConfig(**{"base_url": server.url, "model": "judge-test", "api_key_env": "INFIMMR_TEST_JUDGE_KEY", **kw})


def _verse(answer="B"):
    question = "Angle CED is ()\nChoices:\nA:40°\nB:60°\nC:120°\nD:140°"
    return mathverse_item({"sample_index": "1", "problem_index": "1", "problem_version": "Vision Only", "question": "",
                           "answer": answer, "question_type": "multi-choice", "question_for_eval": question}, "testmini")


def test_verdict_request_and_scores(judge_server, monkeypatch):
    monkeypatch.setenv("INFIMMR_TEST_JUDGE_KEY", "sk-test")
    client = JudgeClient(_config(judge_server))
    right = judge(client, SCORERS["mathverse"], _verse(), "<think>.</think><answer>\\boxed{B}</answer>")
    wrong = judge(client, SCORERS["mathverse"], _verse(), "<think>.</think><answer>\\boxed{C}</answer>")
    assert (right.correct, wrong.correct) == (True, False) and "Judgement: 1" in right.raw
    request = judge_server.requests[0]
    assert request["path"] == "/v1/chat/completions" and request["auth"] == "Bearer sk-test"
    body = request["body"]
    assert body["model"] == "judge-test" and body["temperature"] == 0 and body["max_tokens"] == 256
    prompt = body["messages"][0]["content"]
    # The judge sees the full question (MathVerse question_for_eval), the option behind the gold letter, the response.
    assert "Choices:\nA:40°" in prompt and "B (60°)" in prompt and "\\boxed{B}" in prompt


def test_extract_protocol_scores_the_judge_extraction_with_the_rule(judge_server):
    item = mathvista_item({"pid": "1", "question": "q", "choices": ["135°", "140°", "145°"], "answer": "145°",
                           "question_type": "multi_choice", "answer_type": "text", "query": "q"}, "")
    client = JudgeClient(_config(judge_server, api_key_env=None))
    result = judge(client, SCORERS["mathvista"], item, "so it is \\boxed{C}")
    assert result == type(result)(True, "C", "C")
    assert judge_server.requests[0]["auth"] is None


def test_retries_server_errors_then_fails_loudly(judge_server):
    judge_server.fail_next = 1
    client = JudgeClient(_config(judge_server, max_retries=1))
    assert parse_verdict(client.complete("[Standard answer]\n1\n\\boxed{1}")) is True
    judge_server.fail_next = 5
    with pytest.raises(JudgeError, match="503"):
        JudgeClient(_config(judge_server, max_retries=0)).complete("x")


@pytest.mark.parametrize("reply,verdict", [
    ("Judgement: 1", True), ("judgment: 0", False), ("**Judgement:** 1", True), ("1", True), ("0.", False),
    ("Reasoning... Judgement: 0\nJudgement: 1", True), ("I cannot tell", None),
])
def test_parse_verdict(reply, verdict):
    assert parse_verdict(reply) is verdict


def test_stage_reports_judged_scores_beside_official_and_semantic_scores(judge_server, tiny_model_dir, tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ctx = _context(tmp_path, "judged", tiny_model_dir, [
            f"evaluation.judge={{base_url: '{judge_server.url}', model: judge-test, api_key_env: null}}",
            "evaluation.models=[base, phase3]",
        ])
        metrics = run(ctx)
    finally:
        torch.set_num_threads(threads)
    scores = json.loads((ctx.out_dir / "scores.json").read_text())
    for name, entry in scores.items():
        judged = entry["results"]["phase3"].get("judge")
        if entry["benchmark"] in ("mathverse", "mathvista", "olympiadbench"):
            assert judged["protocol"]["scorer"] == {
                "kind": "judge", "model": "judge-test", "mode": SCORERS[entry["benchmark"]].judge_mode}
            assert judge_server.url not in json.dumps(judged), "the judge's endpoint (operational) is in the artifact"
            assert judged["n"] == entry["results"]["phase3"]["official"]["n"]
            assert metrics[name]["judge_accuracy"] == judged["accuracy"]
        else:
            assert judged is None  # MATH-Vision, MATH-500 and custom sets have no judged protocol
    rows = [json.loads(line) for line in (ctx.out_dir / "predictions.jsonl").read_text().splitlines()]
    judged_rows = [r for r in rows if "judge" in r]
    assert judged_rows and all(r["benchmark"] in ("mathverse", "mathvista", "olympiadbench") for r in judged_rows)
    assert len(judge_server.requests) == len(judged_rows)
    table = json.loads((ctx.out_dir / "curriculum.json").read_text())
    assert {(r["label"], r["scorer"]) for r in table["rows"] if r["kind"] == "measured"} == {
        ("base", "official"), ("phase3", "official"), ("base", "semantic"), ("phase3", "semantic"), ("base", "judge"),
        ("phase3", "judge")}
