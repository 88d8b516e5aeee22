"""Captioning: prompts per image type, caption checks, and resumable shards: a run killed after its first shard
is rerun without recaptioning that shard."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap
import time

import pytest

from curation_fixtures import png
from infimmr_core.config import CaptioningConfig
from infimmr_core.curation.captioning import caption_prompt, caption_shards, check_caption, image_type
from infimmr_core.curation.shards import results_of
from infimmr_core.data import synthetic
from infimmr_core.data.pool_io import write_pool
from infimmr_core.data.schema import Sample
from infimmr_core.inference import TransformersGenerator

CFG = CaptioningConfig.model_validate({"generation": {"max_new_tokens": 8, "batch_size": 4}})


def _photo() -> bytes:
    import io
    import random

    from PIL import Image

    rng = random.Random(0)
    img = Image.new("RGB", (64, 64))
    img.putdata([(rng.randrange(256), rng.randrange(256), rng.randrange(256)) for _ in range(64 * 64)])
    buffer = io.BytesIO()
    img.save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("problem", "metadata", "image", "expected"),
    [
        ("What is x?", {"image_type": "table"}, png(1), "table"),  # the source's label wins
        ("Use the table to find the total.", {}, png(1), "table"),
        ("The bar graph shows sales. Which month is highest?", {}, png(1), "chart"),
        ("In triangle ABC, find angle B.", {}, png(1), "geometry"),
        ("How many people are there?", {}, png(1), "geometry"),  # few colours: a drawing
        ("How many people are there?", {}, _photo(), "natural"),
    ],
)
def test_image_type(problem, metadata, image, expected):
    sample = Sample(id="s", source="t", problem=problem, answer="1", images=[image], metadata=metadata)
    assert image_type(sample) == expected
    assert caption_prompt(sample, CFG) == getattr(CFG.prompts, expected)


@pytest.mark.parametrize(
    ("caption", "answer", "answer_type", "reason"),
    [
        ("A right triangle with legs 3 and 4.", "5", "numeric", None),  # one-character answers are trivial
        ("A right triangle with legs 6 and 8 and hypotenuse 10.", "10", "numeric", "caption leaks the answer"),
        ("The numbers 100 and 3.12 are shown.", "12", "numeric", None),  # 12 only inside other numbers
        ("Options A and B are drawn.", "B", "multiple_choice", None),
        ("A circle of area 4 pi.", "4\\pi", "expression", None),
        ("The area is 4\\pi square units.", "4\\pi", "expression", "caption leaks the answer"),
        ("The square is Red.", "red", "text", "caption leaks the answer"),
        ("", "7", "numeric", "caption too short"),
        ("x" * 5000, "7", "numeric", "caption too long"),
    ],
)
def test_check_caption(caption, answer, answer_type, reason):
    sample = Sample(id="s", source="t", problem="q", answer=answer, answer_type=answer_type, images=[png(1)])
    assert check_caption(caption, sample, CFG) == reason


def _shards(tmp_path, count=3, per_shard=2):
    samples = synthetic.image_problems(count * per_shard, seed=5)
    paths = []
    for i in range(count):
        path = tmp_path / "accepted" / f"shard-{i:05d}.parquet"
        write_pool(samples[i * per_shard:(i + 1) * per_shard], path)
        paths.append(path)
    return samples, paths


CHILD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from infimmr_core.config import CaptioningConfig
    from infimmr_core.curation.captioning import caption_shards
    from infimmr_core.inference import TransformersGenerator

    model_dir, state, gate, *shards = sys.argv[1:]
    cfg = CaptioningConfig.model_validate({"generation": {"max_new_tokens": 8, "batch_size": 4}})

    class WaitsAfterFirstShard(TransformersGenerator):
        calls = 0
        def generate(self, requests, sampling):
            # From the second shard on, hold still so the test can kill this process at a known point.
            if WaitsAfterFirstShard.calls:
                Path(gate).touch()
                time.sleep(600)
            WaitsAfterFirstShard.calls += 1
            return super().generate(requests, sampling)

    caption_shards([Path(p) for p in shards], Path(state), cfg, lambda: WaitsAfterFirstShard(model_dir, device="cpu", batch_size=4), seed=0)
""")


class Recording:
    def __init__(self, inner):
        self.inner, self.images = inner, []

    def generate(self, requests, sampling):
        self.images += [hashlib.sha256(image.tobytes()).hexdigest() for r in requests for image in r.images]
        return self.inner.generate(requests, sampling)


def _pixels(sample):
    from infimmr_core.data.images import decode_image

    return hashlib.sha256(decode_image(sample.images[0]).tobytes()).hexdigest()


def test_killed_after_first_shard_resumes_without_recaptioning_it(tmp_path, tiny_model_dir):
    samples, paths = _shards(tmp_path)
    state, gate = tmp_path / "captions", tmp_path / "gate"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(tiny_model_dir), str(state), str(gate), *map(str, paths)])
    deadline = time.monotonic() + 120
    while not gate.exists():
        assert child.poll() is None and time.monotonic() < deadline, "captioning child died or stalled"
        time.sleep(0.1)
    child.kill()  # Popen's own kill: never signals a pid it has already reaped
    child.wait()
    first = state / "shard-00000.json"
    assert first.is_file() and not (state / "shard-00001.json").exists()
    before = first.read_bytes()

    recording = Recording(TransformersGenerator(tiny_model_dir, device="cpu", batch_size=4))
    assert caption_shards(paths, state, CFG, lambda: recording, seed=0, log=lambda m: None) == 2
    assert first.read_bytes() == before
    assert sorted(recording.images) == sorted(_pixels(s) for s in samples[2:])  # shards 2 and 3 only
    captioned = {k: v for p in paths for k, v in results_of(state, p).items()}
    assert set(captioned) == {s.id for s in samples}
    # A third run finds every shard finished and never loads the captioner.
    assert caption_shards(paths, state, CFG, lambda: pytest.fail("captioner loaded"), seed=0) == 0
