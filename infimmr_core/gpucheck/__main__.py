"""`python -m infimmr_core.gpucheck [--tiny] [--workdir DIR] [--out FILE]`: the JSON report on stdout."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
from pathlib import Path

# Offline by construction: a GPU loan has no network, and nothing here needs one (the models are built locally).
for variable in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ.setdefault(variable, "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m infimmr_core.gpucheck", description=__doc__)
    parser.add_argument("--tiny", action="store_true", help="the tiny model on CPU (how CI runs it)")
    parser.add_argument("--workdir", type=Path, help="where models and checkpoints go (default: a temporary folder)")
    parser.add_argument("--out", type=Path, help="also write the JSON report here")
    args = parser.parse_args(argv)

    from infimmr_core.gpucheck.run import run_check

    # stdout carries the report alone: Trainer prints its log lines there, so they go to stderr with the rest.
    with tempfile.TemporaryDirectory(prefix="infimmr-gpu-check-") as tmp, contextlib.redirect_stdout(sys.stderr):
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        report = run_check(args.tiny, workdir)
    text = json.dumps(report, indent=1)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    sys.stdout.write(text + "\n")


if __name__ == "__main__":
    main()
