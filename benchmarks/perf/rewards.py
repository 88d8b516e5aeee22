"""Reward scoring on 4,096 completions: our scorer as training uses it against serial math-verify and TRL's reward.

    .venv/bin/python -m benchmarks.perf.rewards [--quick]

Four scorers see the same completions (`reward_items`, GRPO-shaped), in batches of `BATCH` as the trainer calls its
reward functions, block by block in rotating order (A B C D, B C D A, ...) so that all see the same machine load:

* ours: `RewardPool(workers=2)` kept open across calls, as `grpo_phase.make_reward_funcs` uses it (accuracy);
* ours before: the same pool at commit `BEFORE` (before issue 15's speed-up), run from that commit's source in a
  child process (its timing is taken there, around the same calls);
* math-verify: `verify(parse(gold), parse(completion))` one by one, with its default configs and timeouts, as its
  README shows it;
* TRL: `trl.rewards.accuracy_reward(completions, solution)` on each batch (a None, for a gold it cannot parse,
  counts as 0 and is reported).

Each scorer is warmed up first on other completions (imports, the pool's start), since a trainer pays that once.
The four completions per 4,096 that make math-verify grind until its timeout are scored last, apart, so that rows
show the rate with and without them. Rows: items/s and their ratios, the fraction each calls correct, and pairwise
agreement with the categories of completions on which they differ most.
"""

from __future__ import annotations

import collections
import functools
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from benchmarks.perf.common import Row, end_child, print_rows, ratio_row
from benchmarks.perf.reward_items import Item, build_items

BATCH = 64  # completions per reward call: 8 prompts x a group of 8
BLOCK = 64  # completions per turn: one batch each, so that load swings on a shared box hit all alike
TIMEOUT = 5.0  # the recipes' reward timeout, and math-verify's and TRL's own
BEFORE = "a685be19f09b792fadb7814fad064ef18ce62589"  # the last commit before the reward speed-up
REPO = Path(__file__).resolve().parents[2]
# Where all three mean the same thing by "equal": a number or an expression, boxed (math-verify and TRL look for a
# box; ours takes the box inside <answer>), and a gold that math-verify reads whole when given as it is (raw LaTeX
# such as "x^2+3x" reads as nothing, "39\\pi" as 39: TRL then skips the item, plain math-verify compares with 39).
SAME_SEMANTICS_KINDS = ("integer", "decimal", "fraction", "latex_frac", "expression")
SAME_SEMANTICS_WRAPPINGS = ("tag_boxed", "boxed")


def batches(items: list[Item], start: int, stop: int):
    for i in range(start, stop, BATCH):
        yield items[i : min(i + BATCH, stop)]


class Ours:
    name = "ours"

    def __init__(self) -> None:
        from infimmr_core.rewards import RewardPool

        self.pool = RewardPool(workers=2, timeout=TIMEOUT)

    def score(self, items: list[Item], start: int, stop: int) -> tuple[float, list[float]]:
        from infimmr_core.rewards import ScoreItem

        out: list[float] = []
        started = time.perf_counter()
        for batch in batches(items, start, stop):
            scored = self.pool.score([ScoreItem(completion=it.completion, gold=it.gold, answer_type=it.answer_type,
                                                choices=it.choices) for it in batch])
            out.extend(b.accuracy for b in scored)
        return time.perf_counter() - started, out

    def close(self) -> None:
        self.pool.close()


class MathVerify:
    name = "math-verify"

    def __init__(self) -> None:
        from math_verify import parse, verify

        self.parse, self.verify = parse, verify

    def score(self, items: list[Item], start: int, stop: int) -> tuple[float, list[float]]:
        out: list[float] = []
        started = time.perf_counter()
        for it in items[start:stop]:
            try:
                out.append(float(self.verify(self.parse(it.gold), self.parse(it.completion))))
            except Exception:  # math-verify raises on some inputs where its timeouts cannot apply
                out.append(0.0)
        return time.perf_counter() - started, out

    def close(self) -> None:
        pass


