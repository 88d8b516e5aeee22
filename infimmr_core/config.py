"""The recipe: one pydantic model tree for the whole pipeline.

The same models are the YAML recipes shipped in `infimmr_core/recipes/`, the CLI's `--set` overrides and the Prefect
UI's run form, so a field's description and constraints are written once, here.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from infimmr_core.data.prompts import DEFAULT_CAPTION_TEMPLATE, DEFAULT_SYSTEM_PROMPT, PhaseInput, validate_caption_template
from infimmr_core.rewards import AnswerFormat, FormatMode


class Strict(BaseModel):
    # Unknown keys are errors: a typo in a recipe must fail loudly, not silently fall back to a default.
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelRef(Strict):
    name_or_path: str = Field(
        "Qwen/Qwen2.5-VL-3B-Instruct",
        description="'tiny' (a tiny random Qwen2.5-VL built offline), a local model directory, or a Hub id.",
    )
    revision: str | None = Field(None, description="Hub revision (commit sha or tag) to pin; None = default branch.")
    seed: int = Field(0, description="Seed for building the 'tiny' model; ignored otherwise.")


class StoreConfig(Strict):
    uri: str = Field(
        "file://./infimmr-store",
        description="Artifact store root: file://PATH (local directory) or s3://BUCKET/PREFIX.",
    )
    endpoint_url: str | None = Field(
        None, description="S3-compatible endpoint (MinIO, R2, Ceph); None = boto3's own configuration (AWS_ENDPOINT_URL...)."
    )
    region: str | None = Field(None, description="S3 region; None = boto3's own configuration.")
    profile: str | None = Field(None, description="AWS profile name; None = boto3's own configuration.")
    cache_dir: str | None = Field(None, description="Local download cache; None = $INFIMMR_CACHE_DIR or ~/.cache/infimmr.")


class PromptConfig(Strict):
    system_prompt: str = Field(
        DEFAULT_SYSTEM_PROMPT,
        description="System prompt for every phase, curation rollouts and evaluation (LMM-R1 convention).",
    )
    caption_template: str = Field(
        DEFAULT_CAPTION_TEMPLATE,
        description="Phase-2 user text: where the generated caption goes. Must contain {caption} and {question}.",
    )

    @model_validator(mode="after")
    def _template_fields(self) -> PromptConfig:
        validate_caption_template(self.caption_template)
        return self


class RewardConfig(Strict):
    format_weight: float = Field(0.5, ge=0, description="Weight of the format reward (LMM-R1: 0.5).")
    accuracy_weight: float = Field(1.0, ge=0, description="Weight of the accuracy reward (LMM-R1: 1.0).")
    format_mode: FormatMode = Field(
        "lenient", description="strict = LMM-R1's exact regex; lenient also allows surrounding whitespace."
    )
    answer_format: AnswerFormat = Field(
        "answer_tag_boxed", description="Where the final answer must be: <answer> tags, \\boxed{}, or \\boxed{} inside <answer>."
    )
    timeout_seconds: float = Field(5.0, gt=0, description="Per-completion verification timeout.")
    workers: int = Field(2, ge=1, description="Worker processes for batch scoring.")


class GenerationConfig(Strict):
    backend: Literal["transformers", "vllm"] = Field("transformers", description="vllm needs a GPU and the gpu extra.")
    batch_size: int = Field(8, ge=1, description="Requests per generate call.")
    max_new_tokens: int = Field(4096, ge=1)
    temperature: float = Field(0.0, ge=0, description="0 = greedy.")
    top_p: float = Field(1.0, gt=0, le=1)
    max_pixels: int | None = Field(None, ge=1, description="Image max pixels for the processor; None = model default.")


class SourceConfig(Strict):
    kind: Literal["synthetic_text", "synthetic_image", "jsonl"] = Field(description="Adapter that reads the source.")
    path: str | None = Field(None, description="File path for file-based sources.")
    count: int = Field(32, ge=1, description="Rows to generate (synthetic sources).")
    seed: int = Field(0, description="Seed (synthetic sources).")

    @model_validator(mode="after")
    def _path_for_files(self) -> SourceConfig:
        if self.kind == "jsonl" and not self.path:
            raise ValueError("source kind 'jsonl' needs a path")
        return self


class CaptioningConfig(Strict):
    enabled: bool = Field(True, description="Generate captions for image samples (needed by phase 2).")
    model: ModelRef | None = Field(None, description="Captioner; None = the base model.")
    prompt: str = Field(
        "Describe this image in detail: every object, number, label and geometric relation you can see.",
        description="Instruction given to the captioner with each image.",
    )
    generation: GenerationConfig = Field(default_factory=lambda: GenerationConfig(max_new_tokens=512))


class DifficultyConfig(Strict):
    enabled: bool = Field(True, description="Roll out the policy k times per sample and keep a pass-rate band.")
    rollouts: int = Field(8, ge=1, description="k rollouts per sample (chosen default: 8).")
    min_pass_rate: float = Field(0.0, ge=0, le=1)
    max_pass_rate: float = Field(1.0, ge=0, le=1)
    inclusive: bool = Field(False, description="False keeps min < p < max (default 0 < p < 1); True keeps min <= p <= max.")
    generation: GenerationConfig = Field(default_factory=lambda: GenerationConfig(temperature=1.0))

    @model_validator(mode="after")
    def _band(self) -> DifficultyConfig:
        if self.min_pass_rate > self.max_pass_rate:
            raise ValueError(f"min_pass_rate {self.min_pass_rate} > max_pass_rate {self.max_pass_rate}")
        return self

    def keeps(self, pass_rate: float) -> bool:
        if self.inclusive:
            return self.min_pass_rate <= pass_rate <= self.max_pass_rate
        return self.min_pass_rate < pass_rate < self.max_pass_rate


class PoolsConfig(Strict):
    overlap: Literal["shared", "disjoint"] = Field(
        "shared", description="shared: phases 2 and 3 draw from one image pool; disjoint: the pool is split in two."
    )
    max_text: int | None = Field(None, ge=1, description="Cap on the phase-1 pool size.")
    max_image_caption: int | None = Field(None, ge=1, description="Cap on the phase-2 pool size.")
    max_image: int | None = Field(None, ge=1, description="Cap on the phase-3 pool size.")


class CurationConfig(Strict):
    sources: list[SourceConfig] = Field(min_length=1, description="Text and multimodal sources to curate.")
    max_problem_chars: int = Field(4000, ge=1, description="Longer problems are filtered out.")
    captioning: CaptioningConfig = Field(default_factory=CaptioningConfig)
    difficulty: DifficultyConfig = Field(default_factory=DifficultyConfig)
    pools: PoolsConfig = Field(default_factory=PoolsConfig)
    seed: int = Field(0, description="Seed for shuffling and splitting.")


class PhaseConfig(Strict):
    """One GRPO phase. Names follow TRL's GRPOConfig so its documentation applies."""

    input: PhaseInput = Field(description="text (phase 1), image_caption (phase 2) or image (phase 3).")
    learning_rate: float = Field(1e-6, gt=0)
    lr_scheduler_type: str = Field("cosine_with_min_lr", description="A transformers scheduler name.")
    min_lr_rate: float = Field(0.1, ge=0, le=1, description="Floor of cosine_with_min_lr as a fraction of the peak.")
    warmup_ratio: float = Field(0.03, ge=0, lt=1, description="Linear warm-up as a fraction of total steps.")
    num_generations: int = Field(8, ge=2, description="Group size G: completions per prompt.")
    per_device_train_batch_size: int = Field(8, ge=1, description="Completions per device per micro-step.")
    gradient_accumulation_steps: int = Field(1, ge=1)
    num_train_epochs: float = Field(2.0, gt=0, description="Passes over the phase's data (LMM-R1: 2).")
    max_steps: int = Field(-1, description="> 0 overrides num_train_epochs.")
    max_completion_length: int = Field(4096, ge=1)
    temperature: float = Field(1.0, gt=0)
    beta: float = Field(0.001, ge=0, description="KL coefficient; > 0 loads a frozen reference (the phase's initial policy).")
    epsilon: float = Field(0.2, gt=0, description="PPO clip range.")
    loss_type: Literal["grpo", "dr_grpo", "dapo", "bnpo"] = Field("grpo")
    scale_rewards: Literal["group", "batch", "none"] = Field("group", description="Advantage normalisation.")
    bf16: bool = Field(True)
    gradient_checkpointing: bool = Field(True)
    seed: int = Field(42)
    logging_steps: int = Field(1, ge=1)
    save_steps: int = Field(50, ge=1)
    report_to: list[str] = Field(default_factory=lambda: ["tensorboard"])
    max_samples: int | None = Field(None, ge=1, description="Use at most this many pool rows (None = all).")
    min_pixels: int | None = Field(None, ge=1)
    max_pixels: int | None = Field(401408, ge=1, description="~0.4 MP = 512*28*28 (LMM-R1 trains at <=640*28*28).")

    @model_validator(mode="after")
    def _batch_divisible(self) -> PhaseConfig:
        # TRL builds each generation batch from per_device_batch * accumulation completions and splits it into groups.
        batch = self.per_device_train_batch_size * self.gradient_accumulation_steps
        if batch % self.num_generations:
            raise ValueError(
                f"per_device_train_batch_size * gradient_accumulation_steps = {batch} "
                f"is not divisible by num_generations = {self.num_generations}"
            )
        return self


