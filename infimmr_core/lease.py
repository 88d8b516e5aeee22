"""Single flight per key: at most one run computes (stage, key) of a store at a time; the others wait, then reuse it.

Two runs of the same recipe on one store (two machines, two terminals, a schedule that fires while a manual run is
going) would otherwise both compute every key and both commit it. The lease is a small record in the store beside the
artifacts (`<store>/.leases/<stage>/<key>.json`), never part of an artifact and never in a key:

- **acquire**: create the record only if none exists (atomic: a hard link for a local store, a conditional PUT with
  `If-None-Match: *` on S3). Whoever creates it owns the key.
- **heartbeat**: the owner rewrites its record every `ttl / 4` seconds, each time only if it is still the record it
  wrote last (compare-and-swap: a lock-guarded compare for a local store, `If-Match: <ETag>` on S3).
- **expiry**: a waiter that sees the same record unchanged for `ttl` seconds of its own clock takes it over with the
  same compare-and-swap, so an owner that died (killed, machine lost) blocks its key for `ttl`, never forever. Only
  elapsed time the waiter itself measured counts, so the clocks of different machines need not agree.
- **release**: the owner deletes its record, only if it is still its own.

An owner that stalls for longer than `ttl` loses the key to a waiter; its heartbeat notices (`Lease.lost`) and says so.
What it commits afterwards cannot replace the other run's artifact: `put_dir` adopts an artifact that is already
committed (see infimmr_core.store).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

from pydantic import BaseModel, ValidationError

# The default of the recipe's store.lease_seconds: a dead owner blocks its key this long; a live one renews four times
# in it.
LEASE_SECONDS = 60.0
_log = logging.getLogger(__name__)


class LeaseRecord(BaseModel):
    """Who holds the key, for the waiters and for a person looking at the store."""

    owner: str  # unique per acquisition: host, pid and a random part
    host: str
    pid: int
    beat: int  # rewritten by every heartbeat, so the record (and its version) changes while the owner lives
    ttl: float
    written_at: float  # the owner's clock, for people; waiters judge expiry by their own clock only


class LeaseStorage(Protocol):
    """The store's side: four operations on one small record per (stage, key), each atomic."""

    uri: str

    def lease_read(self, stage: str, key: str) -> tuple[bytes, str] | None:
        """The record and its version token, or None when there is none."""

    def lease_create(self, stage: str, key: str, data: bytes) -> str | None:
        """Write the record only if none exists: its version token, or None when one exists."""

    def lease_swap(self, stage: str, key: str, data: bytes, token: str) -> str | None:
        """Replace the record only if its version is still `token`: the new token, or None when it changed."""

    def lease_delete(self, stage: str, key: str, token: str) -> bool:
        """Delete the record only if its version is still `token`."""


def new_owner() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:12]}"


class Lease:
    """A held lease; renews itself in a background thread until released."""

    def __init__(self, store: LeaseStorage, stage: str, key: str, record: LeaseRecord, token: str):
        self.store, self.stage, self.key, self.record, self.token = store, stage, key, record, token
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()  # renew and release never interleave
        self._thread = threading.Thread(target=self._beat, name=f"lease-{stage}", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.record.ttl / 4):
            try:
                self.renew()
            except Exception as err:  # a flaky store: the next beat tries again, and a waiter allows `ttl`
                _log.warning("lease on %s/%s: heartbeat failed: %s", self.stage, self.key, err)
            if self.lost.is_set():
                return

    def renew(self) -> bool:
        """Rewrite the record if it is still ours; False (and `lost` set) when another run took the key over."""
        with self._lock:
            if self._stop.is_set() or self.lost.is_set():
                return not self.lost.is_set()
            record = self.record.model_copy(update={"beat": self.record.beat + 1, "written_at": time.time()})
            token = self.store.lease_swap(self.stage, self.key, record.model_dump_json().encode(), self.token)
            if token is None:
                token = _own_version(self.store, self.stage, self.key, record)
            if token is None:
                self.lost.set()
                _log.warning("lease on %s/%s in %s was taken over by another run (this one stalled for more than "
                             "%.0f s); its commit will not replace that run's artifact", self.stage, self.key,
                             self.store.uri, self.record.ttl)
                return False
            self.record, self.token = record, token
            return True

    def release(self) -> None:
        """Stop renewing and delete the record, unless another run holds it by now."""
        with self._lock:
            self._stop.set()
            try:
                if not self.lost.is_set() and not self.store.lease_delete(self.stage, self.key, self.token):
                    self.lost.set()  # another run took it over while this one was stalled: its record stays
            except Exception as err:  # never hide the stage's own outcome; the record expires after `ttl`
                _log.warning("lease on %s/%s: could not release it (%s); it expires in %.0f s", self.stage, self.key,
                             err, self.record.ttl)
        if threading.current_thread() is not self._thread:
            self._thread.join()