class Trl:
    name = "TRL accuracy_reward"

    def __init__(self) -> None:
        from trl.rewards import accuracy_reward

        self.reward = accuracy_reward
        self.skipped = 0

    def score(self, items: list[Item], start: int, stop: int) -> tuple[float, list[float]]:
        out: list[float | None] = []
        started = time.perf_counter()
        for batch in batches(items, start, stop):
            out.extend(self.reward([[{"role": "assistant", "content": it.completion}] for it in batch],
                                   [it.gold for it in batch]))
        seconds = time.perf_counter() - started
        self.skipped += sum(v is None for v in out)
        return seconds, [0.0 if v is None else float(v) for v in out]

    def close(self) -> None:
        pass


_BEFORE_CHILD = r'''
import json, sys, time
from infimmr_core.rewards import RewardPool, ScoreItem

if __name__ == "__main__":
    items = [ScoreItem(**it) for it in json.load(open(sys.argv[1]))]
    batch = int(sys.argv[2])
    with RewardPool(workers=2, timeout=float(sys.argv[3])) as pool:
        print(json.dumps({"ready": True}), flush=True)
        for line in sys.stdin:
            start, stop = map(int, line.split())
            out = []
            started = time.perf_counter()
            for i in range(start, stop, batch):
                out.extend(b.accuracy for b in pool.score(items[i : min(i + batch, stop)]))
            print(json.dumps({"seconds": time.perf_counter() - started, "acc": out}), flush=True)
'''


