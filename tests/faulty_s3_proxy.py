"""A fault-injecting HTTP proxy in front of a real S3 endpoint (the moto server), for the flaky-storage tests.

Every request is forwarded to the upstream server unchanged (its Host header too, so SigV4 still matches); with a
seeded probability `rate` it instead suffers one fault, drawn from `kinds`:

    reset_before  the connection is reset (RST) before the request reaches S3: nothing happened
    reset_after   S3 handled the request, then the connection is reset: the answer is lost
    500           500 InternalError (S3's XML error body)
    503           503 ServiceUnavailable
    slowdown      503 SlowDown ("Please reduce your request rate")
    truncate      S3's answer with its full Content-Length, but only half the body, then a reset (drawn for GETs
                  only: other answers have no body worth cutting)
    latency       forwarded normally, 0.2 to 1 s late

`weights` makes some kinds likelier than others (default: all alike). `plan([...])` forces the next faults, in
order, on the requests that `match` (for tests of one fault kind). `faults` counts what was injected, `requests`
what arrived, `methods` the requests per method, and `repeated` the faulted requests that the client sent again
(the same method and path): its retries, seen from the wire. Standard library only.

    python tests/faulty_s3_proxy.py UPSTREAM_URL PORT RATE [SEED]   # serve until interrupted
"""

from __future__ import annotations

import http.client
import random
import socket
import struct
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

KINDS = ("reset_before", "reset_after", "500", "503", "slowdown", "truncate", "latency")
_HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade"}
_ERRORS = {
    "500": (500, "InternalError", "We encountered an internal error. Please try again."),
    "503": (503, "ServiceUnavailable", "Service is unable to handle request."),
    "slowdown": (503, "SlowDown", "Please reduce your request rate."),
}

Match = Callable[[str, str], bool]  # (method, path) -> is this request eligible for a planned fault?


class FaultyS3Proxy:
    def __init__(self, upstream: str, *, rate: float = 0.0, seed: int = 0, kinds: tuple[str, ...] = KINDS,
                 weights: dict[str, float] | None = None, port: int = 0):
        unknown = set(kinds) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; known: {KINDS}")
        parsed = urlparse(upstream)
        self.upstream = (parsed.hostname, parsed.port or 80)
        self.rate, self.kinds = rate, kinds
        self.weights = [float((weights or {}).get(kind, 1.0)) for kind in kinds]
        self.faults: Counter[str] = Counter()
        self.methods: Counter[str] = Counter()
        self.requests = 0
        self.repeated = 0
        self._faulted: set[tuple[str, str]] = set()
        self._rng = random.Random(seed)
        self._planned: list[tuple[str, Match]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="faulty-s3-proxy", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FaultyS3Proxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FaultyS3Proxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def plan(self, kinds: list[str], match: Match = lambda method, path: True) -> None:
        """Force these faults, in order, on the next requests that `match`."""
        with self._lock:
            self._planned.extend((kind, match) for kind in kinds)

    def reset(self, rate: float | None = None) -> None:
        """Forget planned faults and counts (and set a new rate)."""
        with self._lock:
            self._planned.clear()
            self.faults.clear()
            self.methods.clear()
            self.requests = 0
            self.repeated = 0
            self._faulted.clear()
            if rate is not None:
                self.rate = rate

    @property
    def planned_left(self) -> int:
        with self._lock:
            return len(self._planned)

    def choose(self, method: str, path: str) -> str | None:
        """The fault for this request, if any (and count it)."""
        with self._lock:
            self.requests += 1
            self.methods[method] += 1
            if (method, path) in self._faulted:
                self._faulted.discard((method, path))
                self.repeated += 1
            kind = None
            for i, (planned, match) in enumerate(self._planned):
                if match(method, path):
                    kind = self._planned.pop(i)[0]
                    break
            if kind is None and self.rate and self._rng.random() < self.rate:
                weights = [w if k != "truncate" or method == "GET" else 0.0 for k, w in zip(self.kinds, self.weights)]
                kind = self._rng.choices(self.kinds, weights)[0]
            if kind is not None:
                self.faults[kind] += 1
                if kind != "latency":
                    self._faulted.add((method, path))
            return kind


def _handler(proxy: FaultyS3Proxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as boto3's connection pool expects

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 -- the base class's name
            pass

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass  # trailers
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _reset(self) -> None:
            """Abort the connection with a TCP RST, as a crashed server or a middlebox would."""
            self.wfile.flush()
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()

        def _forward(self, body: bytes) -> tuple[int, str, list[tuple[str, str]], bytes]:
            conn = http.client.HTTPConnection(*proxy.upstream, timeout=120)
            try:
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                if body or self.command in ("PUT", "POST"):
                    headers["Content-Length"] = str(len(body))
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                return resp.status, resp.reason, resp.getheaders(), resp.read()
            finally:
                conn.close()

        def _send(self, status: int, reason: str, headers: list[tuple[str, str]], body: bytes,
                  send_bytes: int | None = None) -> None:
            self.send_response_only(status, reason)
            length = None
            for name, value in headers:
                if name.lower() in _HOP_BY_HOP:
                    continue
                if name.lower() == "content-length":
                    length = value
                    continue
                self.send_header(name, value)
            if self.command == "HEAD":
                self.send_header("Content-Length", length or "0")  # HEAD answers the object's length, no body
            else:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body if send_bytes is None else body[:send_bytes])

        def _error(self, kind: str) -> None:
            status, code, message = _ERRORS[kind]
            body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message>'
                    f"<RequestId>{uuid.uuid4().hex[:16]}</RequestId></Error>").encode()
            self._send(status, code, [("Content-Type", "application/xml")], body)

        def _proxy(self) -> None:
            body = self._body()
            kind = proxy.choose(self.command, self.path)
            if kind == "reset_before":
                return self._reset()
            if kind in _ERRORS:
                return self._error(kind)
            if kind == "latency":
                time.sleep(random.uniform(0.2, 1.0))
            status, reason, headers, answer = self._forward(body)
            if kind == "reset_after":
                return self._reset()
            if kind == "truncate" and self.command != "HEAD" and len(answer) >= 2:
                self._send(status, reason, headers, answer, send_bytes=len(answer) // 2)
                return self._reset()
            if kind == "truncate":  # nothing to cut (HEAD, an empty body): the answer is lost instead
                return self._reset()
            self._send(status, reason, headers, answer)

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _proxy  # noqa: N815 -- http.server's naming

    return Handler


if __name__ == "__main__":
    upstream, port, rate = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    seed = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    with FaultyS3Proxy(upstream, rate=rate, seed=seed, port=port) as server:
        print(f"faulty S3 proxy on {server.url} -> {upstream}, {rate:.0%} of requests faulted", flush=True)
        try:
            while True:
                time.sleep(60)
                print(f"{server.requests} requests, faults {dict(server.faults)}", flush=True)
        except KeyboardInterrupt:
            pass
