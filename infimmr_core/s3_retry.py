"""Retrying S3 calls under a budget: which failures are worth another attempt, and when to give up.

One layer owns the retries of a store operation: `retry_call` repeats the whole operation (a request AND the reading
of its body, or a whole file transfer) with exponential backoff and full jitter, until `RetryBudget.attempts` or
`RetryBudget.seconds` runs out. botocore's own per-request retries (standard mode) are configured explicitly to
`request_attempts` beside it, so the worst case is attempts x request_attempts requests, always within `seconds`.

Only transient failures are retried: connection resets and timeouts, truncated bodies, 5xx, throttling (SlowDown).
A missing object, a missing bucket or rejected credentials fail at once: repeating them cannot help.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import logging
import random
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from boto3.exceptions import RetriesExceededError, S3UploadFailedError
from botocore.exceptions import (
    ChecksumError,
    ClientError,
    ConnectionError as BotoConnectionError,
    FlexibleChecksumError,
    HTTPClientError,
    IncompleteReadError,
)
from urllib3.exceptions import HTTPError as Urllib3Error

T = TypeVar("T")

# S3 error codes that mean "not now" rather than "no": throttling, server trouble, a request that took too long.
TRANSIENT_CODES = frozenset({
    "SlowDown", "Throttling", "ThrottlingException", "RequestThrottled", "TooManyRequests", "RequestLimitExceeded",
    "InternalError", "ServiceUnavailable", "RequestTimeout", "RequestTimeoutException", "BadGateway",
    "GatewayTimeout", "500", "502", "503", "504",
})


@dataclass(frozen=True)
class RetryBudget:
    """How hard one store operation tries (StoreConfig.retry_attempts / retry_seconds / request_attempts)."""

    attempts: int = 8
    seconds: float = 300.0
    request_attempts: int = 3
    base_delay: float = 0.2
    max_delay: float = 20.0


class BodyMismatch(Exception):
    """A response body that is not what was asked for (shorter than its Content-Length, or not the manifest's size or
    sha256): it is requested again, never accepted."""


class RetriesExhausted(Exception):
    """The budget ran out; `last` is the final transient failure."""

    def __init__(self, last: BaseException, attempts: int, elapsed: float):
        super().__init__(f"{attempts} attempts over {elapsed:.1f}s: {describe(last)}")
        self.last, self.attempts, self.elapsed = last, attempts, elapsed
        self.operation, self.location = "", ""  # set by RetryingClient


def describe(err: BaseException) -> str:
    """A one-line account of a failure, naming its type (a bare `str()` of some botocore errors is empty)."""
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text[:300]}" if text else type(err).__name__


def _chain(err: BaseException) -> Iterator[BaseException]:
    """err and what caused it: boto3's transfer manager re-raises a ClientError as S3UploadFailedError."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        yield err
        err = err.__cause__ or err.__context__


def is_transient(err: BaseException) -> bool:
    """Would the same call plausibly succeed if repeated?"""
    for cause in _chain(err):
        if isinstance(cause, ClientError):
            code = str(cause.response.get("Error", {}).get("Code", ""))
            status = cause.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
            return code in TRANSIENT_CODES or status >= 500 or status == 429
        if isinstance(cause, (BodyMismatch, BotoConnectionError, HTTPClientError, IncompleteReadError, ChecksumError,
                              FlexibleChecksumError, RetriesExceededError, Urllib3Error, http.client.HTTPException,
                              ConnectionError, TimeoutError, socket.timeout)):
            return True
        if isinstance(cause, S3UploadFailedError):
            continue  # decided by what it wraps; without a cause, by its text below
    if isinstance(err, S3UploadFailedError):
        return any(code in str(err) for code in TRANSIENT_CODES if not code.isdigit())
    return False


def backoff(budget: RetryBudget, attempt: int, rng: random.Random) -> float:
    """Seconds to wait after failed attempt number `attempt` (1-based): full jitter over an exponential ceiling, so
    many clients throttled at once do not come back in lockstep."""
    ceiling = min(budget.max_delay, budget.base_delay * 2 ** (attempt - 1))
    return rng.uniform(0, ceiling)


def retry_call(
    fn: Callable[[], T],
    budget: RetryBudget,
    *,
    on_retry: Callable[[int, BaseException, float], None] = lambda attempt, err, delay: None,
    limit: Callable[[BaseException], int | None] = lambda err: None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    rng: random.Random | None = None,
) -> T:
    """fn(), repeated after transient failures until it returns or the budget is spent (RetriesExhausted).

    A failure that is not transient propagates at once. `limit(err)` may cap the attempts for a kind of failure (a
    body whose sha256 keeps differing is more likely damaged at rest than in flight)."""
    rng = rng or random.Random()
    start = clock()
    attempt = 0
    while True:
        attempt += 1
        try:
            return fn()
        except Exception as err:  # noqa: BLE001 -- classified right here; anything not transient is re-raised
            if not is_transient(err):
                raise
            cap = min(budget.attempts, limit(err) or budget.attempts)
            delay = backoff(budget, attempt, rng)
            elapsed = clock() - start
            if attempt >= cap or elapsed + delay > budget.seconds:
                raise RetriesExhausted(err, attempt, elapsed) from err
            on_retry(attempt, err, delay)
            sleep(delay)


