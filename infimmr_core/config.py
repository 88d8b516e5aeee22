"""The recipe: one pydantic model tree for the whole pipeline.

The same models are the YAML recipes shipped in `infimmr_core/recipes/`, the CLI's `--set` overrides and the Prefect
UI's run form, so a field's description and constraints are written once, here.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.fields import FieldInfo

from infimmr_core.data.prompts import DEFAULT_CAPTION_TEMPLATE, DEFAULT_SYSTEM_PROMPT, PhaseInput, validate_caption_template
from infimmr_core.lease import LEASE_SECONDS
from infimmr_core.rewards import AnswerFormat, FormatMode
from infimmr_core.trl_compat import colocate_image_problem, installed_trl


def operational(default: Any = ..., **kwargs: Any) -> Any:
    """A field that says how or where a stage runs, never what it produces (a node's rank, a port, a worker count,
    where checkpoints go). No artifact key holds it, so changing it recomputes nothing and every node of one run
    computes the same keys. Every other field shapes the artifacts of the stages whose slice holds it."""
    if "default_factory" in kwargs:
        return Field(json_schema_extra={"operational": True}, **kwargs)
    return Field(default, json_schema_extra={"operational": True}, **kwargs)


def is_operational(field: FieldInfo) -> bool:
    return isinstance(field.json_schema_extra, dict) and field.json_schema_extra.get("operational") is True


class Strict(BaseModel):
    # Unknown keys are errors: a typo in a recipe must fail loudly, not silently fall back to a default. Infinity and
    # NaN are never a setting (`learning_rate=.inf` would pass `gt=0`).
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class TinyModelConfig(Strict):
    """The shape of the offline 'tiny' Qwen2.5-VL (tests, smoke and demo recipes)."""

    layers: int = Field(2, ge=1, description="Language-model layers.")
    hidden_size: int = Field(64, ge=32, multiple_of=32, description="Language-model width (heads = width / 16).")
    warm_start_steps: int = Field(
        300, ge=0, description="Steps of the builder's own loose format warm start (random answers, so rewards vary "
        "for tests); 0 = none, e.g. when the recipe's `warmup` stage teaches the tasks."
    )


class ModelRef(Strict):
    name_or_path: str = Field(
        "Qwen/Qwen2.5-VL-3B-Instruct",
        description="'tiny' (a tiny random Qwen2.5-VL built offline), a local model directory, or a Hub id.",
    )
    revision: str | None = Field(None, description="Hub revision (commit sha or tag) to pin; None = default branch.")
    seed: int = Field(0, description="Seed for building the 'tiny' model; ignored otherwise.")
    tiny: TinyModelConfig | None = Field(
        None, description="Shape of the 'tiny' model; None = the default (2 layers, width 64, 300 warm-start steps)."
    )


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
    # How the store copes with a flaky S3 and a full disk: none of it changes what an artifact holds.
    retry_attempts: int = operational(
        8, ge=1, le=100, description="Attempts of every S3 store operation (body reads included), with exponential "
        "backoff and jitter, before it fails with StoreUnavailable."
    )
    retry_seconds: float = operational(
        300.0, gt=0, le=86400, description="Total seconds one S3 store operation may spend retrying."
    )
    request_attempts: int = operational(
        3, ge=1, le=20, description="botocore's own attempts per HTTP request (standard retry mode), inside each store "
        "attempt: at most retry_attempts x request_attempts requests per operation, within retry_seconds."
    )
    cache_max_bytes: int = operational(
        200 * 1024**3, ge=0, description="Bound of the S3 download cache of each bucket (bytes); least recently used "
        "whole artifacts are evicted after a download that exceeds it."
    )
    keep_failed_work_days: float = operational(
        7, ge=0, description="A failed key's work directory in the cache (what a rerun of that key resumes from) is "
        "removed by a later run once nothing has written to it for this many days; 0 keeps it until its key runs again."
    )
    lease_seconds: float = operational(
        LEASE_SECONDS, ge=1, le=86400, description="How long a stage's lease on its key (single flight: one run "
        "computes a key, the others wait for it) outlives its last renewal; the owner renews it every quarter of this. "
        "A run that died blocks its keys this long; a run stalled longer than this (swapping, a frozen VM) loses its "
        "keys to a waiting run."
    )


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
        "lenient", description="lmm_r1 = LMM-R1's exact format regex (no whitespace between `</think>` and `<answer>`, no "
        "`\\boxed{}` required); lenient = ours: whitespace around blocks allowed, each tag exactly once, non-empty answer "
        "in the answer_format."
    )
    answer_format: AnswerFormat = Field(
        "answer_tag_boxed",
        description="Where the final answer must be: `<answer>` tags, `\\boxed{}`, or `\\boxed{}` inside `<answer>`.",
    )
    timeout_seconds: float = Field(5.0, gt=0, description="Per-completion verification timeout.")
    workers: int = operational(2, ge=1, description="Worker processes for batch scoring.")


class GenerationConfig(Strict):
    backend: Literal["transformers", "vllm"] = Field("transformers", description="vllm needs a GPU and the gpu extra.")
    batch_size: int = Field(8, ge=1, description="Requests per generate call.")
    max_new_tokens: int = Field(4096, ge=1, description="Longest completion generated, in tokens.")
    temperature: float = Field(0.0, ge=0, description="0 = greedy.")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling: the most likely tokens up to this total probability; 1 = off.")
    max_pixels: int | None = Field(None, ge=1, description="Image max pixels for the processor; None = model default.")


SourceKind = Literal[
    "synthetic_text", "synthetic_image", "synthetic_sum_text", "synthetic_sum_image", "jsonl", "canonical",
    "deepscaler", "virl39k", "geometry3k", "mathv360k",
]


class SourceConfig(Strict):
    kind: SourceKind = Field(
        description="Row schema: synthetic_text / synthetic_image (generated), synthetic_sum_text / synthetic_sum_image "
        "(the demo's sums of two digits, as text or as a captioned image), canonical (our Sample fields, renamed by "
        "`mapping`, a `caption` column included; 'jsonl' is its old name), or a known dataset's own columns: "
        "deepscaler, virl39k, geometry3k, mathv360k."
    )
    path: str | None = Field(
        None,
        description="A local file (.jsonl/.json/.parquet/.csv), a `datasets.save_to_disk` folder, or a Hub id "
        "read with `datasets.load_dataset`.",
    )
    format: Literal["auto", "jsonl", "json", "parquet", "csv", "disk", "hub"] = Field(
        "auto", description="How to read `path`; auto = by suffix, a save_to_disk folder, or a Hub id when no such path exists."
    )
    mapping: dict[str, str] = Field(
        default_factory=dict,
        description="Canonical field -> source column (e.g. {problem: question, answer: solution_value}); "
        "applied before the schema adapter, so it also renames columns of known datasets.",
    )
    name: str | None = Field(None, description="Label stored in each sample's `source`; None = the kind or the file name.")
    hub_config: str | None = Field(None, description="`datasets` configuration name (Hub ids and loading scripts).")
    split: str = Field(
        "train", description="Split to read (Hub ids and save_to_disk DatasetDicts); synthetic_sum_*: 'test' draws "
        "from the held-out items, anything else from the training items."
    )
    revision: str | None = Field(None, description="Hub revision to pin.")
    image_root: str | None = Field(
        None, description="Folder that relative image paths resolve in (and must stay in); None = the file's folder."
    )
    max_rows: int | None = Field(None, ge=1, description="Read at most this many rows (None = all).")
    count: int = Field(32, ge=1, description="Rows to generate (synthetic sources).")
    seed: int = Field(0, description="Seed (synthetic sources).")

    @model_validator(mode="after")
    def _path_for_files(self) -> SourceConfig:
        if not self.kind.startswith("synthetic") and not self.path:
            raise ValueError(f"source kind {self.kind!r} needs a path (file, folder or Hub id)")
        return self


class CaptionPrompts(Strict):
    """Instruction per image type: a diagram needs its labels and relations read out, a chart its axes and values."""

    geometry: str = Field(
        "Describe this geometry diagram precisely: every point label, segment, angle mark, length, and the relations "
        "(parallel, perpendicular, tangent, inscribed) that the figure shows. Do not solve any problem.",
        description="Geometry diagrams and other line drawings.",
    )
    chart: str = Field(
        "Describe this chart or plot: its type, title, axes with units and ranges, legend, and the values of every "
        "series as precisely as they can be read. Do not draw conclusions.",
        description="Charts, plots, function graphs.",
    )
    table: str = Field(
        "Transcribe this table as Markdown with every header and cell, then say what each row and column means.",
        description="Tables.",
    )
    natural: str = Field(
        "Describe this image in detail: every object, its count, colour, position, any text or numbers, and how "
        "the objects relate to each other.",
        description="Photographs, illustrations and anything else.",
    )


class CaptioningConfig(Strict):
    enabled: bool = Field(True, description="Generate captions for image samples (needed by phase 2).")
    model: ModelRef | None = Field(None, description="Captioner; None = the base model.")
    prompts: CaptionPrompts = Field(
        default_factory=CaptionPrompts,
        description="Instruction per image type; the type comes from the source (metadata.image_type) or is detected.",
    )
    min_chars: int = Field(1, ge=1, description="Shorter captions fail the check and are quarantined.")
    max_chars: int = Field(4000, ge=1, description="Longer captions (runaway generations) fail the check.")
    leak_min_chars: int = Field(
        2, ge=1, description="Answers at least this long (normalised, not multiple choice) must not appear in the caption."
    )
    generation: GenerationConfig = Field(
        default_factory=lambda: GenerationConfig(max_new_tokens=512), description="How captions are generated."
    )


class DifficultyConfig(Strict):
    enabled: bool = Field(True, description="Keep a pass-rate band, from policy rollouts or a dataset's own column.")
    policy: ModelRef | None = Field(None, description="Policy rolled out; None = the phase's starting model (the base model).")
    pass_rate_column: str | None = Field(
        None,
        description="Take the pass rate from this source column (kept in metadata, e.g. ViRL39K's "
        "PassRate_32BTrained) instead of rolling out; rows without a value in [0, 1] are filtered.",
    )
    rollouts: int = Field(8, ge=1, description="k rollouts per sample (chosen default: 8).")
    min_pass_rate: float = Field(0.0, ge=0, le=1, description="Lower end of the kept pass-rate band (see inclusive).")
    max_pass_rate: float = Field(1.0, ge=0, le=1, description="Upper end of the kept pass-rate band (see inclusive).")
    inclusive: bool = Field(False, description="False keeps min < p < max (default 0 < p < 1); True keeps min <= p <= max.")
    generation: GenerationConfig = Field(
        default_factory=lambda: GenerationConfig(temperature=1.0),
        description="How rollouts are sampled (temperature 1, so the k rollouts of a sample differ).",
    )

    @model_validator(mode="after")
    def _band(self) -> DifficultyConfig:
        if self.min_pass_rate > self.max_pass_rate:
            raise ValueError(f"min_pass_rate {self.min_pass_rate} > max_pass_rate {self.max_pass_rate}")
        return self

    @property
    def rolls_out(self) -> bool:
        """Whether pass rates come from policy rollouts (rather than a dataset column, or not at all)."""
        return self.enabled and self.pass_rate_column is None

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


class BenchmarkRef(Strict):
    kind: Literal["mathverse", "mathvista", "mathvision", "olympiadbench", "math500", "canonical"] = Field(
        description="Benchmark schema; canonical = our Sample fields (renamed by `mapping`)."
    )
    path: str | None = Field(
        None, description="Local file or save_to_disk folder, or a Hub id; None = the benchmark's official Hub id."
    )
    hub_config: str | None = Field(None, description="Configuration; None = the benchmark's usual one.")
    split: str | None = Field(None, description="Split; None = the benchmark's evaluation split.")
    mapping: dict[str, str] = Field(default_factory=dict, description="Field -> column renames (id, problem, images).")


class DecontaminationConfig(Strict):
    benchmarks: list[BenchmarkRef] = Field(
        default_factory=list, description="Evaluation benchmarks whose items must not be trained on."
    )
    ngram: int = Field(8, ge=1, description="Word n-gram size for question overlap (texts shorter than n count as one n-gram).")
    threshold: float = Field(
        0.5, gt=0, le=1,
        description="A sample is contaminated when this fraction of a benchmark question's n-grams occur in it.",
    )
    image_hash_max_distance: int | None = Field(
        4, ge=0, le=64, description="Hamming distance of 64-bit perceptual hashes that counts as the same image; None = off."
    )


_MiB = 1024 * 1024


class RowLimits(Strict):
    """Bounds on one source row: no input can make curation allocate without bound or keep an absurd value. A row
    over any of them is quarantined with the bound named (e.g. `field too large: answer ...`)."""

    max_row_bytes: int = Field(
        16 * _MiB, ge=1024,
        description="A JSONL line, JSON array element or CSV record longer than this is quarantined without being parsed.",
    )
    max_row_group_bytes: int = Field(
        1024 * _MiB, ge=_MiB,
        description="A Parquet row group larger than this (uncompressed) is not read; each of its rows is quarantined.",
    )
    max_text_chars: int = Field(
        100_000, ge=1, description="Longest problem, caption or choice, in characters (over max_problem_chars is filtered)."
    )
    max_answer_chars: int = Field(10_000, ge=1, description="Longest gold answer, in characters.")
    max_id_chars: int = Field(512, ge=1, description="Longest row id, in characters.")
    max_choices: int = Field(64, ge=1, description="Most options of a multiple-choice row.")
    max_images: int = Field(16, ge=1, description="Most images of one row.")
    max_image_bytes: int = Field(
        64 * _MiB, ge=1024, description="An image file or embedded image larger than this is quarantined unread."
    )
    max_metadata_bytes: int = Field(
        _MiB, ge=1024, description="Largest metadata of one row (the source's extra columns), as JSON."
    )
    max_metadata_depth: int = Field(16, ge=1, description="Deepest nesting of lists and objects in a row's metadata.")


class CurationConfig(Strict):
    """Sources to the three phase pools: typing and filters, decontamination, dedup, captions, the pass-rate band."""

    sources: list[SourceConfig] = Field(min_length=1, description="Text and multimodal sources to curate.")
    max_problem_chars: int = Field(4000, ge=1, description="Longer problems are filtered out.")
    min_image_side: int = Field(28, ge=1, description="Images with a shorter side are filtered (one Qwen2.5-VL patch).")
    max_image_pixels: int = Field(16_777_216, ge=1, description="Images with more pixels are filtered (4096 x 4096).")
    max_decode_pixels: int = Field(
        89_478_485, ge=1, description="Images claiming more pixels are never decoded (decompression bombs) and quarantined."
    )
    max_quarantine_fraction: float = Field(
        0.05, ge=0, le=1, description="The stage fails when more than this fraction of rows is quarantined."
    )
    limits: RowLimits = Field(
        default_factory=RowLimits, description="Bounds on one source row; a row over any of them is quarantined."
    )
    image_hash_dedup_distance: int | None = Field(
        None, ge=0, le=64,
        description="Also drop a sample whose image is within this perceptual-hash distance of a kept one and whose "
        "normalised question is equal; None = exact normalised text + image bytes only.",
    )
    shard_size: int = Field(256, ge=1, description="Rows per shard: the unit of captioning/rollout work that a rerun resumes at.")
    decontamination: DecontaminationConfig = Field(
        default_factory=DecontaminationConfig, description="Removing samples that overlap the evaluation benchmarks."
    )
    captioning: CaptioningConfig = Field(
        default_factory=CaptioningConfig, description="Captions of image samples (phase 2 trains on image + caption)."
    )
    difficulty: DifficultyConfig = Field(
        default_factory=DifficultyConfig,
        description="The pass-rate band: samples the policy always or never solves teach it nothing.",
    )
    pools: PoolsConfig = Field(default_factory=PoolsConfig, description="How samples are split into the phase pools.")
    seed: int = Field(0, description="Seed for shuffling and splitting.")


class LoraSettings(Strict):
    """LoRA adapters (peft) for one phase; the phase artifact is the merged full model either way."""

    r: int = Field(16, ge=1, description="Adapter rank.")
    alpha: int = Field(32, ge=1, description="lora_alpha (scaling = alpha / r).")
    dropout: float = Field(0.05, ge=0, lt=1, description="Dropout on the adapters' inputs (lora_dropout).")
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        description="Module names to adapt (the language model's attention and MLP projections by default; the "
        "vision tower is always excluded).",
    )


class DistributedSettings(Strict):
    """How the phase process is launched: in the stage process, or as `accelerate launch` with N processes."""

    num_processes: int = Field(1, ge=1, description="Processes (GPUs) per machine; > 1 runs the phase under `accelerate launch`.")
    # Operational: DDP, ZeRO and FSDP compute the same update; which one fits a machine is not part of the model.
    accelerate_config: str = operational(
        "auto",
        description="Shipped config name (single_gpu, multi_gpu, cpu_gloo, deepspeed_zero2, deepspeed_zero3, fsdp), a "
        "path to an accelerate YAML, or auto (single_gpu / multi_gpu on CUDA, cpu_gloo on CPU).",
    )
    num_machines: int = Field(1, ge=1, description="Nodes; > 1 needs machine_rank and main_process_ip per node.")
    machine_rank: int = operational(0, ge=0, description="This node's rank, 0 .. num_machines - 1 (multi-node only).")
    main_process_ip: str | None = operational(None, description="Address of rank 0's node (multi-node only).")
    main_process_port: int | None = operational(None, ge=1, le=65535, description="Rendezvous port; None = a free one.")


class PhaseConfig(Strict):
    """One GRPO phase. Names follow TRL's GRPOConfig so its documentation applies."""

    input: PhaseInput = Field(description="text (phase 1), image_caption (phase 2) or image (phase 3).")
    learning_rate: float = Field(1e-6, gt=0, description="Peak learning rate of the AdamW optimiser.")
    lr_scheduler_type: str = Field("cosine_with_min_lr", description="A transformers scheduler name.")
    min_lr_rate: float = Field(0.1, ge=0, le=1, description="Floor of cosine_with_min_lr as a fraction of the peak.")
    warmup_ratio: float = Field(0.03, ge=0, lt=1, description="Linear warm-up as a fraction of total steps.")
    num_generations: int = Field(8, ge=2, description="Group size G: completions per prompt.")
    per_device_train_batch_size: int = Field(8, ge=1, description="Completions per device per micro-step.")
    gradient_accumulation_steps: int = Field(1, ge=1, description="Micro-steps accumulated into one optimiser step.")
    num_train_epochs: float = Field(2.0, gt=0, description="Passes over the phase's data (LMM-R1: 2).")
    max_steps: int = Field(-1, description="Optimiser steps to train; a positive value overrides num_train_epochs, -1 = off.")
    max_completion_length: int = Field(4096, ge=1, description="Longest rollout completion, in tokens; longer ones are cut.")
    temperature: float = Field(1.0, gt=0, description="Sampling temperature of the rollouts.")
    beta: float = Field(0.001, ge=0, description="KL coefficient; > 0 loads a frozen reference (the phase's initial policy).")
    use_bias_correction_kl: bool = Field(
        False,
        description="Weight the KL term by the importance ratio (DeepSeek-V3.2's unbiased KL gradient; TRL's "
        "use_bias_correction_kl). Only matters when beta > 0; TRL's default moved from false (1.9) to true (1.16).",
    )
    epsilon: float = Field(0.2, gt=0, description="PPO clip range (lower bound 1 - epsilon).")
    epsilon_high: float | None = Field(None, gt=0, description="Upper clip (DAPO clip-higher); None = epsilon.")
    num_iterations: int = Field(1, ge=1, description="Optimisation passes per generated batch (GRPO's mu).")
    prompts_per_step: int | None = Field(
        None, ge=1,
        description="Prompts per generation round (LMM-R1: 256); None = one optimiser step's worth "
        "(per_device_train_batch_size * gradient_accumulation_steps * processes / num_generations).",
    )
    loss_type: Literal["grpo", "dr_grpo", "dapo", "bnpo"] = Field(
        "grpo",
        description="How token losses are averaged (TRL's loss_type): grpo per sequence, then over sequences; bnpo over "
        "the batch's tokens; dapo over the whole accumulated batch's tokens; dr_grpo divided by a constant (Dr. GRPO).",
    )
    scale_rewards: Literal["group", "batch", "none"] = Field("group", description="Advantage normalisation.")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling for rollouts.")
    top_k: int = Field(0, ge=0, description="Top-k sampling for rollouts; 0 = off.")
    mask_truncated_completions: bool = Field(False, description="Exclude completions cut at max_completion_length from the loss.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient clipping.")
    bf16: bool = Field(True, description="bfloat16 mixed precision (a GPU that has it; false on CPU).")
    gradient_checkpointing: bool = operational(True, description="Recompute activations in the backward pass: less memory, same update.")
    seed: int = Field(42, description="Seed of the trainer: data order, rollout sampling, new weights (LoRA).")
    logging_steps: int = Field(1, ge=1, description="Log metrics (and advance the UI's progress bar) every N optimiser steps.")
    save_steps: int = operational(50, ge=1, description="Checkpoint (and sync it to the store) every N optimiser steps.")
    keep_last_checkpoints: int = operational(2, ge=1, description="Checkpoints kept locally and in the store; older are pruned.")
    eval_samples: int = Field(0, ge=0, description="Pool rows held out for in-training evaluation (0 = none).")
    eval_steps: int | None = Field(None, ge=1, description="Evaluate on the held-out rows every N steps (needs eval_samples).")
    report_to: list[str] = operational(default_factory=lambda: ["tensorboard"], description="tensorboard, wandb, ... or [].")
    max_samples: int | None = Field(None, ge=1, description="Use at most this many pool rows (None = all).")
    min_pixels: int | None = Field(None, ge=1, description="Image min pixels for the processor; None = model default.")
    max_pixels: int | None = Field(
        401408, ge=1, description="Image max pixels for the processor: 401408 = 512 patches of 28 x 28, about 0.4 MP "
        "(LMM-R1 trains at up to 640 patches); None = model default.",
    )
    freeze_vision_tower: bool = Field(False, description="Keep the vision encoder and merger frozen in this phase.")
    lora: LoraSettings | None = Field(None, description="Train LoRA adapters instead of all weights; None = full.")
    use_vllm: bool = Field(
        False, description="Roll out with vLLM (GPU only; the training environment needs the vllm package, which does not "
        "install next to Prefect 3.8.8 today: README, Installing)."
    )
    vllm_mode: Literal["auto", "colocate", "server"] = operational(
        "auto",
        description="colocate: vLLM shares the training GPUs; server: a `vllm serve` process (README, Training) at "
        "vllm_server_base_url; auto: colocate for text phases, server for image phases (colocated vLLM misaligns "
        "images with TRL <= 1.16, so image phases refuse colocate).",
    )
    vllm_server_base_url: str | None = operational(None, description="Server mode: e.g. http://10.0.0.5:8000.")
    vllm_gpu_memory_utilization: float = operational(0.3, gt=0, le=1, description="Colocate mode: GPU memory share for vLLM.")
    vllm_tensor_parallel_size: int = operational(1, ge=1, description="Colocate mode: tensor parallel size of vLLM.")
    distributed: DistributedSettings = Field(
        default_factory=DistributedSettings, description="One process, or `accelerate launch` over GPUs and nodes."
    )

    @model_validator(mode="after")
    def _batch_divisible(self) -> PhaseConfig:
        # TRL builds each generation batch from per-device micro-batches and splits it into groups of G completions.
        processes = self.distributed.num_processes * self.distributed.num_machines
        batch = self.per_device_train_batch_size * self.gradient_accumulation_steps
        if self.prompts_per_step is None:
            if batch * processes % self.num_generations:
                raise ValueError(
                    f"per_device_train_batch_size * gradient_accumulation_steps * processes = {batch * processes} "
                    f"is not divisible by num_generations = {self.num_generations}"
                )
        else:
            completions = self.prompts_per_step * self.num_generations
            if completions % (self.per_device_train_batch_size * processes):
                raise ValueError(
                    f"prompts_per_step * num_generations = {completions} is not divisible by "
                    f"per_device_train_batch_size * processes = {self.per_device_train_batch_size * processes}"
                )
        if self.eval_steps and not self.eval_samples:
            raise ValueError("eval_steps is set but eval_samples is 0: there is nothing to evaluate on")
        if self.use_vllm and self.rollout_vllm_mode == "server" and not self.vllm_server_base_url:
            raise ValueError(
                f"vllm_mode {self.vllm_mode!r} rolls out a {self.input!r} phase on a vLLM server: it needs vllm_server_base_url"
            )
        if problem := colocate_image_problem(self.input, self.use_vllm, self.rollout_vllm_mode, installed_trl()):
            raise ValueError(problem)
        return self

    @property
    def rollout_vllm_mode(self) -> Literal["colocate", "server"]:
        """TRL's vllm_mode: `auto` is colocate for text and server for images (see infimmr_core.trl_compat)."""
        if self.vllm_mode == "auto":
            return "colocate" if self.input == "text" else "server"
        return self.vllm_mode

    @property
    def steps_per_generation(self) -> int | None:
        """TRL's steps_per_generation for prompts_per_step (None = TRL's default, gradient_accumulation_steps)."""
        if self.prompts_per_step is None:
            return None
        processes = self.distributed.num_processes * self.distributed.num_machines
        return self.prompts_per_step * self.num_generations // (self.per_device_train_batch_size * processes)


