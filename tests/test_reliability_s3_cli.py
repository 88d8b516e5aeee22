"""A whole `infimmr run --recipe smoke` on an S3 store that fails about one request in twenty (issue 13, item 5).

tests/faulty_s3_proxy.py stands between the CLI and the moto server and resets connections (before and after S3
handled the request), answers 500 / 503 / SlowDown, cuts response bodies short and answers late, each with a seeded
probability: 5% of all requests; a GET's fault is a truncated body one time in three. The run must succeed on its
first attempt, and every artifact it reports must then verify (sizes and sha256 against its manifest), read straight
from the bucket, and read back by "another machine" through a proxy that faults one request in five, mostly cutting
GET bodies short. A first run mostly asks for manifests that do not exist yet (404s, which botocore retries itself),
so it meets few cut bodies the store must repeat; reading the results back meets them on every manifest and file.

Self-contained on purpose (only the CLI and `open_store`, which every version has), so the same file can be run
against an older checkout: there the read-back failed on the first manifest body cut short."""

from __future__ import annotations

import json
import os
import time

import pytest

from faulty_s3_proxy import KINDS, FaultyS3Proxy
from infimmr_core.store import open_store
from test_pipeline import infimmr

pytestmark = [pytest.mark.reliability, pytest.mark.slow]

FAULT_RATE = 0.05
SEED = 13
MIX = {"truncate": 3.0}  # the other six kinds weigh 1 each
# Every stage, each smaller (no difficulty rollouts, one training step per phase, one evaluation set of two items for
# the last phase): the store's requests are what is under test, and every stage still makes them.
SMALL = ["--set", "curation.difficulty.enabled=false",
         *[arg for n in (1, 2, 3) for arg in ("--set", f"phases.{n}.max_steps=1")],
         "--set", "evaluation.models=[phase3]", "--set", "evaluation.reference_rows=[]",
         "--set", "evaluation.sets=[{name: synthetic-image, kind: synthetic_image, count: 2, seed: 10002, input: image}]"]


def test_smoke_run_on_a_flaky_s3_succeeds_on_the_first_attempt(cli_env, s3_env, s3_server, tmp_path):
    bucket = s3_env
    uri = f"s3://{bucket}/runs/flaky"
    with FaultyS3Proxy(s3_server.endpoint_url, rate=FAULT_RATE, seed=SEED, weights=MIX) as proxy:
        env = {**cli_env, **{k: os.environ[k] for k in os.environ if k.startswith("AWS_")},
               "AWS_ENDPOINT_URL": proxy.url, "INFIMMR_CACHE_DIR": str(tmp_path / "cache")}
        start = time.monotonic()
        proc = infimmr(["run", "--recipe", "smoke", "--store", uri, *SMALL, "--json"], env, tmp_path, check=False)
        elapsed = time.monotonic() - start
        requests, faults, repeated, methods = proxy.requests, dict(proxy.faults), proxy.repeated, dict(proxy.methods)
    print(f"\nflaky S3 smoke run: exit {proc.returncode} in {elapsed:.0f}s; {requests} requests {methods}, "
          f"{sum(faults.values())} faulted ({sum(faults.values()) / max(requests, 1):.1%}): {faults}; "
          f"faulted requests sent again: {repeated}")
    assert proc.returncode == 0, f"the run failed under {FAULT_RATE:.0%} faults:\n{proc.stderr[-6000:]}"
    assert requests > 100 and sum(faults.values()) >= 0.025 * requests  # the faults really happened
    assert len(faults) >= len(KINDS) - 2, faults  # and of most kinds

    summary = json.loads(proc.stdout)
    assert {stage["state"] for stage in summary["stages"].values()} == {"completed"}
    # Straight from the bucket (no proxy) into a fresh cache: every artifact verifies against its manifest.
    store = open_store(uri, cache_dir=tmp_path / "verify-cache")
    for name, stage in summary["stages"].items():
        key = stage["uri"].rsplit("/", 1)[1]
        manifest = store.manifest(name, key)
        assert manifest is not None and manifest.digest == stage["digest"], name
        folder = store.get_dir(name, key)  # downloads and checks every file's size and sha256
        assert all((folder / entry.path).is_file() for entry in manifest.files)

    # Another machine reads the results back through a worse connection: 20% of requests faulted, GETs mostly cut.
    with FaultyS3Proxy(s3_server.endpoint_url, rate=0.2, seed=SEED, weights={"truncate": 6.0}) as proxy:
        reader = open_store(uri, endpoint_url=proxy.url, cache_dir=tmp_path / "reader-cache")
        for name, stage in summary["stages"].items():
            key = stage["uri"].rsplit("/", 1)[1]
            manifest = reader.manifest(name, key)
            assert manifest is not None and manifest.digest == stage["digest"], name
            folder = reader.get_dir(name, key)
            assert all((folder / e.path).read_bytes() == (store.cache_path(name, key) / e.path).read_bytes()
                       for e in manifest.files)
        print(f"read back through {proxy.requests} requests, faults {dict(proxy.faults)}, "
              f"sent again: {proxy.repeated}")
        assert proxy.faults["truncate"] >= 3
