"""Pushing a folder to the Hugging Face Hub: private by default and idempotent.

huggingface_hub drops files whose content the Hub already has and makes no commit when nothing changed; we compare
the repo head before and after to report whether this push made a commit. The token is passed in by the caller and
only ever goes into the client's Authorization header: never into a log line, a return value or a file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def push_folder(folder: Path, repo_id: str, token: str, *, private: bool = True, repo_type: str = "model",
                message: str = "infimmr publish") -> dict[str, Any]:
    from huggingface_hub import HfApi

    # HF_ENDPOINT is read per call (huggingface_hub reads it once, at import), so a mirror or local Hub set later works.
    api = HfApi(endpoint=os.environ.get("HF_ENDPOINT") or None, token=token)
    repo_url = api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True)
    before = api.repo_info(repo_id, repo_type=repo_type).sha
    commit = api.upload_folder(repo_id=repo_id, repo_type=repo_type, folder_path=str(folder), commit_message=message)
    return {
        "repo_id": repo_id,
        "repo_type": repo_type,
        "repo_url": str(repo_url),
        "commit": commit.oid,
        "commit_url": commit.commit_url,
        "new_commit": commit.oid != before,
    }