class Phases(Strict):
    """The three GRPO phases of the curriculum, each starting from the previous phase's model."""

    # Keys are the phase numbers, so `--set phases.2.learning_rate=...` means phase 2, with no off-by-one.
    model_config = ConfigDict(extra="forbid", populate_by_name=True, serialize_by_alias=True)

    p1: PhaseConfig = Field(alias="1", description="Phase 1: foundational reasoning activation (text only).")
    p2: PhaseConfig = Field(alias="2", description="Phase 2: cross-modal adaptation (image + caption + question).")
    p3: PhaseConfig = Field(alias="3", description="Phase 3: multimodal enhancement (image + question).")

    def __getitem__(self, number: int) -> PhaseConfig:
        return {1: self.p1, 2: self.p2, 3: self.p3}[number]


BenchmarkName = Literal["mathverse", "mathvision", "mathvista", "olympiadbench", "math500"]
EvalModel = Literal["base", "phase1", "phase2", "phase3"]


class EvalSetConfig(Strict):
    name: str = Field(description="Name shown in the scores table.")
    kind: Literal["synthetic_text", "synthetic_image", "synthetic_sum_text", "synthetic_sum_image", "jsonl", "benchmark"] = Field(
        description="Adapter that reads the set; 'benchmark' = a published benchmark scored the way its authors score it."
    )
    path: str | None = Field(
        None, description="jsonl: the file. benchmark with source 'local': a save_to_disk folder or a parquet/jsonl file "
        "in the hub schema.",
    )
    count: int = Field(16, ge=1, description="Rows to generate (synthetic sets; benchmark fixtures: problems).")
    seed: int = Field(10_000, description="Keep eval seeds apart from training seeds.")
    input: PhaseInput = Field("image", description="How the model sees it (image sets: image + question).")
    benchmark: BenchmarkName | None = Field(None, description="Which benchmark (kind 'benchmark' only).")
    source: Literal["hub", "local", "fixture"] = Field(
        "hub", description="hub: the real dataset through `datasets`; local: `path`; fixture: tiny rows in the hub "
        "schema generated offline (tests, smoke).",
    )
    subsets: list[str] | None = Field(
        None, description="Hub configs to read (MathVerse: testmini, testmini_text_only; OlympiadBench: e.g. "
        "OE_MM_maths_en_COMP); None = the benchmark's default.",
    )
    split: str | None = Field(
        None, description="Hub split; None = the benchmark's default (e.g. testmini, test). synthetic_sum_*: None or "
        "'test' = the held-out items, never trained on."
    )
    revision: str | None = Field(None, description="Dataset revision (commit sha or tag) to pin; None = default branch.")
    limit: int | None = Field(None, ge=1, description="Use at most this many rows per subset (None = all).")

    @model_validator(mode="after")
    def _benchmark_fields(self) -> EvalSetConfig:
        if self.kind == "benchmark" and self.benchmark is None:
            raise ValueError(f"eval set {self.name!r}: kind 'benchmark' needs a benchmark")
        if self.kind == "benchmark" and self.source == "local" and not self.path:
            raise ValueError(f"eval set {self.name!r}: source 'local' needs a path")
        if self.kind == "jsonl" and not self.path:
            raise ValueError(f"eval set {self.name!r}: kind 'jsonl' needs a path")
        return self


