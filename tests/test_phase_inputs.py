"""What the policy sees in each phase, checked on the tokenized prompts the processor produces from the training
stage's own rows: phase 1 text only; phase 2 image tokens and the caption; phase 3 image tokens and no caption."""

import pytest

from infimmr_core.config import PromptConfig
from infimmr_core.data import synthetic
from infimmr_core.models import load_processor
from infimmr_core.recipes import load_recipe
from infimmr_core.training import phase_rows

CAPTION = "Two red circles and one blue square drawn on white"


@pytest.fixture(scope="module")
def processor(tiny_model_dir):
    return load_processor(tiny_model_dir)


def tokenized(processor, row):
    text = processor.apply_chat_template(row["prompt"], tokenize=False, add_generation_prompt=True)
    batch = processor(text=[text], images=row.get("images") or None, return_tensors="pt")
    return text, batch


@pytest.mark.parametrize(
    ("phase", "samples", "has_image", "has_caption"),
    [
        (1, lambda: synthetic.text_problems(2, seed=1), False, False),
        (2, lambda: [s.model_copy(update={"caption": CAPTION}) for s in synthetic.image_problems(2, seed=2)], True, True),
        (3, lambda: [s.model_copy(update={"caption": CAPTION}) for s in synthetic.image_problems(2, seed=2)], True, False),
    ],
)
def test_phase_prompt_shapes(processor, phase, samples, has_image, has_caption):
    recipe = load_recipe("smoke")
    image_pad = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    for row in phase_rows(samples(), recipe.phases[phase], PromptConfig()):
        text, batch = tokenized(processor, row)
        ids = batch["input_ids"][0].tolist()
        assert (image_pad in ids) is has_image
        assert ("pixel_values" in batch) is has_image
        assert ("images" in row) is has_image
        if has_image:
            grid = batch["image_grid_thw"][0]
            assert ids.count(image_pad) == int(grid.prod()) // processor.image_processor.merge_size**2
        assert (CAPTION in text) is has_caption
        assert (CAPTION in processor.tokenizer.decode(ids)) is has_caption
        assert row["answer"]


def test_phase_rows_reject_wrong_pool():
    recipe = load_recipe("smoke")
    with pytest.raises(ValueError, match="text-only"):
        phase_rows(synthetic.image_problems(1, seed=0), recipe.phases[1], PromptConfig())
    with pytest.raises(ValueError, match="no caption"):
        phase_rows(synthetic.image_problems(1, seed=0), recipe.phases[2], PromptConfig())
