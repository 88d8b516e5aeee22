"""The canonical sample: every source adapter produces it, every later stage consumes it."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

AnswerType = Literal["multiple_choice", "numeric", "expression", "text", "unverifiable"]


class Sample(BaseModel):
    """One math problem with a verifiable gold answer, with or without images.

    Images are kept as encoded bytes (PNG/JPEG) so a sample is plain data: it serialises to
    Parquet/JSON and hashes the same on every machine. Decode with `data.images.decode_image`.
    """

    # NaN and infinity are no value of any field (a NaN pass rate would pass every band check as False).
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    id: str = Field(description="Stable id, unique within the curated pool (source-prefixed).")
    source: str = Field(description="Where the sample came from, e.g. 'synthetic-text' or a hub id.")
    problem: str = Field(description="Question text shown to the policy (no image placeholder tokens).")
    answer: str = Field(description="Gold answer as text (LaTeX allowed, no \\boxed{}).")
    answer_type: AnswerType = Field(default="expression", description="How the answer is verified.")
    choices: list[str] = Field(default_factory=list, description="Option texts for multiple choice (A, B, ...).")
    images: list[bytes] = Field(default_factory=list, description="Encoded images (PNG/JPEG bytes).")
    caption: str | None = Field(default=None, description="Generated caption (phase-2 input); None before captioning.")
    pass_rate: float | None = Field(default=None, ge=0, le=1, description="Fraction of policy rollouts judged correct.")
    split: str = Field(default="train", description="train / eval.")
    metadata: dict[str, Any] = Field(default_factory=dict, description="Source-specific extras (JSON-safe).")

    @property
    def has_image(self) -> bool:
        return bool(self.images)
