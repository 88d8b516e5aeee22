"""One bad row never kills curation, and no bad value is kept (issue 13, item 2): a hostile source of more than 30
kinds of breakage, in JSONL, JSON, CSV and Parquet, goes through the real curate stage; every row is accounted for,
each broken one is quarantined with its own reason, and only the good rows are kept. The readers hold no row beyond
`curation.limits.max_row_bytes`, whatever the file."""

from __future__ import annotations

import io
import json
import os
import tracemalloc
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curation_fixtures import png, read_jsonl, stage_context
from infimmr_core.curation.stage import curate_locally
from infimmr_core.data import json_stream
from infimmr_core.data.pool_io import read_pool
from infimmr_core.data.readers import MAX_ROW_BYTES, read_rows

pytestmark = pytest.mark.reliability

FAST = ["curation.captioning.enabled=false", "curation.difficulty.enabled=false", "phases.2.input=image",
        "curation.max_quarantine_fraction=1.0"]
MiB = 1024 * 1024


def q(row_id: str, **fields) -> dict:
    """A canonical row that is fine except for `fields`."""
    return {"id": row_id, "problem": f"Row {row_id[:20]}: what is {len(row_id)} + 1?", "answer": str(len(row_id) + 1),
            **fields}


def nested(depth: int):
    value: object = "leaf"
    for _ in range(depth):
        value = {"x": value}
    return value


# (JSONL line, expected reason prefix). Lines are bytes when json.dumps cannot write them.
HOSTILE_JSONL: list[tuple[bytes | dict | object, str]] = [
    (q("loop", images=["loop1.png"]), "image path unreadable: RuntimeError"),
    (q("nul", images=["a\x00b.png"]), "invalid image path: it holds a NUL byte"),
    (q("longpath", images=["x" * 5000 + ".png"]), "invalid image path: 5004 characters long"),
    (q("deeppath", images=["d/" * 2045 + "a.png"]), "image path unreadable: OSError"),
    (q("intbytes", images=[{"bytes": 10**12, "path": None}]), "invalid image value: its bytes are a int"),
    (q("strbytes", images=[{"bytes": "not bytes", "path": None}]), "invalid image value: its bytes are a str"),
    (q("nobytes", images=[{"bytes": None, "path": None}]), "invalid image value: NoneType"),
    (q("listimg", images=[["a.png"]]), "invalid image value: list"),
    (q("fifo", images=["fifo.png"]), "image file not found: fifo.png"),
    (q("dirimg", images=["folder"]), "image file not found: folder"),
    (q("devzero", images=["/dev/zero"]), "image path outside the dataset root: /dev/zero"),
    (q("symout", images=["escape.png"]), "image path outside the dataset root: escape.png"),
    (q("hugeimg", images=["huge.png"]), "image too large: 104857600 bytes"),
    (q("garbage", images=["garbage.png"]), "undecodable image"),
    (q("manyimg", images=["ok.png"] * 17), "field too large: images has 17 items"),
    (b'{"id": "surr", "problem": "\\ud800 what?", "answer": "1"}\n', "invalid text in field problem: a lone surrogate"),
    (b'{"id": "msurr", "problem": "What?", "answer": "1", "note": "\\udfff"}\n', "invalid text in field metadata.note"),
    (b'{"id": "bigint", "problem": "What?", "answer": ' + b"7" * 5000 + b"}\n", "invalid JSON: Exceeds the limit"),
    (q("bits", answer=2**5000), "invalid field answer: an integer of 5001 bits"),
    (b'{"id": "deep", "problem": "What?", "answer": "1", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n",
     "invalid JSON: nested too deeply"),
    (b'{"id": "nan", "problem": "What?", "answer": NaN}\n', "invalid field answer: nan is not a finite number"),
    (b'{"id": "inf", "problem": "What?", "answer": Infinity}\n', "invalid field answer: inf is not a finite number"),
    (b'{"id": "e400", "problem": "What?", "answer": 1e400}\n', "invalid field answer: inf is not a finite number"),
    (b'{"id": "ninf", "problem": "What?", "answer": -Infinity}\n', "invalid field answer: -inf is not a finite number"),
    (q("bigans", answer="1" * 20_000), "field too large: answer has 20000 characters"),
    (q("hugeline", answer="9" * (50 * MiB)), "row too large: over 16777216 bytes"),
    (q("bigextra", extra="e" * (2 * MiB)), "field too large: metadata is"),
    (q("deepmeta", extra=nested(20)), "invalid field metadata: nested deeper than 16 levels"),
    (q("metalist", metadata=[1, 2]), "invalid field metadata: expected an object, got list"),
    ({"id": 17, "problem": "What?", "answer": "1"}, "invalid field id: expected text, got int"),
    ({"id": ["a"], "problem": "What?", "answer": "1"}, "invalid field id: expected text, got list"),
    (q("longid" + "i" * 600), "field too large: id has 606 characters"),
    ({"id": "numprob", "problem": 12, "answer": "1"}, "invalid field problem: expected text, got int"),
    (q("boolans", answer=True), "invalid field answer: expected text, got bool"),
    (q("strrate", pass_rate="0.5"), "invalid field pass_rate: expected a number in [0, 1]"),
    (b'{"id": "nanrate", "problem": "What?", "answer": "1", "pass_rate": NaN}\n', "invalid field pass_rate"),
    (q("bigrate", pass_rate=7), "invalid field pass_rate: expected a number in [0, 1], got 7"),
    (q("numchoice", choices=[1, 2]), "invalid field choices.0: expected text, got int"),
    (q("manychoices", choices=[str(i) for i in range(65)]), "field too large: choices has 65 items"),
    (q("badtype", answer_type="bogus"), "invalid field answer_type"),
    (q("intcaption", caption=5), "invalid field caption: expected text, got int"),
    (q("intsplit", split=3), "invalid field split: expected text, got int"),
    ("just a string", "row is not an object"),
    (None, "row is not an object"),
    (b'{"id": "latin", "problem": "caf\xe9", "answer": "1"}\n', "non-UTF-8 text"),
    (b'{"id": "cut", "problem": "What is 1+\n', "invalid JSON"),
    (q("good1"), "duplicate id: data-good1"),
]