class Before:
    """Our pool as it was at commit BEFORE, from that commit's own source (git archive), in a child process."""

    name = "ours before"

    def __init__(self, items: list[Item], warmup: list[Item], tmp: str) -> None:
        src = Path(tmp) / "before"
        src.mkdir()
        archive = subprocess.run(["git", "-C", str(REPO), "archive", BEFORE, "infimmr_core"], capture_output=True)
        if archive.returncode:
            raise RuntimeError(f"commit {BEFORE[:10]} is not in this clone: {archive.stderr.decode()[-200:]}")
        subprocess.run(["tar", "-x", "-C", str(src)], input=archive.stdout, check=True)
        (src / "child.py").write_text(_BEFORE_CHILD)
        data = [{"completion": it.completion, "gold": it.gold, "answer_type": it.answer_type, "choices": it.choices}
                for it in warmup + items]
        (src / "items.json").write_text(json.dumps(data))
        self.offset = len(warmup)
        env = {**os.environ, "PYTHONPATH": str(src)}
        self.proc = subprocess.Popen(
            [sys.executable, str(src / "child.py"), str(src / "items.json"), str(BATCH), str(TIMEOUT)],
            cwd=src, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        self._read()  # ready
        self._ask(-self.offset, 0)  # warm-up

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the child scoring with commit {BEFORE[:10]}'s pool exited ({self.proc.poll()})")
        return json.loads(line)

    def _ask(self, start: int, stop: int) -> dict:
        self.proc.stdin.write(f"{start + self.offset} {stop + self.offset}\n")
        self.proc.stdin.flush()
        return self._read()

    def score(self, items: list[Item], start: int, stop: int) -> tuple[float, list[float]]:
        answer = self._ask(start, stop)
        return answer["seconds"], answer["acc"]

    def close(self) -> None:
        end_child(self.proc)


def measure(scorers: list, items: list[Item], hanging: int) -> tuple[dict[str, float], dict[str, float],
                                                                   dict[str, list[float]]]:
    """Each scorer's seconds on the ordinary items, on the last `hanging` ones (scored apart, one call each), and its
    verdicts on all; block by block in rotating order."""
    seconds = {s.name: 0.0 for s in scorers}
    hanging_seconds = {s.name: 0.0 for s in scorers}
    verdicts: dict[str, list[float]] = {s.name: [] for s in scorers}
    ordinary = len(items) - hanging
    blocks = [(start, min(start + BLOCK, ordinary)) for start in range(0, ordinary, BLOCK)]
    blocks += [(ordinary, len(items))] if hanging else []
    for b, (start, stop) in enumerate(blocks):
        order = scorers[b % len(scorers):] + scorers[: b % len(scorers)]
        for s in order:
            took, out = s.score(items, start, stop)
            (hanging_seconds if start >= ordinary else seconds)[s.name] += took
            verdicts[s.name].extend(out)
        if stop % 1024 == 0 or stop == len(items):
            print(f"[rewards] {stop}/{len(items)}: " + ", ".join(f"{k} {v:.1f} s" for k, v in seconds.items()),
                  file=sys.stderr, flush=True)
    # Each scorer's blocks arrive in order, so its verdicts line up with `items`.
    return seconds, hanging_seconds, verdicts


def agreement(items: list[Item], a: list[float], b: list[float], subset: Callable[[Item], bool] = lambda it: True,
              ) -> tuple[int, int, collections.Counter]:
    """(identical verdicts, items compared, categories where they differ) over the items `subset` keeps."""
    same, total, differ = 0, 0, collections.Counter()
    for it, x, y in zip(items, a, b):
        if not subset(it):
            continue
        total += 1
        if x == y:
            same += 1
        else:
            differ[f"{it.category} ({'A' if x else 'B'} says right)"] += 1
    return same, total, differ


def same_semantics(item: Item) -> bool:
    kind, wrapping, _ = item.category.split("/")
    return (kind in SAME_SEMANTICS_KINDS and wrapping in SAME_SEMANTICS_WRAPPINGS and gold_read_whole(item.gold)
            and reads_one_box(item.completion))


@functools.lru_cache(maxsize=None)
def reads_one_box(completion: str) -> bool:
    """Math-verify takes the answer from one box, as ours and TRL do. Given an intermediate box and the final one in
    a sentence it can join them instead ("\\boxed{84}. ... \\boxed{912}" reads as "84,912", then as the number
    84912): an answer the completion never wrote, so the semantics differ there (8 of the 4,096 items)."""
    from math_verify import parse

    from infimmr_core.answers.extract import boxed_contents

    parsed = parse(completion)
    boxes = [content.strip() for _, _, content in boxed_contents(completion)]
    joined = {",".join(boxes[i:j]) for i in range(len(boxes)) for j in range(i + 2, len(boxes) + 1)}
    return len(parsed) < 2 or str(parsed[1]) not in joined


@functools.lru_cache(maxsize=None)
def gold_read_whole(gold: str) -> bool:
    """Math-verify reads the raw gold as it reads the same gold in math delimiters."""
    from math_verify import parse

    raw, wrapped = parse(gold), parse(f"${gold}$")
    return bool(raw) and bool(wrapped) and str(raw[0]) == str(wrapped[0])


def is_hanging(item: Item) -> bool:
    return item.category.startswith(("patho_tower/", "patho_nested/"))


def top(differ: collections.Counter, k: int = 4) -> str:
    return "; ".join(f"{cat}: {n}" for cat, n in differ.most_common(k)) or "none"


def run(quick: bool = False) -> list[dict[str, Any]]:
    n = 512 if quick else 4096
    built = build_items(n, seed=0)
    # The few answers that make math-verify grind until its timeout are scored last, apart, so that the rate on the
    # ordinary ones is not hidden behind them (the overall rate counts both).
    items = [it for it in built if not is_hanging(it)] + [it for it in built if is_hanging(it)]
    hanging = sum(map(is_hanging, items))
    warmup = build_items(64, seed=1)
    for name in ("math_verify", "math_verify.parser", "math_verify.grader"):
        logging.getLogger(name).setLevel(logging.CRITICAL)  # "Timeout during comparison" on the power towers
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="infimmr-bench-rewards-") as tmp:
        scorers: list = [Ours(), MathVerify(), Trl()]
        before_note = ""
        try:
            scorers.append(Before(items, warmup, tmp))
        except Exception as exc:  # a clone without that commit still gets the other rows
            before_note = f"not measured: {exc}"
        try:
            for s in scorers:
                if not isinstance(s, Before):
                    s.score(warmup, 0, len(warmup))
            seconds, hanging_seconds, verdicts = measure(scorers, items, hanging)
        finally:
            for s in scorers:
                s.close()
    total = {name: seconds[name] + hanging_seconds[name] for name in seconds}
    rate = {name: n / sec for name, sec in total.items()}
    ordinary_rate = {name: (n - hanging) / sec for name, sec in seconds.items()}
    ours, mv, trl = rate["ours"], rate["math-verify"], rate["TRL accuracy_reward"]
    how = f"{n} completions, batches of {BATCH}, 2 workers, timeout {TIMEOUT:g} s"
    rows.append(ratio_row("rewards", "items/s", "ours (RewardPool)", "serial math-verify", ours, mv, "items/s",
                          target=">= 3.0", note=how))
    rows.append(ratio_row("rewards", "items/s", "ours (RewardPool)", "TRL accuracy_reward", ours, trl, "items/s",
                          target=">= 2.0", note=how))
    for other, target in (("math-verify", ">= 3.0"), ("TRL accuracy_reward", ">= 2.0")) if hanging else ():
        rows.append(ratio_row("rewards", f"items/s without the {hanging} hanging items", "ours (RewardPool)", other,
                              ordinary_rate["ours"], ordinary_rate[other], "items/s", target=target,
                              note=f"{n - hanging} ordinary completions"))
    if hanging:
        rows.append(Row("rewards", f"seconds on the {hanging} hanging items", "ours (RewardPool)",
                        "serial math-verify / TRL", hanging_seconds["ours"], hanging_seconds["math-verify"], "s",
                        hanging_seconds["ours"] / hanging_seconds["math-verify"],
                        note=f"TRL: {hanging_seconds['TRL accuracy_reward']:.1f} s; power towers and 80 nested "
                             f"braces, each {TIMEOUT:g} s of math-verify's timeout for whoever hands it over").as_dict())
    if "ours before" in rate:
        rows.append(ratio_row("rewards", "items/s, after/before", "ours (RewardPool)", f"ours at {BEFORE[:7]}",
                              ours, rate["ours before"], "items/s",
                              note="the pool before issue 15's speed-up, from that commit's source"))
        if hanging:
            rows.append(ratio_row("rewards", f"items/s without the {hanging} hanging items, after/before",
                                  "ours (RewardPool)", f"ours at {BEFORE[:7]}", ordinary_rate["ours"],
                                  ordinary_rate["ours before"], "items/s", note=f"{n - hanging} ordinary completions"))
    else:
        rows.append(Row("rewards", "items/s, after/before", "ours (RewardPool)", f"ours at {BEFORE[:7]}", ours,
                        float("nan"), "items/s", float("nan"), note=before_note).as_dict())

    correct = {name: sum(v) / n for name, v in verdicts.items()}
    trl_note = f"TRL skips {scorers[2].skipped} gold answers it cannot parse (letters, words): counted as 0"
    rows.append(Row("rewards", "fraction called correct", "ours", "serial math-verify", correct["ours"],
                    correct["math-verify"], "fraction", correct["ours"] / correct["math-verify"],
                    note=f"TRL accuracy_reward: {correct['TRL accuracy_reward']:.3f}; {trl_note}").as_dict())
    pairs = [("ours", "math-verify"), ("ours", "TRL accuracy_reward"), ("math-verify", "TRL accuracy_reward")]
    if "ours before" in verdicts:
        pairs.insert(0, ("ours", "ours before"))
    for a, b in pairs:
        same, total, differ = agreement(items, verdicts[a], verdicts[b])
        rows.append(Row("rewards", "agreement (identical verdicts)", a, b, same, total, "items", same / total,
                        target=">= 1.0" if b == "ours before" else "",
                        met=(same == total) if b == "ours before" else None,
                        note=f"differ most on {top(differ)}").as_dict())
        same, total, differ = agreement(items, verdicts[a], verdicts[b], same_semantics)
        if b != "ours before" and total:
            rows.append(Row("rewards", "agreement where the semantics agree", a, b, same, total, "items",
                            same / total, note=f"boxed numbers and expressions whose gold math-verify reads whole; "
                                               f"differ on {top(differ)}").as_dict())
    return rows


if __name__ == "__main__":
    print_rows(run(quick="--quick" in sys.argv[1:]))
