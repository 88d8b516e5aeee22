"""LLM judge through any OpenAI-compatible chat-completions endpoint (a local vLLM server, OpenAI, ...).

Two protocols, as the benchmarks use them: "verdict" (the judge sees question, gold answer and response and says
correct or not: MathVerse's scoring step, lmms-eval's OlympiadBench) and "extract" (the judge pulls the final answer
out of the response and the benchmark's official rule scores it: MathVista's official pipeline). Requests are
greedy (temperature 0, fixed seed) so a judged score is as repeatable as the endpoint allows.
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from infimmr_core.config import JudgeConfig
from infimmr_core.evaluation.items import EvalItem
from infimmr_core.evaluation.scorers.base import Scorer

RESPONSE_TAIL_CHARS = 6000  # long reasoning is cut from the front: the final answer is at the end

VERDICT_PROMPT = """You are grading a student's answer to a math problem against the standard answer.
Decide whether the student's final answer is equivalent to the standard answer. For a multiple-choice problem the
chosen option must be the standard option (its letter or its exact content). Ignore the reasoning; judge only the
final answer. Equivalent forms (0.5 and 1/2, 50cm and 0.5m) count as equal.

[Question]
{question}

[Standard answer]
{gold}

[Student response]
{response}

Reply with one line: "Judgement: 1" if equivalent, "Judgement: 0" otherwise."""

EXTRACT_PROMPT = """Extract the final answer from the model response to the question below. Reply with the answer only:
the option letter for a multiple-choice question, a number for a numeric question, a Python list for a list question.
If the response gives no answer, reply with nothing.

[Question]
{question}

[Model response]
{response}

Extracted answer:"""

_VERDICT_RE = re.compile(r"judge?ment\s*[:：]\s*\**\s*([01])", re.IGNORECASE)


class JudgeError(RuntimeError):
    pass


class JudgeClient:
    """Minimal client for POST {base_url}/chat/completions (stdlib only, so no SDK version shapes the judge)."""

    def __init__(self, cfg: JudgeConfig):
        self.cfg = cfg
        self.url = cfg.base_url.rstrip("/") + "/chat/completions"
        self._api_key = os.environ.get(cfg.api_key_env) if cfg.api_key_env else None

    def complete(self, prompt: str) -> str:
        body = json.dumps({
            "model": self.cfg.model, "messages": [{"role": "user", "content": prompt}],
            "temperature": 0, "top_p": 1, "seed": 0, "max_tokens": self.cfg.max_tokens,
        }).encode()
        headers = {"Content-Type": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        last_error: Exception | None = None
        for attempt in range(self.cfg.max_retries + 1):
            if attempt:
                time.sleep(min(2**attempt, 30))
            request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.cfg.timeout_seconds) as reply:
                    data = json.loads(reply.read())
                return data["choices"][0]["message"]["content"] or ""
            except urllib.error.HTTPError as error:
                last_error = error
                if error.code != 429 and error.code < 500:  # a bad request stays bad: do not retry
                    break
            except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
                last_error = error
            except (KeyError, IndexError, json.JSONDecodeError) as error:
                raise JudgeError(f"judge endpoint {self.url} answered in an unexpected shape: {error}") from error
        raise JudgeError(f"judge endpoint {self.url} failed: {last_error}") from last_error


def parse_verdict(text: str) -> bool | None:
    """True/False from "Judgement: 1/0" (or a bare "1"/"0"); None when the judge said neither."""
    found = _VERDICT_RE.findall(text)
    if found:
        return found[-1] == "1"
    bare = text.strip().strip(".").strip()
    return {"1": True, "0": False}.get(bare)


def _gold_for_judge(item: EvalItem) -> str:
    if item.multiple_choice and len(item.gold) == 1 and item.gold.isalpha():
        index = ord(item.gold.upper()) - ord("A")
        if 0 <= index < len(item.choices) and item.choices[index] != item.gold:
            return f"{item.gold} ({item.choices[index]})"
    return item.gold + (f" (unit: {item.unit})" if item.unit else "")


@dataclass(frozen=True)
class JudgeResult:
    correct: bool
    raw: str  # what the judge replied, kept for audit
    extracted: str | None = None  # the judge's extraction (protocol "extract")


def judge(client: JudgeClient, scorer: Scorer, item: EvalItem, response: str) -> JudgeResult:
    tail = response[-RESPONSE_TAIL_CHARS:]
    question = item.judge_question or item.question
    if scorer.judge_mode == "extract":
        raw = client.complete(EXTRACT_PROMPT.format(question=question, response=tail))
        extracted = raw.strip() or None
        compare = scorer.official_compare
        return JudgeResult(extracted is not None and compare is not None and compare(item, extracted), raw, extracted)
    raw = client.complete(VERDICT_PROMPT.format(question=question, gold=_gold_for_judge(item), response=tail))
    return JudgeResult(parse_verdict(raw) is True, raw)