class JudgeConfig(Strict):
    """An LLM judge behind any OpenAI-compatible chat-completions endpoint (a local vLLM server, for example)."""

    base_url: str = operational(description="Endpoint root, e.g. http://127.0.0.1:8000/v1 (…/chat/completions is appended).")
    model: str = Field(description="Judge model name as the endpoint knows it; reported next to every judged score.")
    api_key_env: str | None = operational(
        "OPENAI_API_KEY", description="Environment variable holding the API key (never logged or stored); None = none."
    )
    benchmarks: list[BenchmarkName] = Field(
        default_factory=lambda: ["mathverse", "mathvista", "olympiadbench"],
        description="Benchmarks whose official protocol uses a judge (MathVerse, MathVista; OlympiadBench in lmms-eval).",
    )
    max_tokens: int = Field(256, ge=1, description="Longest judge reply, in tokens.")
    timeout_seconds: float = operational(120.0, gt=0, description="Per request.")
    max_retries: int = operational(2, ge=0, description="Retries of a failed request (connection error, HTTP 5xx/429).")


class ReferenceRow(Strict):
    """Published scores shown beside ours, labelled as published (never measured by this pipeline)."""

    label: str = Field(description="Row label, e.g. 'Infi-MMR-3B'.")
    source: str = Field(description="Where the numbers are published (paper, table).")
    scores: dict[str, float] = Field(description="Eval set name -> published score (%).")