class RetryingClient:
    """A boto3 S3 client whose every API call is retried under one budget, the body of a GetObject read inside the
    attempt (a reset or truncated body is requested again, never handed on), and whose transfers (upload_file,
    download_file) are retried whole. Anything else (meta, events, get_paginator) is the client's own.

    When the budget is spent it raises RetriesExhausted naming the API operation and the object; the store turns that
    into its own StoreUnavailable. A PutObject body that is a stream is rewound before each attempt."""

    def __init__(self, client: Any, budget: RetryBudget, log: logging.Logger | None = None):
        self.raw = client
        self.budget = budget
        self.retries = 0  # transient failures retried so far (logs, tests)
        self._log = log or logging.getLogger(__name__)
        self._operations = set(client.meta.method_to_api_mapping)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.raw, name)
        if name not in self._operations:
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            return self.call(name, _location(kwargs), lambda: attr(*args, **kwargs))

        return call

    def call(self, operation: str, location: str, fn: Callable[[], T], *, mismatch_attempts: int = 3) -> T:
        """fn() under the budget. A body that arrives whole but is not what the manifest promises (BodyMismatch) is
        asked for at most `mismatch_attempts` times: damage at rest is likelier than the same damage in flight."""

        def log_retry(attempt: int, err: BaseException, delay: float) -> None:
            self.retries += 1
            self._log.warning("S3 %s %s: %s; retrying in %.2fs (attempt %d of %d)", operation, location, describe(err),
                              delay, attempt + 1, self.budget.attempts)

        try:
            return retry_call(fn, self.budget, on_retry=log_retry,
                              limit=lambda err: mismatch_attempts if isinstance(err, BodyMismatch) else None)
        except RetriesExhausted as err:
            err.operation, err.location = operation, location
            raise

    def get_object(self, **kwargs: Any) -> dict[str, Any]:
        def fetch() -> dict[str, Any]:
            response = self.raw.get_object(**kwargs)
            data = response["Body"].read()
            expected = response.get("ContentLength")
            if expected is not None and len(data) != expected:
                raise BodyMismatch(f"body has {len(data)} bytes, Content-Length says {expected}")
            return {**response, "Body": io.BytesIO(data)}

        return self.call("get_object", _location(kwargs), fetch)

    def put_object(self, **kwargs: Any) -> dict[str, Any]:
        body = kwargs.get("Body")
        start = body.tell() if hasattr(body, "seek") else None

        def put() -> dict[str, Any]:
            if start is not None:
                body.seek(start)
            return self.raw.put_object(**kwargs)

        return self.call("put_object", _location(kwargs), put)

    def upload_file(self, filename: str, bucket: str, key: str, **kwargs: Any) -> None:
        self.call("upload_file", f"{bucket}/{key}", lambda: self.raw.upload_file(filename, bucket, key, **kwargs))

    def download_file(self, bucket: str, key: str, filename: str, **kwargs: Any) -> None:
        self.call("download_file", f"{bucket}/{key}", lambda: self.raw.download_file(bucket, key, filename, **kwargs))

    def download_verified(self, bucket: str, key: str, filename: str, size: int, sha256: str, **kwargs: Any) -> None:
        """download_file, repeated until the file has `size` bytes and `sha256` (or the budget is spent)."""

        def fetch() -> None:
            self.raw.download_file(bucket, key, filename, **kwargs)
            with open(filename, "rb") as f:
                digest = hashlib.file_digest(f, "sha256").hexdigest()
                got = f.tell()
            if got != size or digest != sha256:
                raise BodyMismatch(f"downloaded {got} bytes with sha256 {digest}, the manifest says {size} bytes with "
                                   f"sha256 {sha256}")

        self.call("download_file", f"{bucket}/{key}", fetch)

    def list_all(self, bucket: str, prefix: str) -> list[str]:
        """Every key under prefix: the listing restarts if any page fails, so it is never half a listing."""

        def listing() -> list[str]:
            pages = self.raw.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            return [obj["Key"] for page in pages for obj in page.get("Contents", [])]

        return self.call("list_objects_v2", f"{bucket}/{prefix}", listing)


def _location(kwargs: dict[str, Any]) -> str:
    return "/".join(str(kwargs[k]) for k in ("Bucket", "Key") if k in kwargs) or "?"
