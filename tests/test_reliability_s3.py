"""A flaky S3 (issue 13, item 5): every store operation, the reading of response bodies included, is retried with
backoff under a budget, and only the store's own errors leave it.

The faults are real HTTP faults: tests/faulty_s3_proxy.py sits between the store and the moto server and resets
connections, answers 500 / 503 / SlowDown, cuts bodies short or answers late. botocore's own per-request retries are
set to 1 here (request_attempts=1) so that every fault reaches the store's retry loop and is counted; the defaults
(standard mode, 3 attempts per request) are checked separately. The full pipeline under ~5% faults is in
test_reliability_s3_cli.py."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError, ResponseStreamingError
from urllib3.exceptions import ProtocolError

from faulty_s3_proxy import KINDS, FaultyS3Proxy
from infimmr_core.config import StoreConfig
from infimmr_core.s3_retry import BodyMismatch, RetriesExhausted, RetryBudget, backoff, is_transient, retry_call
from infimmr_core.store import ArtifactCorrupt, S3Store, StoreError, StoreUnavailable, open_store, store_from_config
from trees import read_tree, write_tree

pytestmark = pytest.mark.reliability

FAST = RetryBudget(attempts=6, seconds=30, request_attempts=1, base_delay=0.01, max_delay=0.05)
TREE = {"a.txt": b"hello\n" * 50, "sub/b.bin": bytes(range(256)) * 40}
STAGE = "curate"


@pytest.fixture(scope="module")
def proxy(s3_server):
    with FaultyS3Proxy(s3_server.endpoint_url) as server:
        yield server


@pytest.fixture
def faulty(proxy):
    proxy.reset(rate=0.0)
    yield proxy
    proxy.reset(rate=0.0)



def via(proxy: FaultyS3Proxy, bucket: str, cache: Path, budget: RetryBudget = FAST) -> S3Store:
    store = open_store(f"s3://{bucket}/runs", endpoint_url=proxy.url, cache_dir=cache, retry=budget)
    assert isinstance(store, S3Store)
    return store


def is_manifest_get(method: str, path: str) -> bool:
    return method == "GET" and path.split("?")[0].endswith("/MANIFEST.json")


def is_file_get(method: str, path: str) -> bool:
    return method == "GET" and "?" not in path and path.split("/")[-1] in ("a.txt", "b.bin")


def is_file_put(method: str, path: str) -> bool:
    return method == "PUT" and path.split("?")[0].endswith(("/a.txt", "/b.bin"))


def is_listing(method: str, path: str) -> bool:
    return method == "GET" and "list-type=2" in path


def is_delete(method: str, path: str) -> bool:
    return method == "DELETE"


# (what, which requests get the fault, the operation; each returns something to check)
OPERATIONS = {
    "manifest read": (is_manifest_get, lambda store, src, tmp: store.manifest(STAGE, "k1").digest),
    "download": (is_file_get, lambda store, src, tmp: read_tree(store.get_dir(STAGE, "k1"))),
    "get_file": (is_file_get, lambda store, src, tmp: store.get_file(STAGE, "k1", "sub/b.bin").read_bytes()),
    "read_file": (is_file_get, lambda store, src, tmp: store.read_file(STAGE, "k1", "a.txt")),
    "upload": (is_file_put, lambda store, src, tmp: store.put_dir(STAGE, "k2", src, key_inputs={}).digest),
    "list": (is_listing, lambda store, src, tmp: store.list_keys(STAGE)),
    "delete": (is_delete, lambda store, src, tmp: (store.delete(STAGE, "k1"), store.has(STAGE, "k1"))),
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("operation", list(OPERATIONS))
def test_each_fault_on_each_operation_is_retried(faulty, s3_env, tmp_path, kind, operation):
    match, run = OPERATIONS[operation]
    src = write_tree(tmp_path / "src", TREE)
    clean = via(faulty, s3_env, tmp_path / "clean-cache")
    committed = clean.put_dir(STAGE, "k1", src, key_inputs={})
    expected = run(clean, src, tmp_path) if operation != "delete" else (None, False)
    if operation == "upload":
        clean.delete(STAGE, "k2")
    if operation == "delete":
        clean.put_dir(STAGE, "k1", src, key_inputs={})

    store = via(faulty, s3_env, tmp_path / "cache")  # a fresh cache: every read goes to S3
    faults = 1 if kind == "latency" else 2  # a late answer is still an answer: nothing to retry
    faulty.plan([kind] * faults, match)
    assert run(store, src, tmp_path) == expected
    assert faulty.planned_left == 0 and faulty.faults[kind] == faults  # the faults really happened
    assert store.retries == (0 if kind == "latency" else 2)
    assert committed.digest == clean.manifest(STAGE, "k1").digest if operation != "delete" else True


@pytest.mark.parametrize("kind", [k for k in KINDS if k != "latency"])
def test_a_fault_that_never_ends_is_a_store_error_naming_what_and_how_often(faulty, s3_env, tmp_path, kind):
    src = write_tree(tmp_path / "src", TREE)
    via(faulty, s3_env, tmp_path / "c0").put_dir(STAGE, "k1", src, key_inputs={})
    store = via(faulty, s3_env, tmp_path / "cache", RetryBudget(attempts=3, seconds=30, request_attempts=1,
                                                                   base_delay=0.01, max_delay=0.02))
    faulty.plan([kind] * 3, is_manifest_get)
    with pytest.raises(StoreUnavailable) as err:
        store.get_dir(STAGE, "k1")
    assert err.value.attempts == 3
    message = str(err.value)
    assert "after 3 attempts" in message and "reading" in message
    assert f"s3://{s3_env}/runs/{STAGE}/k1/MANIFEST.json" in message and faulty.url in message
    assert isinstance(err.value, StoreError)


def test_the_time_budget_bounds_an_operation(faulty, s3_env, tmp_path):
    store = via(faulty, s3_env, tmp_path / "cache", RetryBudget(attempts=1000, seconds=1.0, request_attempts=1,
                                                                   base_delay=0.05, max_delay=0.2))
    faulty.plan(["503"] * 1000)
    with pytest.raises(StoreUnavailable) as err:
        store.has(STAGE, "k1")
    assert 2 < err.value.attempts < 1000 and err.value.elapsed < 1.5


def test_botocore_retries_are_set_explicitly_and_absorb_request_faults(faulty, s3_env, tmp_path):
    """With the defaults, botocore's standard mode repeats a failed request (3 attempts) before the store's loop
    sees it; a body cut short after the response arrived is the store's to repeat."""
    store = open_store(f"s3://{s3_env}/runs", endpoint_url=faulty.url, cache_dir=tmp_path / "cache")
    assert store._client.raw.meta.config.retries == {"mode": "standard", "total_max_attempts": 3}
    assert store._transfer.num_download_attempts == 3
    src = write_tree(tmp_path / "src", TREE)
    store.put_dir(STAGE, "k1", src, key_inputs={})
    faulty.plan(["slowdown", "503", "truncate"], is_manifest_get)
    assert store.has(STAGE, "k1")
    assert faulty.planned_left == 0 and store.retries == 1  # two absorbed by botocore, the truncation by the store