class Phases(Strict):
    # Keys are the phase numbers, so `--set phases.2.learning_rate=...` means phase 2, with no off-by-one.
    model_config = ConfigDict(extra="forbid", populate_by_name=True, serialize_by_alias=True)

    p1: PhaseConfig = Field(alias="1", description="Phase 1: foundational reasoning activation (text only).")
    p2: PhaseConfig = Field(alias="2", description="Phase 2: cross-modal adaptation (image + caption + question).")
    p3: PhaseConfig = Field(alias="3", description="Phase 3: multimodal enhancement (image + question).")

    def __getitem__(self, number: int) -> PhaseConfig:
        return {1: self.p1, 2: self.p2, 3: self.p3}[number]


class EvalSetConfig(Strict):
    name: str = Field(description="Name shown in the scores table.")
    kind: Literal["synthetic_text", "synthetic_image", "jsonl"] = Field(description="Adapter that reads the set.")
    path: str | None = None
    count: int = Field(16, ge=1)
    seed: int = Field(10_000, description="Keep eval seeds apart from training seeds.")
    input: PhaseInput = Field("image", description="How the model sees it (image sets: image + question).")


class EvaluationConfig(Strict):
    sets: list[EvalSetConfig] = Field(min_length=1)
    generation: GenerationConfig = Field(default_factory=lambda: GenerationConfig(temperature=0.0))


