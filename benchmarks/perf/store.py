"""Object store: a model-like directory through our store vs plain boto3, and an unchanged re-upload vs the first.

The directory is what a phase commits: a few large safetensors-like files of random bytes (incompressible, like
weights) and many small json/txt files. The S3 endpoint is a moto server in a child process on 127.0.0.1 (in this
process it would compete with the client for the GIL). Each side writes to its own fresh prefix and everything is
deleted between repeats, so neither side finds the other's objects.

- upload: `S3Store.put_dir` of a new key vs `upload_file` of each file (boto3's defaults);
- download: `S3Store.get_dir` into an empty cache (verified against the manifest) vs `download_file` of each file;
- re-upload: `put_dir(..., replace=True)` of the same, unchanged directory vs the first upload of that key. It reads
  again only the files written within hash_index's racy margin (2 s) of the first upload's hash (in the first repeat,
  the last shard and the small files, written just before it: ~270 MB); the others are known by their stat identity.
  It lists the stored objects and commits a new manifest; it sends no file. A recompute that rewrites its files gets
  no such shortcut: their stat identities are new. Every first upload starts without the hash index, as for a
  directory never uploaded before.

Uploads run A B C (store, boto3, store re-upload) per repeat, downloads A B.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import boto3

from benchmarks.perf.common import end_child, median, print_rows, ratio_row, side_by_side

BENCH = "store"
_MiB = 1024 * 1024
_CREDENTIALS = {"aws_access_key_id": "bench", "aws_secret_access_key": "bench", "region_name": "us-east-1"}

# (large files, bytes each, small files): ~1 GB, or ~50 MB for a smoke run.
FULL = (4, 256 * _MiB, 200)
QUICK = (2, 24 * _MiB, 100)

_SERVER = """
import sys
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print(server.get_host_and_port()[1], flush=True)
sys.stdin.read()  # until the benchmark closes our stdin
server.stop()
"""


def build_model_dir(root: Path, large: int, large_bytes: int, small: int, seed: int = 0) -> int:
    """A model-like directory under root; returns its total size in bytes."""
    import random

    rng = random.Random(seed)
    total = 0
    for i in range(large):
        path = root / f"model-{i + 1:05d}-of-{large:05d}.safetensors"
        with path.open("wb") as f:
            left = large_bytes
            while left:
                chunk = min(left, 16 * _MiB)
                f.write(os.urandom(chunk))
                left -= chunk
        total += large_bytes
    for i in range(small):
        folder = root / ("tokenizer" if i % 3 == 0 else "configs" if i % 3 == 1 else "")
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"file-{i:04d}.{'json' if i % 2 else 'txt'}"
        data = (f'{{"index": {i}, "values": [' + ",".join(str(rng.random()) for _ in range(rng.randint(10, 800)))
                + "]}\n").encode()
        path.write_bytes(data)
        total += len(data)
    return total


class MotoServer:
    """A moto S3 server in a child process; stops when the benchmark closes its stdin."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", _SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True)
        line = self.proc.stdout.readline()
        if not line.strip().isdigit():
            self.stop()
            raise RuntimeError(f"moto server did not start (said {line!r})")
        self.endpoint_url = f"http://127.0.0.1:{int(line)}"

    def stop(self) -> None:
        end_child(self.proc)


def _empty(client: Any, bucket: str, prefix: str) -> None:
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            client.delete_object(Bucket=bucket, Key=obj["Key"])


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def run(quick: bool = False) -> list[dict[str, Any]]:
    from infimmr_core.hash_index import INDEX_DIR
    from infimmr_core.store import S3Store

    large, large_bytes, small = QUICK if quick else FULL
    repeats = 2  # ~1 GB moves 4 times per repeat: about a minute a repeat on 2 quiet cores
    server = MotoServer()
    scratch = Path(tempfile.mkdtemp(prefix="infimmr-bench-store-"))
    saved_env = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")}
    try:
        os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")
        src = scratch / "model"
        src.mkdir()
        total = build_model_dir(src, large, large_bytes, small)
        names = _files(src)
        mb = total / 1e6
        client = boto3.client("s3", endpoint_url=server.endpoint_url, **_CREDENTIALS)
        bucket = "bench"
        client.create_bucket(Bucket=bucket)
        store = S3Store(bucket, "store", endpoint_url=server.endpoint_url, cache_dir=scratch / "cache")
        counter = iter(range(10**6))
        state: dict[str, str] = {}

        def store_upload() -> None:
            _empty(client, bucket, "store/")
            shutil.rmtree(store.cache_dir / INDEX_DIR, ignore_errors=True)  # a first upload: no hash remembered
            state["key"] = f"k{next(counter)}"
            store.put_dir("model", state["key"], src, key_inputs={"bench": True})

        def boto_upload() -> None:
            _empty(client, bucket, "plain/")
            for name in names:
                client.upload_file(str(src / name), bucket, f"plain/{name}")

        def reupload() -> None:  # the same, unchanged directory again: a forced recompute that made the same files
            store.put_dir("model", state["key"], src, key_inputs={"bench": True}, replace=True)

        # A B C, A B C, ...: the first upload of a new key, plain boto3, then the unchanged re-upload of that key.
        up_store, up_boto, again = [], [], []
        for _ in range(repeats):
            for fn, times in ((store_upload, up_store), (boto_upload, up_boto), (reupload, again)):
                started = time.perf_counter()
                fn()
                times.append(time.perf_counter() - started)

        # Downloads read what the last uploads left: the store's last key and the plain prefix.
        def store_download() -> None:
            shutil.rmtree(scratch / "cache", ignore_errors=True)
            store.get_dir("model", state["key"])

        def boto_download() -> None:
            dest = scratch / "plain-download"
            shutil.rmtree(dest, ignore_errors=True)
            for name in names:
                (dest / name).parent.mkdir(parents=True, exist_ok=True)
                client.download_file(bucket, f"plain/{name}", str(dest / name))

        down_store, down_boto = side_by_side(store_download, boto_download, repeats=repeats)
        _empty(client, bucket, "")
    finally:
        server.stop()
        shutil.rmtree(scratch, ignore_errors=True)
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v

    size = f"{mb:.0f} MB in {len(names)} files ({large} large)"
    rows = [
        ratio_row(BENCH, "upload seconds, store / boto3", "S3Store.put_dir", "boto3 upload_file per file",
                  median(up_store), median(up_boto), "s", target="<= 1.2",
                  note=f"{size}; {mb / median(up_store):.0f} vs {mb / median(up_boto):.0f} MB/s; moto on 127.0.0.1"),
        ratio_row(BENCH, "download seconds, store / boto3", "S3Store.get_dir (empty cache)",
                  "boto3 download_file per file", median(down_store), median(down_boto), "s", target="<= 1.2",
                  note=f"{size}; {mb / median(down_store):.0f} vs {mb / median(down_boto):.0f} MB/s; store verifies "
                       "sha256"),
        ratio_row(BENCH, "unchanged re-upload / first upload", "put_dir(replace=True), same files",
                  "put_dir, new key", median(again), median(up_store), "s", target="<= 0.05",
                  note=f"{size}; the same directory again, files hashed past the 2 s racy margin not read again; "
                       f"re-uploads {', '.join(f'{t:.2f}' for t in again)} s"),
    ]
    return rows


if __name__ == "__main__":
    print_rows(run(quick="--quick" in sys.argv[1:]))
