"""The phase stages: one GRPO phase on TRL, from the previous phase's weights (or the base model) to a model directory.

Phase N reads its pool from the curate artifact: text (phase 1), image_caption (phase 2), image (phase 3); the prompt
builder decides what the policy sees, so this module never special-cases a phase beyond picking its pool.

This module prepares and launches; `grpo_phase` trains. With one process the phase trains in this (stage) process;
with more it runs `accelerate launch` as a grandchild, which dies with the stage's process group. Either way a restart
of the same stage key first restores the newest checkpoint synced to the store, so a phase loses at most one
checkpoint interval, whichever machine picks it up.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

from infimmr_core import threads
from infimmr_core.checkpoints import prune, restore_latest
from infimmr_core.config import DistributedSettings
from infimmr_core.context import StageContext
from infimmr_core.grpo_phase import MODEL_DIR, PhaseRun, phase_rows, train
from infimmr_core.layout import CURVES_FILE, METRICS_FILE, RUN_RECORD_SUFFIX
from infimmr_core.plots import phase_panel, render
from infimmr_core.base_model import base_model_dir
from infimmr_core.store import StoreError

__all__ = ["MODEL_DIR", "after_commit", "phase_rows", "run"]

ACCELERATE_CONFIGS = ("single_gpu", "multi_gpu", "cpu_gloo", "deepspeed_zero2", "deepspeed_zero3", "fsdp")


def phase_number(stage: str) -> int:
    return int(stage.removeprefix("phase"))


def initial_model_dir(ctx: StageContext, number: int) -> Path:
    if number == 1:
        return base_model_dir(ctx)
    return ctx.inputs[f"phase{number - 1}"] / MODEL_DIR


def accelerate_config_path(dist: DistributedSettings, device: str) -> Path:
    name = dist.accelerate_config
    if name == "auto":
        name = "cpu_gloo" if device == "cpu" else ("multi_gpu" if dist.num_processes * dist.num_machines > 1 else "single_gpu")
    if name in ACCELERATE_CONFIGS:
        return Path(str(resources.files("infimmr_core") / "accelerate_configs" / f"{name}.yaml"))
    path = Path(name).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"accelerate_config {name!r} is neither one of {ACCELERATE_CONFIGS} nor a file")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def accelerate_command(dist: DistributedSettings, device: str, run_path: Path) -> list[str]:
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch",
        "--config_file", str(accelerate_config_path(dist, device)),
        "--num_processes", str(dist.num_processes * dist.num_machines),  # accelerate counts all nodes' processes
        "--num_machines", str(dist.num_machines),
        "--machine_rank", str(dist.machine_rank),
        "--main_process_port", str(dist.main_process_port or _free_port()),
    ]
    if dist.main_process_ip:
        cmd += ["--main_process_ip", dist.main_process_ip]
    return cmd + ["-m", "infimmr_core.grpo_phase", str(run_path)]


def _launch(run: PhaseRun, ctx: StageContext) -> dict[str, Any]:
    dist = run.cfg.distributed
    if dist.num_processes * dist.num_machines == 1:
        return train(run)
    run_path = ctx.work_dir / "phase-run.json"
    run_path.write_text(run.model_dump_json())
    cmd = accelerate_command(dist, ctx.device, run_path)
    ctx.log(f"launching {dist.num_processes} processes: {' '.join(cmd)}")
    # Same process group as this stage process: the runner's kill (timeout, parent death) reaches every rank.
    # Each rank's share of this process's cores (or the recipe's runtime.torch_threads): torch reads it as it starts.
    rank_threads = threads.intra_op_threads(ctx.recipe.runtime.torch_threads, processes=dist.num_processes)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": str(rank_threads)}
    rc = subprocess.run(cmd, env=env).returncode
    if rc != 0:
        raise RuntimeError(f"accelerate launch of phase {run.number} exited with code {rc}")
    return json.loads(run.summary_path.read_text())


def run(ctx: StageContext) -> dict[str, Any]:
    number = phase_number(ctx.stage)
    cfg = ctx.recipe.phases[number]
    init_dir = initial_model_dir(ctx, number)
    trainer_dir = ctx.work_dir / "trainer"
    trainer_dir.mkdir(parents=True, exist_ok=True)
    resume_from = restore_latest(ctx.store, ctx.stage, ctx.key, trainer_dir) if ctx.store is not None else None
    if resume_from is not None:
        ctx.log(f"resuming from the stored checkpoint {resume_from.name}")
    run_spec = PhaseRun(
        stage=ctx.stage, key=ctx.key, number=number, recipe=ctx.recipe,
        pool_path=ctx.inputs["curate"] / "pools" / f"{cfg.input}.parquet", init_dir=init_dir,
        out_dir=ctx.out_dir, trainer_dir=trainer_dir, device=ctx.device, resume_from=resume_from,
        summary_path=ctx.work_dir / "summary.json", record_dir=ctx.work_dir / "record",
    )
    ctx.log(f"phase {number} ({cfg.input}) from {init_dir}")
    summary = _launch(run_spec, ctx)
    log = [json.loads(line) for line in (ctx.out_dir / METRICS_FILE).read_text().splitlines() if line.strip()]
    if panel := phase_panel(f"{ctx.stage} ({cfg.input}): training", log):
        (ctx.out_dir / CURVES_FILE).write_bytes(render([panel], (480, 280)))
    _store_record(ctx, run_spec.record_dir)
    ctx.log(f"phase {number} done: {summary}")
    return summary


def _store_record(ctx: StageContext, record_dir: Path | None) -> None:
    """The run record goes beside the phase artifact, at the same key under `<phase>-run`: the wall-clock figures and
    TensorBoard events of this computation, which the artifact leaves out so that its digest is the key's alone."""
    if ctx.store is None or record_dir is None or not record_dir.is_dir():
        return
    stage = f"{ctx.stage}{RUN_RECORD_SUFFIX}"
    try:
        # replace: the record describes the latest computation of the key (a forced or crashed-then-rerun one too).
        ctx.store.put_dir(stage, ctx.key, record_dir, key_inputs={"record_of": ctx.stage, "key": ctx.key},
                          replace=True)
    except StoreError as error:  # a record is worth no lost phase: the artifact still commits
        ctx.log(f"the run record {stage}/{ctx.key} could not be stored: {error}")
    else:
        ctx.log(f"run record (timings, TensorBoard events): {ctx.store.artifact_uri(stage, ctx.key)}")


def after_commit(ctx: StageContext) -> None:
    """The phase artifact is committed: its checkpoints are no longer needed to resume it."""
    if ctx.store is not None:
        prune(ctx.store, ctx.stage, ctx.key, keep=0)