def test_store_settings_come_from_the_recipe(s3_env, tmp_path):
    cfg = StoreConfig(uri=f"s3://{s3_env}/x", retry_attempts=4, retry_seconds=9, request_attempts=2,
                      cache_max_bytes=1234, cache_dir=str(tmp_path))
    store = store_from_config(cfg)
    assert (store.retry.attempts, store.retry.seconds, store.retry.request_attempts) == (4, 9, 2)
    assert store.cache_max_bytes == 1234
    assert store._client.raw.meta.config.retries["total_max_attempts"] == 2
    import pickle  # a store crosses process boundaries pickled (Prefect): its settings go with it
    again = pickle.loads(pickle.dumps(store))
    assert (again.retry, again.cache_max_bytes) == (store.retry, 1234)


def test_missing_things_fail_at_once_without_retries(faulty, s3_env, tmp_path):
    store = via(faulty, s3_env, tmp_path / "cache")
    assert store.manifest(STAGE, "nothing-here") is None
    assert store.read_file(STAGE, "nothing-here", "a.txt") is None
    assert store.retries == 0
    with pytest.raises(StoreError, match="does not exist"):
        via(faulty, "no-such-bucket-13", tmp_path / "c2").has(STAGE, "k1")


def test_a_body_damaged_at_rest_is_corrupt_after_a_few_tries_not_the_whole_budget(faulty, s3_env, s3_server, tmp_path):
    src = write_tree(tmp_path / "src", TREE)
    store = via(faulty, s3_env, tmp_path / "cache", RetryBudget(attempts=50, seconds=300, request_attempts=1,
                                                                   base_delay=0.01, max_delay=0.02))
    store.put_dir(STAGE, "k1", src, key_inputs={})
    s3_server.client().put_object(Bucket=s3_env, Key=f"runs/{STAGE}/k1/a.txt", Body=b"HELLO\n" * 50)  # same size
    with pytest.raises(ArtifactCorrupt, match="sha256"):
        store.get_dir(STAGE, "k1")
    assert store.retries == 2  # three downloads of a.txt, then it is damage, not flakiness
    assert not store.cache_path(STAGE, "k1").exists()


