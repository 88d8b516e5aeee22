"""Build the agreement corpora in this folder from the benchmarks' released files (run by hand, not by the tests).

    python tests/agreement/build_corpora.py --mirrors DIR --oracle-python PY

DIR holds bare git clones named ``owner+name/repo`` (lupantech/MathVista, mathllm/MATH-V, OpenBMB/OlympiadBench,
ZrrSkywalker/MathVerse, openai/prm800k, QwenLM/Qwen2.5-Math, MobileLLM/BudgetThinker); PY is a Python with the
official scorers' own dependencies (sympy 1.12, antlr4-python3-runtime 4.11, pylatexenc 2.10, tqdm), which runs the
released scoring code, unmodified, to label derived cases. Every selection is deterministic (sha256 order of a
stable key), so a rebuild gives the same files. See README.md here for what each corpus holds.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
COMMITS = {
    "lupantech/MathVista": "53d525874bdde205128e6b160b7357a88277d479",
    "mathllm/MATH-V": "a1f5cc3add200c0cd080fad463e500f44ef1fb41",
    "OpenBMB/OlympiadBench": "ba5b26a7e2849940b598a9159c1190daa2b9175f",
    "ZrrSkywalker/MathVerse": "937b090597aeafb8e82b35d310a4bc5b9e2ea29d",
    "openai/prm800k": "7ecc794703b2877f63226f2477a49b34f9b25163",
    "QwenLM/Qwen2.5-Math": "a45202bd16f1ec06f433442dc1152d0074773465",
    "MobileLLM/BudgetThinker": "f0466b9d37595f46603387baa5930e312fefb7f5",
}


def rank(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class Repo:
    def __init__(self, mirrors: Path, name: str):
        self.git_dir = mirrors / name.replace("/", "+") / "repo"
        self.commit = COMMITS[name]

    def files(self, prefix: str) -> list[tuple[str, int | None]]:
        """(path, size) under prefix; size None where the blob is not in the clone (large files)."""
        out = subprocess.run(["git", f"--git-dir={self.git_dir}", "ls-tree", "-r", "-l", self.commit, prefix],
                             capture_output=True, text=True, check=True).stdout
        rows = []
        for line in out.splitlines():
            meta, path = line.split("\t", 1)
            size = meta.split()[3]
            rows.append((path, int(size) if size.isdigit() else None))
        return rows

    def read(self, path: str) -> str:
        return subprocess.run(["git", f"--git-dir={self.git_dir}", "show", f"{self.commit}:{path}"],
                              capture_output=True, text=True, check=True).stdout


def write_jsonl(name: str, rows: list[dict], header: dict) -> None:
    path = HERE / name
    with path.open("w", encoding="utf-8") as fh:
        fh.write(json.dumps({"_provenance": header}, ensure_ascii=False) + "\n")
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
    print(f"{path}: {len(rows)} cases, {path.stat().st_size // 1024} KiB", file=sys.stderr)


# --- MathVista: released result files with stored true_false -------------------------------------------------------

MATHVISTA_QUOTA = {("multi_choice", "text"): 10, ("free_form", "integer"): 8, ("free_form", "float"): 5,
                   ("free_form", "list"): 1}


def mathvista(mirrors: Path) -> None:
    repo = Repo(mirrors, "lupantech/MathVista")
    rows, seen, missing = [], set(), []
    for path, size in repo.files("results"):
        if "/output_" not in path or not path.endswith(".json"):
            continue
        if size is None:
            missing.append(path)
            continue
        name = path.split("/")[-1][len("output_"):-len(".json")]
        taken: dict[tuple, int] = {}
        for pid, p in sorted(json.loads(repo.read(path)).items(), key=lambda kv: rank(f"{path}:{kv[0]}")):
            if "true_false" not in p:
                continue
            stratum = (p["question_type"], p["answer_type"])
            key = json.dumps([p.get("extraction"), p["answer"], p["choices"], *stratum, p["precision"]])
            if key in seen or taken.get(stratum, 0) >= MATHVISTA_QUOTA.get(stratum, 0):
                continue
            seen.add(key)
            taken[stratum] = taken.get(stratum, 0) + 1
            rows.append({"id": f"{name}:{pid}", "question_type": p["question_type"], "answer_type": p["answer_type"],
                         "precision": p["precision"], "choices": p["choices"], "unit": p.get("unit"),
                         "answer": p["answer"], "extraction": p.get("extraction"), "official": p["true_false"]})
    write_jsonl("mathvista.jsonl", rows, {
        "source": f"lupantech/MathVista@{repo.commit} results/*/output_*.json", "verdict": "stored true_false",
        "selection": f"per file, sha256 order of file:pid, unique scoring inputs, quotas {MATHVISTA_QUOTA}",
        "not_in_clone": missing})


# --- MATH-Vision: released outputs with stored correct --------------------------------------------------------------

def mathvision(mirrors: Path) -> None:
    repo = Repo(mirrors, "mathllm/MATH-V")
    gold = {json.loads(line)["id"]: json.loads(line) for line in repo.read("data/test.jsonl").splitlines() if line}
    rows, missing = [], []
    for path, size in repo.files("outputs"):
        if not path.endswith(".jsonl"):
            continue
        if size is None:
            missing.append(path)
            continue
        name = path.split("/")[-1][: -len(".jsonl")]
        lines = [json.loads(line) for line in repo.read(path).splitlines() if line.strip()]
        taken = {"choice": 0, "free": 0}
        for line in sorted(lines, key=lambda x: rank(f"{path}:{x['id']}")):
            g = gold[line["id"]]
            kind = "choice" if g["options"] else "free"
            if taken[kind] >= 20:
                continue
            taken[kind] += 1
            rows.append({"id": f"{name}:{line['id']}", "answer": str(g["answer"]), "options": g["options"],
                         "response": line["response"], "model_answer": line["model_answer"],
                         "official": line["correct"]})
    write_jsonl("mathvision.jsonl", rows, {
        "source": f"mathllm/MATH-V@{repo.commit} outputs/**/*.jsonl + data/test.jsonl", "verdict": "stored correct",
        "selection": "per file, sha256 order of file:id, 20 multiple-choice and 20 free-form problems",
        "not_in_clone": missing})


# --- Oracles: the released scoring code, run unmodified in a Python with its own dependencies -----------------------

ORACLE = r'''
import json, signal, sys
sys.path.insert(0, sys.argv[1])
from math_judger import MathJudger
from judge import extract_answer
from grading.grader import grade_answer

def alarm(signum, frame):
    raise TimeoutError()

signal.signal(signal.SIGALRM, alarm)
for line in sys.stdin:
    case = json.loads(line)
    signal.alarm(20)
    try:
        if case["kind"] == "olympiad":
            # judge.py's per-row logic: Tuple answers use the default precision, else the row's error.
            answer = extract_answer(False, case["response"])
            error, judger = case["error"], MathJudger()
            if "Tuple" in case["answer_type"] or not error:
                verdict = judger.judge(answer, case["gold"])
            elif "," in error:
                verdict = judger.judge(answer, case["gold"], [float(p) if p else 1e-8 for p in error.split(",")])
            else:
                verdict = judger.judge(answer, case["gold"], float(error))
        else:
            verdict = grade_answer(case["answer"], case["gold"])
        out = {"verdict": bool(verdict)}
    except TimeoutError:
        out = {"timeout": True}
    finally:
        signal.alarm(0)
    print(json.dumps(out), flush=True)
'''


def run_oracle(oracle_python: str, mirrors: Path, cases: list[dict]) -> list[dict]:
    ob, prm = Repo(mirrors, "OpenBMB/OlympiadBench"), Repo(mirrors, "openai/prm800k")
    with tempfile.TemporaryDirectory() as tmp:
        code = Path(tmp)
        (code / "math_judger.py").write_text(ob.read("inference/code/math_judger.py"))
        (code / "judge.py").write_text(ob.read("inference/judge.py"))
        (code / "grading").mkdir()
        (code / "grading" / "__init__.py").write_text("")
        for name in ("grader.py", "math_normalize.py"):
            (code / "grading" / name).write_text(prm.read(f"prm800k/grading/{name}"))
        (code / "oracle.py").write_text(ORACLE)
        done = subprocess.run([oracle_python, str(code / "oracle.py"), str(code)], capture_output=True, text=True,
                              input="".join(json.dumps(c) + "\n" for c in cases), check=True)
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


# --- OlympiadBench: the authors' scoring examples, and cases derived from released golds -----------------------------

def _strip_dollars(text: str) -> str:
    text = text.strip()
    return text[1:-1].strip() if len(text) > 1 and text[0] == text[-1] == "$" else text


_INT_RE = re.compile(r"(?<![\d.])(\d+)(?![\d.])")


def _bump(text: str) -> str | None:
    """The first integer in the text plus one: a near miss."""
    m = _INT_RE.search(text)
    return text[: m.start()] + str(int(m.group(1)) + 1) + text[m.end():] if m else None


def _olympiad_variants(g: str, row: dict) -> list[tuple[str, str]]:
    parts = [p.strip() for p in g.split(",")] if row["is_multiple_answer"] else [g]
    variants = [
        ("final-answer-line", f"So the final answer is $\\boxed{{{g}}}$."),
        ("boxed-then-text", f"Thus \\boxed{{{g}}}.\nWe double-checked the computation."),
        ("last-line-dollars", f"After simplifying we get the result.\nSo the final answer is ${g}$"),
        ("no-spaces", f"So the final answer is $\\boxed{{{g.replace(' ', '')}}}$."),
        ("dfrac", "So the final answer is $\\boxed{" + g.replace("\\frac", "\\dfrac") + "}$."),
        ("named", f"So the final answer is $\\boxed{{x={g}}}$."),
        ("unit", f"So the final answer is $\\boxed{{{g}}}$ cm."),
        ("percent", f"So the final answer is $\\boxed{{{g}\\%}}$."),
        ("no-answer", "I could not finish the computation."),
    ]
    bumped = _bump(g)
    if bumped:
        variants.append(("near-miss", f"So the final answer is $\\boxed{{{bumped}}}$."))
    if len(parts) > 1:
        variants.append(("reordered", f"So the final answer is $\\boxed{{{', '.join(reversed(parts))}}}$."))
        variants.append(("one-part", f"So the final answer is $\\boxed{{{parts[0]}}}$."))
        variants.append(("separate-boxes", "So the final answer is " + ", ".join(f"$\\boxed{{{p}}}$" for p in parts)))
    try:
        value = float(g)
    except ValueError:
        value = None
    if value is not None:
        variants.append(("decimal-places", f"So the final answer is $\\boxed{{{value:.6f}}}$."))
        variants.append(("off-by-a-millionth", f"So the final answer is $\\boxed{{{value + 1e-6:.7f}}}$."))
    return variants


def olympiadbench(mirrors: Path, oracle_python: str) -> None:
    ob, qwen = Repo(mirrors, "OpenBMB/OlympiadBench"), Repo(mirrors, "QwenLM/Qwen2.5-Math")
    rows = []
    for t, topic in enumerate(json.loads(ob.read("eval/scoring_examples.json"))):
        for a, answer in enumerate(topic["Ans"]):
            rows.append({"id": f"examples:{t}:{a}", "source": "scoring_examples", "gold": topic["GT"],
                         "answer": answer["answer"], "precision": answer.get("precision", 1e-8),
                         "official": answer["equal"]})
    data = [json.loads(line) for line in qwen.read("evaluation/data/olympiadbench/test.jsonl").splitlines() if line]
    cases = []
    for row in sorted(data, key=lambda r: rank(f"olympiad:{r['id']}"))[:450]:
        gold = row["final_answer"][0]
        variants = _olympiad_variants(_strip_dollars(gold), row)
        for name, response in sorted(variants, key=lambda v: rank(f"{row['id']}:{v[0]}"))[:2]:
            cases.append({"kind": "olympiad", "id": f"derived:{row['id']}:{name}", "gold": gold,
                          "response": response, "error": row["error"] or "", "answer_type": row["answer_type"]})
    labels = run_oracle(oracle_python, mirrors, cases)
    timeouts = 0
    for case, label in zip(cases, labels):
        if "timeout" in label:
            timeouts += 1
            continue
        rows.append({"id": case["id"], "source": "derived", "gold": case["gold"], "response": case["response"],
                     "error": case["error"], "answer_type": case["answer_type"], "official": label["verdict"]})
    write_jsonl("olympiadbench.jsonl", rows, {
        "source": f"OpenBMB/OlympiadBench@{ob.commit} eval/scoring_examples.json (authors' expected verdicts) and "
                  f"golds of OE_TO_maths_en_COMP from QwenLM/Qwen2.5-Math@{qwen.commit} "
                  "evaluation/data/olympiadbench/test.jsonl",
        "verdict": "examples: the authors' 'equal'; derived: the released judge.py + math_judger.py run unmodified "
                   "(sympy 1.12, antlr4 4.11)",
        "selection": "450 golds in sha256 order of id, two response variants each (sha256 order of id:variant)",
        "oracle_timeouts_dropped": timeouts})


# --- MATH-500: answers derived from the 500 golds, graded by PRM800K's released grader -------------------------------

def _math500_variants(g: str) -> list[tuple[str, str]]:
    variants = [("gold", g), ("spaced", g.replace(",", ", ")), ("dfrac", g.replace("\\frac", "\\dfrac")),
                ("no-left-right", g.replace("\\left", "").replace("\\right", "")), ("named", f"x = {g}"),
                ("text", f"\\text{{{g}}}"), ("dollars", f"${g}$"), ("unit", f"{g} \\text{{ cm}}"),
                ("degrees", f"{g}^\\circ"), ("percent", f"{g}\\%")]
    bumped = _bump(g)
    if bumped:
        variants.append(("near-miss", bumped))
    m = re.fullmatch(r"(-?)\\frac\{(\d+)\}\{(\d+)\}", g)
    if m:
        sign, a, b = m.group(1), int(m.group(2)), int(m.group(3))
        variants += [("slash", f"{sign}{a}/{b}"), ("unreduced", f"{sign}\\frac{{{2 * a}}}{{{2 * b}}}"),
                     ("decimal", f"{float(sign + '1') * a / b:.4f}")]
        if a > b:
            variants.append(("mixed-number", f"{sign}{a // b} {a % b}/{b}"))
    if re.fullmatch(r"\d{4,}", g):
        variants.append(("thousands", f"{int(g):,}"))
    m = re.fullmatch(r"(\d+)_\{?(\d+)\}?", g)
    if m:
        variants.append(("base-digits-only", m.group(1)))
    if g.startswith("(") and "," in g:
        inner = [p.strip() for p in g[1:-1].split(",")]
        variants.append(("reordered", "(" + ", ".join(reversed(inner)) + ")"))
    return variants


def math500(mirrors: Path, oracle_python: str) -> None:
    repo = Repo(mirrors, "MobileLLM/BudgetThinker")
    data = [json.loads(line) for line in repo.read("evaluation/data/math500/test.jsonl").splitlines() if line]
    cases = []
    for row in data:
        variants = _math500_variants(row["answer"])
        for name, answer in sorted(variants, key=lambda v: rank(f"{row['unique_id']}:{v[0]}"))[:2]:
            cases.append({"kind": "prm800k", "id": f"{row['unique_id']}:{name}", "gold": row["answer"],
                          "answer": answer})
    labels = run_oracle(oracle_python, mirrors, cases)
    rows, timeouts = [], 0
    for case, label in zip(cases, labels):
        if "timeout" in label:
            timeouts += 1
            continue
        rows.append({"id": case["id"], "gold": case["gold"], "answer": case["answer"], "official": label["verdict"]})
    write_jsonl("math500.jsonl", rows, {
        "source": f"MATH-500 golds (HuggingFaceH4/MATH-500 as copied in MobileLLM/BudgetThinker@{repo.commit} "
                  "evaluation/data/math500/test.jsonl; PRM800K's own data files are Git LFS pointers in its clone)",
        "verdict": "openai/prm800k@7ecc794 grading/grader.py grade_answer(answer, gold), run unmodified "
                   "(sympy 1.12, pylatexenc 2.10)",
        "selection": "two answer variants per gold, sha256 order of unique_id:variant",
        "oracle_timeouts_dropped": timeouts})


# --- MathVerse: cases derived from the released golds, labelled by the judge prompt's rules --------------------------

_CHOICE_RE = re.compile(r"^\s*\(?([A-H])\)?\s*[:.：)]\s*(.+?)\s*$", re.MULTILINE)


def _mathverse_choices(question: str) -> list[str]:
    block = re.split(r"Choices?\s*:", question)[-1] if re.search(r"Choices?\s*:", question) else ""
    found = _CHOICE_RE.findall(block)
    letters = "".join(letter for letter, _ in found)
    return [text for _, text in found] if letters and "ABCDEFGH".startswith(letters) else []


def _mathverse_cases(row: dict) -> list[tuple[str, str, bool, str]]:
    """(variant, model answer, label, the prompt rule that decides it)."""
    gold, qtype = row["answer"], row["question_type"]
    if qtype == "multi-choice":
        choices = _mathverse_choices(row["question"])
        letters = [c for c in gold if c in "ABCDEFGH"] if re.fullmatch(r"\(?[A-H]\)?(\n[A-H])*", gold) else []
        if not letters and gold in choices:
            letters = ["ABCDEFGH"[choices.index(gold)]]
        if len(letters) != 1 or not choices:
            return [("same-as-gold", gold, True, "identical answer")]
        letter = letters[0]
        index = "ABCDEFGH".index(letter)
        other = "ABCDEFGH"[(index + 1) % len(choices)]
        return [
            ("letter", letter, True, "the standard option's letter"),
            ("lower-case-letter", letter.lower(), True, "the standard option's letter, lower case"),
            ("option-text", choices[index], True, "demo 5: the standard option's content"),
            ("letter-and-text", f"{letter}:{choices[index]}", True, "demo 2 format, the standard option"),
            ("other-letter-and-text", f"{other}:{choices['ABCDEFGH'.index(other)]}", False,
             "demo 2: another option, written letter:content"),
            ("other-letter", other, False, "another option"),
            ("null", "null", False, "demo 4: no answer"),
        ]
    cases = [("same-as-gold", gold, True, "identical answer"), ("null", "null", False, "demo 4: no answer")]
    intervals = re.findall(r"[\[(][^\[\]()]*,[^\[\]()]*[\])]", gold)
    if len(intervals) > 1:
        cases.append(("partial", intervals[-1], False, "demo 3: a partial answer"))
    elif len(intervals) == 1 and intervals[0] == gold.strip():
        flipped = gold.strip()[:-1] + (")" if gold.strip()[-1] == "]" else "]")
        cases.append(("other-bracket", flipped, False, "demo 1: another interval bracket"))
    m = re.fullmatch(r"\s*(-?\d+(?:\.\d+)?)\s*", gold)
    if m:
        number = m.group(1)
        cases.append(("trailing-zero", number + ("0" if "." in number else ".0"), True, "the same number"))
        cases.append(("near-miss", _bump(number) or number + "1", False, "another number"))
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*m\s*", gold)
    if m:
        cases.append(("in-centimetres", f"{float(m.group(1)) * 100:g} cm", True, "prompt: 0.5m and 50cm"))
    return cases


def mathverse(mirrors: Path) -> None:
    repo = Repo(mirrors, "ZrrSkywalker/MathVerse")
    missing = [path for path, size in repo.files("data") if size is None]
    data = json.loads(repo.read("data/testmini_text_only.json"))
    rows = []
    for row in data:
        cases = _mathverse_cases(row)
        for variant, answer, label, rule in sorted(cases, key=lambda c: rank(f"{row['sample_index']}:{c[0]}"))[:1]:
            rows.append({"id": f"{row['sample_index']}:{variant}", "gold": row["answer"],
                         "question_type": row["question_type"], "choices": _mathverse_choices(row["question"]),
                         "answer": answer,
                         "official": label, "rule": rule})
    write_jsonl("mathverse.jsonl", rows, {
        "source": f"ZrrSkywalker/MathVerse@{repo.commit} data/testmini_text_only.json golds and questions",
        "verdict": "LABELLED BY US from the rules of evaluation/prompts.py demo_prompt_score (the official score is a "
                   "GPT judge); each case names the rule that labels it",
        "selection": "one variant per problem, sha256 order of sample_index:variant", "not_in_clone": missing})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mirrors", type=Path, required=True)
    parser.add_argument("--oracle-python", required=True)
    parser.add_argument("--only", nargs="*", default=["mathvista", "mathvision", "olympiadbench", "math500",
                                                      "mathverse"])
    args = parser.parse_args()
    for name in args.only:
        if name in ("olympiadbench", "math500"):
            globals()[name](args.mirrors, args.oracle_python)
        else:
            globals()[name](args.mirrors)


if __name__ == "__main__":
    main()
