"""The Hub token for the publish stage: the environment variable named by the recipe, or else a Prefect Secret block.

The token is handed to the publish child process through its environment only for the duration of that call; it is
never a task parameter, a result, a log line or an artifact."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from infimmr_core.config import PublishConfig


@contextmanager
def hub_token(cfg: PublishConfig) -> Iterator[None]:
    if os.environ.get(cfg.token_env) or not cfg.repo_id or not cfg.token_secret:
        yield
        return
    from prefect.blocks.system import Secret

    try:
        token = Secret.load(cfg.token_secret).get()
    except ValueError:  # no such block: publish reports the missing token itself
        yield
        return
    os.environ[cfg.token_env] = token
    try:
        yield
    finally:
        os.environ.pop(cfg.token_env, None)