class EvaluationConfig(Strict):
    """Which models are scored on which sets, how they generate, and what the report shows beside them."""

    sets: list[EvalSetConfig] = Field(min_length=1, description="Sets to score: published benchmarks or local files.")
    generation: GenerationConfig = Field(
        default_factory=lambda: GenerationConfig(temperature=0.0), description="Decoding (greedy by default)."
    )
    models: list[EvalModel] = Field(
        default_factory=lambda: ["base", "phase1", "phase2", "phase3"],
        description="Models to evaluate, in table order: the base model and the output of each phase.",
    )
    question_template: str = Field(
        "{question}", description="User text around each benchmark question; must contain {question}."
    )
    shard_size: int = Field(64, ge=1, description="Predictions are checkpointed per shard of this many rows (resume).")
    judge: JudgeConfig | None = Field(None, description="Optional LLM judge; its scores are reported beside the rule ones.")
    reference_rows: list[ReferenceRow] = Field(default_factory=list, description="Published scores for the report.")

    @model_validator(mode="after")
    def _consistent(self) -> EvaluationConfig:
        if "{question}" not in self.question_template:
            raise ValueError("evaluation.question_template must contain {question}")
        names = [s.name for s in self.sets]
        if len(set(names)) != len(names):
            raise ValueError(f"evaluation set names must be unique: {names}")
        if len(set(self.models)) != len(self.models) or not self.models:
            raise ValueError(f"evaluation.models must be non-empty and unique: {self.models}")
        for row in self.reference_rows:
            unknown = sorted(set(row.scores) - set(names))
            if unknown:
                raise ValueError(f"reference row {row.label!r} names unknown eval sets {unknown}")
        return self


