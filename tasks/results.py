"""Prefect's task results and cache records live in the artifact store itself, under `_prefect/results/`.

So the cache travels with the store: a brand-new Prefect database, a fresh PREFECT_HOME or another machine that points
at the same store finds the same records and shows finished stages as Cached. A record holds only the small
ArtifactRef (JSON); the artifact itself stays where the store put it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import urlparse

import boto3
from botocore.exceptions import ClientError
from prefect._internal.compatibility.async_dispatch import async_dispatch
from prefect.filesystems import WritableFileSystem
from pydantic import Field

from infimmr_core.config import StoreConfig
from infimmr_core.keys import sha256_text
from infimmr_core.store import store_from_config

RESULTS_PREFIX = "_prefect/results"


class S3StoreResults(WritableFileSystem):
    """Prefect result storage in the S3 artifact store, configured like the store (boto3's standard chain: env vars,
    profiles; never a secret in the block)."""

    _block_type_name = "infimmr S3 store results"
    _block_type_slug = "infimmr-s3-store-results"
    _description = "Prefect task results and cache records of the infimmr pipeline, kept in its S3 artifact store."

    uri: str = Field(description="The artifact store: s3://BUCKET/PREFIX.")
    endpoint_url: str | None = Field(None, description="S3-compatible endpoint; None = boto3's own configuration.")
    region: str | None = Field(None, description="S3 region; None = boto3's own configuration.")
    profile: str | None = Field(None, description="AWS profile; None = boto3's own configuration.")

    def _client_and_key(self, path: str) -> tuple[object, str, str]:
        parsed = urlparse(self.uri)
        key = "/".join(p for p in (parsed.path.strip("/"), RESULTS_PREFIX, path) if p)
        session = boto3.session.Session(profile_name=self.profile, region_name=self.region)
        return session.client("s3", endpoint_url=self.endpoint_url), parsed.netloc, key

    def _read(self, path: str) -> bytes:
        client, bucket, key = self._client_and_key(path)
        try:
            return client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError as e:
            if e.response.get("Error", {}).get("Code", "") in {"404", "NoSuchKey", "NotFound"}:
                raise ValueError(f"no result at s3://{bucket}/{key}") from e
            raise

    def _write(self, path: str, content: bytes) -> str:
        client, bucket, key = self._client_and_key(path)
        client.put_object(Bucket=bucket, Key=key, Body=content)
        return path

    # Prefect calls these both ways (sync with `_sync=True`, and async), as it does LocalFileSystem's.
    async def aread_path(self, path: str) -> bytes:
        return await asyncio.to_thread(self._read, path)

    @async_dispatch(aread_path)
    def read_path(self, path: str) -> bytes:
        return self._read(path)

    async def awrite_path(self, path: str, content: bytes) -> str:
        return await asyncio.to_thread(self._write, path, content)

    @async_dispatch(awrite_path)
    def write_path(self, path: str, content: bytes) -> str:
        return self._write(path, content)


def result_storage(cfg: StoreConfig) -> Path | WritableFileSystem:
    """Where this store's Prefect records go: next to its artifacts. Prefect takes a local path as is, but wants a
    block saved server-side, so the S3 one is saved (idempotently, under a name derived from the store) first."""
    if not cfg.uri.startswith("s3://"):
        return Path(store_from_config(cfg).uri.removeprefix("file://")) / RESULTS_PREFIX
    block = S3StoreResults(uri=cfg.uri, endpoint_url=cfg.endpoint_url, region=cfg.region, profile=cfg.profile)
    name = "infimmr-results-" + sha256_text(block.model_dump_json())[:16]
    try:
        return S3StoreResults.load(name)
    except ValueError:  # not saved on this Prefect server yet
        block.save(name, overwrite=True)  # overwrite: a concurrent first save of the same store is the same block
        return block