GOOD_JSONL = [
    q("good1"),
    q("good2", answer=3),  # a numeric answer is an answer
    q("good3", images=["ok.png"], choices=["1", "2"], answer="B"),
    q("good4", images=[{"bytes": None, "path": "ok2.png"}]),
    q("good5", metadata={"score": float("nan")}),  # NaN in metadata is a missing value: null
]


def _jsonl_line(row) -> bytes:
    return row if isinstance(row, bytes) else (json.dumps(row) + "\r\n").encode()


def _hostile_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "dataset"
    folder.mkdir()
    (folder / "ok.png").write_bytes(png(1))
    (folder / "ok2.png").write_bytes(png(2))
    (folder / "garbage.png").write_bytes(b"GIF89a but not really")
    (folder / "folder").mkdir()
    os.mkfifo(folder / "fifo.png")
    os.symlink(folder / "loop2.png", folder / "loop1.png")
    os.symlink(folder / "loop1.png", folder / "loop2.png")
    (tmp_path / "secret.png").write_bytes(png(3))
    os.symlink(tmp_path / "secret.png", folder / "escape.png")
    with (folder / "huge.png").open("wb") as f:
        f.truncate(100 * MiB)  # sparse: costs no disk, but reading it whole would cost 100 MB
    with (folder / "data.jsonl").open("wb") as f:
        f.write(b"\xef\xbb\xbf")  # a byte order mark before the first (good) row
        f.write(_jsonl_line(GOOD_JSONL[0]))
        for row, _ in HOSTILE_JSONL:
            f.write(_jsonl_line(row))
        f.write(b"\n   \n")  # blank lines are not rows
        for row in GOOD_JSONL[1:]:
            f.write(_jsonl_line(row))
    return folder


HOSTILE_JSON = [  # a JSON array file: (element text, reason)
    ('{"id": "j-nan", "problem": "What?", "answer": NaN}', "invalid field answer: nan is not a finite number"),
    ('{"id": "j-bad", "problem": "What?" "answer": "1"}', "invalid JSON"),
    ("", "invalid JSON"),  # [..., , ...]
    ('"a string"', "row is not an object"),
    ('{"id": "j-huge", "problem": "What?", "answer": "' + "9" * (17 * MiB) + '"}', "row too large"),
]
GOOD_JSON = [q("j-good1"), q("j-good2")]