class WarmupTask(Strict):
    """One task of the supervised warm-up: a source whose samples carry worked solutions, and how the model sees it."""

    name: str = Field(description="Task name in the warm-up log and curve.")
    source: SourceConfig = Field(
        description="Samples with a worked solution in `metadata.solution` (a canonical source's `solution` column "
        "lands there; `metadata.solutions` may give one per input instead); image samples may name the classes they "
        "show in `metadata.image_labels` (vision pre-warm)."
    )
    input: PhaseInput = Field("text", description="text, image_caption (image + the sample's caption) or image.")


class WarmupConfig(Strict):
    """The `base` stage: a short supervised warm-up on worked solutions that turns `base_model` into the curriculum's
    starting model. A task whose dev accuracy has reached `target_accuracy` trains on a smaller share, and the warm-up
    stops once every task has reached it, so the model learns the format and part of each task but keeps headroom for
    GRPO. Recipes without it have no `base` stage."""

    tasks: list[WarmupTask] = Field(min_length=1, description="Tasks trained together, in equal shares per step.")
    learning_rate: float = Field(3e-3, gt=0, description="AdamW learning rate of the supervised steps.")
    batch_size: int = Field(24, ge=1, description="Examples per step, shared equally by the tasks still in the mix.")
    max_steps: int = Field(1500, ge=1, description="Stop here even if a task has not reached its target.")
    target_accuracy: float = Field(
        0.45, gt=0, le=1, description="The warm-up ends once every task's dev accuracy (greedy) has reached this."
    )
    resting_weight: float = Field(
        0.25, ge=0, le=1, description="Share of a task that has reached the target, relative to one that has not: "
        "enough rehearsal that training the others does not wipe it out, little enough that it keeps headroom."
    )
    check_every: int = Field(50, ge=1, description="Steps between dev checks.")
    dev_samples: int = Field(64, ge=1, description="Items per task held out of the warm-up's own data for the checks.")
    max_new_tokens: int = Field(32, ge=1, description="Longest completion in a dev check.")
    vision_steps: int = Field(
        100, ge=0, description="Vision pre-warm before any text training: steps teaching the vision tower to name "
        "the image's `metadata.image_labels` through a throwaway linear head (0 = off). Without it a tiny model never "
        "learns to read the image."
    )
    vision_learning_rate: float = Field(3e-3, gt=0, description="Learning rate of the vision pre-warm.")
    vision_batch_size: int = Field(32, ge=1, description="Images per vision pre-warm step.")
    keep_prewarmed_vision: bool = Field(
        True, description="After a vision pre-warm, the supervised steps leave the vision tower as the pre-warm left "
        "it and train the rest, so the language model learns to read a signal that holds still (trained along at the "
        "warm-up's rate, one seed of the demo never read the picture in 1,500 steps; frozen, it read it by step 725). "
        "Without a pre-warm the tower is always trained."
    )
    seed: int = Field(0, description="Seed of the data order and the throwaway head.")

    @model_validator(mode="after")
    def _unique_names(self) -> WarmupConfig:
        names = [t.name for t in self.tasks]
        if len(set(names)) != len(names):
            raise ValueError(f"warmup task names must be unique: {names}")
        return self


