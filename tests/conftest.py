"""Shared pytest fixtures."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import boto3
import pytest
from moto.server import ThreadedMotoServer

# ---------------------------------------------------------------------------------------------
# S3: a real S3 HTTP API (moto server, in-process) that tests reach exactly like a user's MinIO.
# ---------------------------------------------------------------------------------------------

S3_REGION = "us-east-1"
S3_ACCESS_KEY = "infimmr-test-access"  # moto accepts any key pair
S3_SECRET_KEY = "infimmr-test-secret"


@dataclass
class S3Server:
    endpoint_url: str

    def client(self):
        """A boto3 client that ignores the environment, for arranging and inspecting buckets."""
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=S3_REGION,
            aws_access_key_id=S3_ACCESS_KEY,
            aws_secret_access_key=S3_SECRET_KEY,
        )

    def create_bucket(self, name: str | None = None) -> str:
        name = name or f"infimmr-test-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name


@pytest.fixture(scope="session")
def s3_server():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    _, port = server.get_host_and_port()
    # 'localhost', as in a typical MinIO setup (http://localhost:9000): '<bucket>.localhost'
    # does not resolve, so only path-style requests reach it.
    yield S3Server(endpoint_url=f"http://localhost:{port}")
    server.stop()


@pytest.fixture
def s3_env(s3_server, monkeypatch, tmp_path):
    """Configure boto3 through env vars, as a MinIO user would, and yield a fresh empty bucket.

    The user's own AWS setup (profiles, config files, instance metadata) is masked so it can
    neither leak into nor slow down the tests; downloads go to a per-test INFIMMR_CACHE_DIR.
    """
    for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN", "AWS_REGION"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", S3_ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", S3_SECRET_KEY)
    monkeypatch.setenv("AWS_DEFAULT_REGION", S3_REGION)
    monkeypatch.setenv("INFIMMR_CACHE_DIR", str(tmp_path / "infimmr-cache"))
    yield s3_server.create_bucket()


# ---------------------------------------------------------------------------------------------
# Models: a warm-started tiny Qwen2.5-VL, built offline once per session (~10 s on 2 cores).
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    from infimmr_core.tiny_model import build_tiny_model  # imported here: torch/transformers are slow to import

    return build_tiny_model(tmp_path_factory.mktemp("tiny-model") / "model", seed=0)


# ---------------------------------------------------------------------------------------------
# Prefect: a real `prefect server` on 127.0.0.1 (SQLite in a temp dir), shared by the session.
# ---------------------------------------------------------------------------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory):
    import os
    import subprocess
    import sys

    from infimmr.flows.server import wait_healthy

    home = tmp_path_factory.mktemp("prefect-server")
    port = _free_port()
    env = {**os.environ, "PREFECT_HOME": str(home), "DO_NOT_TRACK": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_UI_API_URL": f"http://127.0.0.1:{port}/api"}  # the UI's own API address (default: port 4200)
    env.pop("PREFECT_API_URL", None)
    log = (home / "server.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    api = f"http://127.0.0.1:{port}/api"
    try:
        wait_healthy(api, proc, timeout=90)
    except RuntimeError as err:
        proc.kill()
        raise RuntimeError(f"{err}; see {home / 'server.log'}") from err
    yield api
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture
def cli_env(prefect_server, tmp_path):
    """Environment for `infimmr` subprocesses: the shared Prefect server, and a client home and caches of the test's
    own, so nothing leaks between tests."""
    import os

    return {
        **os.environ,
        "PREFECT_API_URL": prefect_server,
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "INFIMMR_CACHE_DIR": str(tmp_path / "infimmr-cache"),
        "DO_NOT_TRACK": "1",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PYTHONUNBUFFERED": "1",
    }


STORE_PREFIX = "runs/exp1"  # where the `store` fixture's S3 store lives in its bucket


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    """The same store protocol on both backends: a local directory, and a prefix of a bucket on the moto server."""
    from infimmr_core.store import open_store

    if request.param == "local":
        return open_store(f"file://{tmp_path}/store")
    bucket = request.getfixturevalue("s3_env")
    return open_store(f"s3://{bucket}/{STORE_PREFIX}")