def _own_version(store: LeaseStorage, stage: str, key: str, record: LeaseRecord) -> str | None:
    """The version of the stored record if it is exactly `record`: a write whose answer was lost (and whose retry was
    refused, as the record had already changed to it) still took effect."""
    current = store.lease_read(stage, key)
    return current[1] if current and _parse(current[0]) == record else None


def _parse(raw: bytes) -> LeaseRecord | None:
    try:
        return LeaseRecord.model_validate_json(raw)
    except ValidationError:
        return None  # a damaged record blocks its key for `ttl` at most, like a dead owner's


def acquire(
    store: LeaseStorage, stage: str, key: str, *, ttl: float = LEASE_SECONDS, poll: float = 1.0,
    on_wait: Callable[[LeaseRecord | None], None] = lambda record: None,
    clock: Callable[[], float] = time.monotonic,
) -> Lease:
    """Wait until this run holds the lease on (stage, key). `on_wait` is called once per owner waited for."""
    mine = LeaseRecord(owner=new_owner(), host=socket.gethostname(), pid=os.getpid(), beat=0, ttl=ttl,
                       written_at=time.time())
    data = mine.model_dump_json().encode()
    seen: tuple[str, float] | None = None  # the version we are watching, and since when (our clock)
    announced = None  # the owner on_wait was last called for
    while True:
        token = store.lease_create(stage, key, data)
        if token is not None:
            return Lease(store, stage, key, mine, token)
        current = store.lease_read(stage, key)
        if current is None:  # released between our create and our read
            continue
        raw, version = current
        holder = _parse(raw)
        if holder == mine:  # our own create went through although its answer was lost (a retried request)
            return Lease(store, stage, key, mine, version)
        if seen is None or seen[0] != version:
            seen = (version, clock())  # a new version: the owner is alive (or new), start counting again
        if announced is None or announced != (holder.owner if holder else ""):
            announced = holder.owner if holder else ""
            on_wait(holder)
        waited = clock() - seen[1]
        # The holder's own ttl decides (it renews at ttl/4); ours covers a damaged record.
        limit = holder.ttl if holder else ttl
        if waited >= limit:
            token = store.lease_swap(stage, key, data, version)
            if token is not None:
                _log.warning("took over the lease on %s/%s in %s: its owner %s did not renew it for %.0f s",
                             stage, key, store.uri, holder.owner if holder else "(unreadable record)", waited)
                return Lease(store, stage, key, mine, token)
            seen = None  # someone else changed it first: watch the new version from now
            continue
        time.sleep(min(poll, max(limit - waited, 0.01)))


@contextmanager
def holding(store: LeaseStorage, stage: str, key: str, **kwargs) -> Iterator[Lease]:
    """The lease on (stage, key) for the duration of the block."""
    lease = acquire(store, stage, key, **kwargs)
    try:
        yield lease
    finally:
        lease.release()
