"""The pure parts of curation, table-driven: answer typing, filters, dedup, pool assignment."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from curation_fixtures import png
from infimmr_core.config import CurationConfig, PoolsConfig
from infimmr_core.curation.answers import classify_answer, normalise_answer
from infimmr_core.curation.dedup import Deduplicator, hamming, perceptual_hash
from infimmr_core.curation.filters import filter_reason
from infimmr_core.curation.ledger import histogram
from infimmr_core.curation.pools import Candidate, assign_pools
from infimmr_core.data.schema import Sample


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [("\\boxed{17^\\circ}", "17^\\circ"), ("$\\boxed{60}$", "60"), ("  35 ", "35"), ("$x+1$", "x+1"), ("\\boxed{\\boxed{2}}", "2")],
)
def test_normalise_answer(raw, normalised):
    assert normalise_answer(raw) == normalised


@pytest.mark.parametrize(
    ("problem", "answer", "choices", "expected"),
    [
        ("Pick one.", "B", ["1", "2"], "multiple_choice"),
        ("Which?\nOptions:\nA. same\nB. different", "A", [], "multiple_choice"),
        ("Which?\n(A) 3 (B) 4", "(B)", [], "multiple_choice"),
        ("What is x?", "B", [], "expression"),  # a letter with no options anywhere is a symbol, not an option
        ("Compute.", "1,000", [], "numeric"),
        ("Compute.", "-3.5", [], "numeric"),
        ("Percent?", "45%", [], "numeric"),
        ("Angle?", "30°", [], "numeric"),
        ("Angle?", "30^\\circ", [], "numeric"),
        ("Simplify.", "\\frac{25}{7}", [], "expression"),
        ("Solve.", "x = 2", [], "expression"),
        ("Interval?", "(0, 1]", [], "expression"),
        ("Which variable?", "x", [], "expression"),
        ("Colour?", "red", [], "text"),
        ("Day?", "north east", [], "text"),
        ("Prove that sqrt 2 is irrational.", "Assume it is rational; then ...", [], "unverifiable"),
        ("Show that n^2 >= n.", "By induction on n.", [], "unverifiable"),
        ("Explain.", "The proof follows from the lemma.", [], "unverifiable"),
        ("Describe.", "It rises steadily at first and then falls after the peak in May", [], "unverifiable"),
        ("Prove the sum is 10 and give it.", "10", [], "numeric"),
    ],
)
def test_classify_answer(problem, answer, choices, expected):
    assert classify_answer(problem, answer, choices) == expected


def _image(size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, "white").save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"answer": " "}, "empty answer"),
        ({"answer_type": "unverifiable"}, "unverifiable answer"),
        ({"problem": " "}, "empty problem"),
        ({"problem": "x" * 101}, "problem too long"),
        ({"images": [_image((20, 200))]}, "image too small"),
        ({"images": [_image((120, 120))]}, "image too large"),
        ({"problem": "", "images": [_image((64, 64))]}, None),  # the question may live in the image
        ({}, None),
    ],
)
def test_filter_reason(fields, reason):
    cfg = CurationConfig(sources=[{"kind": "synthetic_text"}], max_problem_chars=100, min_image_side=28, max_image_pixels=10_000)
    sample = Sample(**{"id": "s", "source": "t", "problem": "What is 1+1?", "answer": "2", "answer_type": "numeric", **fields})
    assert filter_reason(sample, cfg) == reason


def test_dedup_kinds():
    dedup = Deduplicator(image_hash_distance=4)
    jpeg = io.BytesIO()
    Image.open(io.BytesIO(png(1))).convert("RGB").resize((70, 70)).save(jpeg, "JPEG", quality=90)
    rows = [
        ("What is 2+2?", [], None),
        ("What is 2+2?", [], "duplicate (exact)"),
        ("what is  2+2 ?", [], "duplicate (normalised text)"),
        ("Count the shapes.", [png(1)], None),
        ("Count the shapes.", [png(2)], None),  # same words, another figure: another problem
        ("Count the shapes.", [jpeg.getvalue()], "duplicate (image hash)"),
        ("Name the colours.", [png(1)], None),  # same figure, another question: another problem
    ]
    for problem, images, expected in rows:
        assert dedup.check(Sample(id="s", source="t", problem=problem, answer="1", images=images)) == expected


def test_perceptual_hash_is_stable_under_reencoding_and_separates_figures():
    jpeg = io.BytesIO()
    Image.open(io.BytesIO(png(3))).convert("RGB").save(jpeg, "JPEG", quality=80)
    assert hamming(perceptual_hash(png(3)), perceptual_hash(jpeg.getvalue())) <= 4
    assert hamming(perceptual_hash(png(3)), perceptual_hash(png(4))) > 8


CANDIDATES = [Candidate(f"t{i}", False, False) for i in range(6)] + [Candidate(f"i{i}", True, i % 3 != 0) for i in range(9)]


@pytest.mark.parametrize("overlap", ["shared", "disjoint"])
def test_assign_pools(overlap):
    ordered = assign_pools(CANDIDATES, PoolsConfig(overlap=overlap), seed=0)
    pools = {name: set(ids) for name, ids in ordered.items()}
    assert all(len(ids) == len(set(ids)) for ids in ordered.values())
    assert pools["text"] == {f"t{i}" for i in range(6)}
    captioned = {c.id for c in CANDIDATES if c.has_caption}
    assert pools["image_caption"] <= captioned
    if overlap == "shared":
        assert pools["image"] == {f"i{i}" for i in range(9)} and pools["image_caption"] == captioned
    else:
        assert not pools["image"] & pools["image_caption"] and len(pools["image"]) == 5
    assert assign_pools(CANDIDATES, PoolsConfig(overlap=overlap), seed=0) == ordered  # seeded, reproducible
    assert ordered["text"] != sorted(ordered["text"])  # shuffled, not in input order


def test_pool_caps_are_seeded_subsets():
    capped = assign_pools(CANDIDATES, PoolsConfig(max_text=2, max_image=3, max_image_caption=1), seed=1)
    assert [len(capped[p]) for p in ("text", "image", "image_caption")] == [2, 3, 1]
    assert capped != assign_pools(CANDIDATES, PoolsConfig(max_text=2, max_image=3, max_image_caption=1), seed=2)


def test_histogram():
    assert histogram([0.0, 0.05, 0.5, 0.99, 1.0]) == [2, 0, 0, 0, 0, 1, 0, 0, 0, 2]