HOSTILE_CSV = [  # CSV records after the header: (line, reason)
    ('c-cell,"' + "w" * 200_000 + '",5\n', "field too large: problem has 200000 characters"),  # > csv's 128 KB cell
    ("c-ragged,What?,1,extra\n", "invalid CSV row: 4 fields, the header has 3"),
    ("c-short,What?\n", "invalid CSV row: 2 fields, the header has 3"),
    ('c-line,"' + "l" * (17 * MiB) + '",1\n', "row too large"),
]
GOOD_CSV = ["c-good1,What is 2+5?,7\n", "c-good2,What is 2+6?,8\n"]


def _write_json(folder: Path) -> Path:
    elements = [json.dumps(GOOD_JSON[0])] + [text for text, _ in HOSTILE_JSON] + [json.dumps(GOOD_JSON[1])]
    path = folder / "array.json"
    path.write_text('{"version": 2, "rows": [\n' + ",\n".join(elements) + "\n]}")
    return path


def _write_csv(folder: Path) -> Path:
    path = folder / "table.csv"
    with path.open("wb") as f:
        f.write(b"\xef\xbb\xbfid,problem,answer\n" + GOOD_CSV[0].encode())
        for line, _ in HOSTILE_CSV:
            f.write(line.encode())
        f.write(b"c-latin,caf\xe9,1\n")
        f.write(GOOD_CSV[1].encode())
    return path


def _write_parquet(folder: Path) -> tuple[Path, Path]:
    rows = [{"id": "p-good", "problem": "What is 3+3?", "answer": 6.0},
            {"id": "p-nan", "problem": "What?", "answer": float("nan")},
            {"id": "p-inf", "problem": "What?", "answer": float("inf")}]
    good = folder / "numbers.parquet"
    pq.write_table(pa.Table.from_pylist(rows), good)
    damaged = folder / "damaged.parquet"
    damaged.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    return good, damaged


CSV_LATIN_REASON = "non-UTF-8 text"
PARQUET_REASONS = ["invalid field answer: nan is not a finite number",
                   "invalid field answer: inf is not a finite number", "unreadable Parquet file"]


def test_hostile_rows_are_all_accounted_for_and_none_is_kept(tmp_path):
    folder = _hostile_folder(tmp_path)
    json_path, csv_path = _write_json(folder), _write_csv(folder)
    parquet, damaged = _write_parquet(folder)
    sources = [{"kind": "canonical", "path": str(folder / "data.jsonl"), "name": "data"},
               {"kind": "canonical", "path": str(json_path), "name": "array"},
               {"kind": "canonical", "path": str(csv_path), "name": "table"},
               {"kind": "canonical", "path": str(parquet), "name": "numbers"},
               {"kind": "canonical", "path": str(damaged), "name": "damaged"}]
    ctx = stage_context(tmp_path, FAST, sources=sources)
    curate_locally(ctx)  # nothing raises

    report = json.loads((ctx.out_dir / "report.json").read_text())
    expected = [reason for _, reason in HOSTILE_JSONL] + [r for _, r in HOSTILE_JSON] + \
        [r for _, r in HOSTILE_CSV] + [CSV_LATIN_REASON] + PARQUET_REASONS
    assert len(expected) >= 30 + 10
    good = len(GOOD_JSONL) + len(GOOD_JSON) + len(GOOD_CSV) + 1
    assert report["rows_in"] == good + len(expected)
    assert report["rows_in"] == report["kept"] + sum(report["filtered"].values()) + sum(report["quarantined"].values())
    assert report["kept"] == good and not report["filtered"]

    quarantine = read_jsonl(ctx.out_dir / "quarantine.jsonl")
    reasons = [record["reason"] for record in quarantine]
    assert len(reasons) == len(expected)
    for record, reason in zip(quarantine, expected):
        assert record["reason"].startswith(reason), (record["position"], record["reason"], reason)
        assert len(json.dumps(record)) < 20_000, record["position"]  # a preview of the row, never all of it
    assert (ctx.out_dir / "quarantine.jsonl").stat().st_size < 2 * MiB  # 50 MB of hostile rows, previewed

    kept = {s.id: s for name in ("text", "image") for s in read_pool(ctx.out_dir / "pools" / f"{name}.parquet")}
    assert set(kept) == {"data-good1", "data-good2", "data-good3", "data-good4", "data-good5", "array-j-good1",
                         "array-j-good2", "table-c-good1", "table-c-good2", "numbers-p-good"}
    assert kept["data-good2"].answer == "3" and kept["numbers-p-good"].answer == "6.0"
    assert kept["data-good5"].metadata["score"] is None


