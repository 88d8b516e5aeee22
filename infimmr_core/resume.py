"""Restoring a phase's weights from one of its Trainer checkpoints: exactly, or not at all.

A Trainer checkpoint holds the weights as `save_pretrained` writes them, and since transformers 5 `save_pretrained`
reverts the model's weight conversion so that files keep the Hub's original names (Qwen2.5-VL: `model.layers.*`,
`visual.*`) while the live module tree says `model.language_model.*` and `model.visual.*`. `from_pretrained` applies
the conversion again; Trainer's own resume (`_load_from_checkpoint`) does not: it reads the file and calls
`load_state_dict(strict=False)`, so nothing matches, every weight keeps the phase's initial value, and transformers
only logs a warning while the optimizer, scheduler and step come back from the checkpoint.

Here the weights come back through `from_pretrained`, the path (and key conversion) that loads every final model, so
the round trip is exact whatever names the installed transformers version writes; and a checkpoint whose keys do not
match the model exactly is an error that names the keys, never a warning.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

EXAMPLES = 5  # keys of each kind named in an error: enough to see the naming pattern, short enough to read


class CheckpointMismatch(RuntimeError):
    """A checkpoint's weights do not match the model they are loaded into."""


def mismatch_message(source: str, missing: Iterable[str], unexpected: Iterable[str],
                     mismatched: Iterable[str] = ()) -> str | None:
    """None when every model weight was loaded and every checkpoint weight was used; else what went wrong, with counts
    and the first keys of each kind."""
    kinds = {"missing from the checkpoint": sorted(missing), "unexpected in the checkpoint": sorted(unexpected),
             "with another shape in the checkpoint": sorted(mismatched)}
    parts = [
        f"{len(keys)} {kind} (e.g. {', '.join(keys[:EXAMPLES])})" for kind, keys in kinds.items() if keys
    ]
    if not parts:
        return None
    return (f"checkpoint {source} does not match the model, refusing to resume from it: weights " + "; ".join(parts)
            + ". A resumed run must continue from exactly the weights it saved.")


def require_exact(source: str, missing: Iterable[str], unexpected: Iterable[str], mismatched: Iterable[str] = ()) -> None:
    if (message := mismatch_message(source, missing, unexpected, mismatched)) is not None:
        raise CheckpointMismatch(message)


def load_checkpoint_weights(model: Any, checkpoint_dir: str | Path) -> None:
    """Copy the weights `save_pretrained` wrote to `checkpoint_dir` into `model` (a transformers model, unwrapped),
    converting their names exactly as `from_pretrained` does; raise `CheckpointMismatch` unless every key matches."""
    source = str(checkpoint_dir)
    # The live config, not the saved one: the copy must have the module tree (and names) of the model it fills.
    loaded, info = type(model).from_pretrained(source, config=model.config, dtype=model.dtype, output_loading_info=True)
    require_exact(source, info["missing_keys"], info["unexpected_keys"], [k[0] for k in info["mismatched_keys"]])
    if info.get("error_msgs"):
        raise CheckpointMismatch(f"checkpoint {source} did not load cleanly: {'; '.join(info['error_msgs'])}")
    result = model.load_state_dict(loaded.state_dict(), strict=False)
    require_exact(source, result.missing_keys, result.unexpected_keys)


def load_adapter_weights(model: Any, checkpoint_dir: str | Path) -> None:
    """Load the adapter a PEFT model's checkpoint holds (peft saves and loads it under its own names) into the active
    adapter, trainable, as Trainer does; but raise `CheckpointMismatch` where Trainer ignores peft's report."""
    source = str(checkpoint_dir)
    result = model.load_adapter(source, model.active_adapter, is_trainable=True)
    require_exact(source, result.missing_keys, result.unexpected_keys)


def exact_resume(trainer_cls: type) -> type:
    """A subclass of the (transformers) `trainer_cls` whose resume restores the model's weights exactly."""

    class ExactResume(trainer_cls):
        def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Any = None) -> None:
            from transformers import PreTrainedModel

            model = self.model if model is None else model
            if self.is_fsdp_enabled:  # FSDP checkpoints have their own format and loader
                return super()._load_from_checkpoint(resume_from_checkpoint, model)
            if isinstance(model, PreTrainedModel):
                return load_checkpoint_weights(model, resume_from_checkpoint)
            if hasattr(model, "load_adapter") and hasattr(model, "active_adapter"):
                return load_adapter_weights(model, resume_from_checkpoint)
            return super()._load_from_checkpoint(resume_from_checkpoint, model)

        def _issue_warnings_after_load(self, load_result: Any) -> None:
            # Trainer only warns here; any load that still reaches it must not go on from the wrong weights.
            tied = set(getattr(self.model, "all_tied_weights_keys", None) or {})
            require_exact("(trainer load)", set(load_result.missing_keys) - tied, load_result.unexpected_keys)

    ExactResume.__name__ = ExactResume.__qualname__ = f"ExactResume{trainer_cls.__name__}"
    return ExactResume