class PublishConfig(Strict):
    repo_id: str | None = Field(None, description="Hub repo to push to; None = only write the Hub-ready folder to the store.")
    private: bool = Field(True, description="Create new Hub repos as private.")
    token_env: str = operational("HF_TOKEN", description="Environment variable holding the Hub token (never logged or stored).")
    token_secret: str | None = operational(
        "hf-token", description="Prefect Secret block with the Hub token, used when the variable is unset; None = env only."
    )
    include_datasets: bool = Field(False, description="Also push the curated pools as a dataset repo '<repo_id>-data'.")


class RuntimeConfig(Strict):
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="Where stages compute; auto = cuda when available.")
    stage_timeout_seconds: int = Field(24 * 3600, ge=1, description="A stage's child process is killed after this.")
    torch_threads: int | None = Field(
        None, ge=1, description="torch intra-op threads in each stage process (and each rank of a multi-process phase); "
        "None = the process's share of the cores it may run on (its CPU affinity, divided among parallel shards or ranks)."
    )
    parallel_shards: int = Field(
        1, ge=1, description="Curation shards (captions + rollouts) run at once, each in its own process with its own "
        "model: 1 per GPU (or CPU budget) on this machine. Does not change any result."
    )
    gpu_stage_deployment: str | None = Field(
        None, description="Prefect deployment that runs each training phase, '{stage}' standing for its name (e.g. "
        "'infimmr-stage/k8s-stage-{stage}' on a GPU pool); None = in the pipeline's own process. Needs a shared (S3) store."
    )
    remote_stage_timeout_seconds: int | None = Field(
        None, ge=1, description="How long the pipeline waits for a stage run through gpu_stage_deployment, waiting for a "
        "worker included, before it fails naming the deployment and the flow run; None = stage_timeout_seconds + 1 hour."
    )