# --- the retry policy itself, without a network -------------------------------------------------------------------

def client_error(code: str, status: int) -> ClientError:
    return ClientError({"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "GetObject")


@pytest.mark.parametrize("err, transient", [
    (client_error("SlowDown", 503), True),
    (client_error("InternalError", 500), True),
    (client_error("ServiceUnavailable", 503), True),
    (client_error("RequestTimeout", 400), True),
    (client_error("TooManyRequests", 429), True),
    (client_error("NoSuchKey", 404), False),
    (client_error("NoSuchBucket", 404), False),
    (client_error("AccessDenied", 403), False),
    (client_error("InvalidAccessKeyId", 403), False),
    (client_error("PreconditionFailed", 412), False),
    (EndpointConnectionError(endpoint_url="http://x"), True),
    (ReadTimeoutError(endpoint_url="http://x"), True),
    (ResponseStreamingError(error="reset"), True),
    (ProtocolError("Connection broken: IncompleteRead"), True),
    (ConnectionResetError(104, "reset"), True),
    (BodyMismatch("short"), True),
    (FileNotFoundError("/tmp/x"), False),
    (ValueError("bug"), False),
])
def test_which_failures_are_retried(err, transient):
    assert is_transient(err) is transient


@pytest.mark.parametrize("attempt, ceiling", [(1, 0.2), (2, 0.4), (3, 0.8), (8, 20.0), (30, 20.0)])
def test_backoff_is_full_jitter_under_an_exponential_ceiling(attempt, ceiling):
    budget, rng = RetryBudget(base_delay=0.2, max_delay=20.0), random.Random(7)
    delays = [backoff(budget, attempt, rng) for _ in range(500)]
    assert all(0 <= d <= ceiling for d in delays) and max(delays) > ceiling * 0.8


def test_retry_call_stops_at_the_attempt_budget_and_keeps_the_last_error():
    calls, slept = [], []

    def flaky():
        calls.append(1)
        raise client_error("SlowDown", 503)

    with pytest.raises(RetriesExhausted) as err:
        retry_call(flaky, RetryBudget(attempts=4, seconds=1e9), sleep=slept.append, rng=random.Random(0))
    assert len(calls) == 4 and len(slept) == 3 and err.value.attempts == 4
    assert "SlowDown" in str(err.value)


def test_retry_call_returns_once_it_succeeds_and_passes_permanent_errors_through():
    results = iter([ConnectionResetError(), ConnectionResetError(), "ok"])

    def twice_then_ok():
        item = next(results)
        if isinstance(item, Exception):
            raise item
        return item

    assert retry_call(twice_then_ok, RetryBudget(attempts=3), sleep=lambda s: None) == "ok"
    with pytest.raises(FileNotFoundError):
        retry_call(lambda: open("/nonexistent-13"), RetryBudget(), sleep=lambda s: None)