def test_readers_never_hold_more_than_a_row(tmp_path):
    """A 48 MB line, JSON element or CSV record is skipped while it is read: the reader's memory stays within about
    twice the row bound (16 MiB by default), whatever the file holds (reading such a row whole, as a plain
    readline + json.loads does, peaks at three times its size)."""
    huge = "9" * (48 * MiB)
    files = {
        "rows.jsonl": f'{{"id": "a", "answer": "{huge}"}}\n{{"id": "b"}}\n',
        "rows.json": f'[{{"id": "a", "answer": "{huge}"}}, {{"id": "b"}}]',
        "rows.csv": f'id,answer\na,{huge}\nb,1\n',
    }
    for name, text in files.items():
        path = tmp_path / name
        path.write_text(text)
        del text
        tracemalloc.start()
        rows = [(where, row) for where, row in read_rows(str(path))]
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert peak < 2.5 * MAX_ROW_BYTES, f"{name}: peak {peak / MiB:.0f} MiB"
        assert [getattr(row, "reason", "row") for _, row in rows][0].startswith("row too large"), name
        assert rows[-1][1] if isinstance(rows[-1][1], dict) else False, name  # the row after it is read normally
        path.unlink()


def test_parquet_row_groups_over_the_bound_are_never_read(tmp_path):
    path = tmp_path / "big.parquet"
    rows = [{"id": str(i), "text": os.urandom(150 * 1024).hex()} for i in range(8)]  # 300 KB each, incompressible
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=4)
    rows = list(read_rows(str(path), max_row_group_bytes=1 * MiB))
    assert len(rows) == 8 and all(row.reason.startswith("row too large: its Parquet row group") for _, row in rows)
    assert [row["id"] for _, row in read_rows(str(path))] == [str(i) for i in range(8)]


@pytest.mark.parametrize("text,elements", [
    ("[]", []),
    (" [ ]\n", []),
    ("[1, 2 ,3]", ["1", "2", "3"]),
    ('[{"a": "x,]y\\"z"}, [1,[2]], "s\\\\"]', ['{"a": "x,]y\\"z"}', "[1,[2]]", '"s\\\\"']),
    ('{"data": [1,2]}', ["1", "2"]),
    ('{"v": 2, "data": [1, {"b": []}], "n": "x"}', ["1", '{"b": []}']),
    ("[1,,2]", ["1", "", "2"]),  # an empty element is one (invalid) row, not none
    ('[{"a": 1]]', ['{"a": 1]']),  # mismatched brackets: one row, which json.loads then refuses
    ("\ufeff[1]", ["1"]),
    ('["' + "x" * 300 + '", 2]', [None, "2"]),  # longer than max_chars: skipped, never held
])
def test_json_arrays_split_into_rows(monkeypatch, text, elements):
    monkeypatch.setattr(json_stream, "_CHUNK", 7)  # every boundary case lands on a chunk edge somewhere
    assert [e.text for e in json_stream.iter_array(io.BytesIO(text.encode()), 100)] == elements


@pytest.mark.parametrize("text,error", [
    ('{"a": [1], "b": [2]}', "holds more than one"),
    ('{"v": 1}', "an array of rows or an object holding one array"),
    ("{}", "an array of rows or an object holding one array"),
    ('"x"', "an array of rows or an object holding one array"),
    ("[1", "the file ends inside a row"),
    ('["abc', "the file ends inside a row"),
    ("[1] x", "text after the end"),
    ("[1: 2]", "unexpected ':'"),
])
def test_json_files_that_are_not_arrays_of_rows(monkeypatch, text, error):
    monkeypatch.setattr(json_stream, "_CHUNK", 7)
    with pytest.raises(json_stream.JsonStreamError, match=error):
        list(json_stream.iter_array(io.BytesIO(text.encode()), 100))