class Recipe(Strict):
    name: str = Field(description="Recipe name (shown in the model card).")
    description: str = Field("", description="What this recipe is for, in a sentence.")
    base_model: ModelRef = Field(
        default_factory=ModelRef, description="The model phase 1 starts from (and the default captioner and policy)."
    )
    warmup: WarmupConfig | None = Field(
        None, description="A supervised warm-up of base_model as a stage of its own (`base`), whose output is then the "
        "base model everywhere: phase 1, curation's policy and captioner, evaluation. None = base_model as it is."
    )
    store: StoreConfig = operational(default_factory=StoreConfig, description="Where artifacts are stored.")
    prompts: PromptConfig = Field(default_factory=PromptConfig, description="System prompt and phase-2 caption template.")
    rewards: RewardConfig = Field(default_factory=RewardConfig, description="Format and accuracy rewards.")
    curation: CurationConfig
    phases: Phases
    evaluation: EvaluationConfig
    publish: PublishConfig = Field(default_factory=PublishConfig, description="The Hub-ready folder and its upload.")
    runtime: RuntimeConfig = operational(
        default_factory=RuntimeConfig, description="How stages run on this machine: device, timeouts, threads, parallelism."
    )

    @model_validator(mode="after")
    def _phase_inputs_need_images(self) -> Recipe:
        if self.phases.p2.input == "image_caption" and not self.curation.captioning.enabled:
            raise ValueError("phases.2.input is image_caption but curation.captioning.enabled is false")
        return self