class PublishConfig(Strict):
    repo_id: str | None = Field(None, description="Hub repo to push to; None = only write the Hub-ready folder to the store.")
    private: bool = Field(True)
    token_env: str = Field("HF_TOKEN", description="Environment variable holding the Hub token (never logged or stored).")


class RuntimeConfig(Strict):
    device: Literal["auto", "cpu", "cuda"] = Field("auto")
    stage_timeout_seconds: int = Field(24 * 3600, ge=1, description="A stage's child process is killed after this.")
    torch_threads: int | None = Field(None, ge=1, description="torch intra-op threads in stage processes; None = default.")


class Recipe(Strict):
    name: str = Field(description="Recipe name (shown in the model card).")
    description: str = Field("")
    base_model: ModelRef = Field(default_factory=ModelRef)
    store: StoreConfig = Field(default_factory=StoreConfig)
    prompts: PromptConfig = Field(default_factory=PromptConfig)
    rewards: RewardConfig = Field(default_factory=RewardConfig)
    curation: CurationConfig
    phases: Phases
    evaluation: EvaluationConfig
    publish: PublishConfig = Field(default_factory=PublishConfig)
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)

    @model_validator(mode="after")
    def _phase_inputs_need_images(self) -> Recipe:
        if self.phases.p2.input == "image_caption" and not self.curation.captioning.enabled:
            raise ValueError("phases.2.input is image_caption but curation.captioning.enabled is false")
        return self
