"""Benchmark adapters: fixtures in the hub schema, a local `datasets` copy with Image features, subsets and limits."""

from __future__ import annotations

from datasets import Dataset, DatasetDict

from infimmr_core.config import EvalSetConfig
from infimmr_core.evaluation import fixtures
from infimmr_core.evaluation.benchmarks import load_items


def _set(**kw) -> EvalSetConfig:
    return EvalSetConfig(name="s", kind="benchmark", **kw)


def test_local_copy_reads_like_the_hub_and_limit_applies(tmp_path):
    rows = fixtures.rows("mathvista", None, 5, 0)
    DatasetDict({"testmini": Dataset.from_list(rows)}).save_to_disk(str(tmp_path / "mathvista"))
    local = load_items(_set(benchmark="mathvista", source="local", path=str(tmp_path / "mathvista"), limit=3))
    fixture = load_items(_set(benchmark="mathvista", source="fixture", count=3, seed=0))
    assert [i.id for i in local] == [i.id for i in fixture] and len(local) == 3
    assert [i.images for i in local] == [i.images for i in fixture] and all(len(i.images) == 1 for i in local)
    assert local[0].choices == ("135°", "140°", "145°", "150°") and local[0].gold == "145°"
    assert "(A) 135°" in local[0].question and local[2].precision == 1


def test_mathverse_subsets_and_olympiad_subsets():
    verse = load_items(_set(benchmark="mathverse", source="fixture", count=2))
    groups = [i.group for i in verse]
    assert groups.count("Text Only") == 2 and len(verse) == 12  # 2 problems x 5 versions + text-only config
    assert all(not i.images for i in verse if i.group == "Text Only")
    olympiad = load_items(_set(benchmark="olympiadbench", source="fixture", count=1,
                               subsets=["OE_MM_maths_en_COMP", "OE_TO_maths_en_COMP"]))
    assert [len(i.images) for i in olympiad] == [1, 0]
    assert [i.group for i in olympiad] == ["OE_MM_maths_en_COMP", "OE_TO_maths_en_COMP"]


def test_olympiad_prompt_keeps_units_out_of_the_box():
    items = load_items(_set(benchmark="olympiadbench", source="fixture", count=6, subsets=["OE_TO_maths_en_COMP"]))
    falling = next(i for i in items if i.unit == "m")
    assert "do not include the unit" in falling.question and falling.tolerances == (0.1,)
    multiple = next(i for i in items if i.multiple_answers)
    assert "multiple answers" in multiple.question
