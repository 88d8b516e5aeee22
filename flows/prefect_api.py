"""The Prefect API an `infimmr run` talks to: PREFECT_API_URL's server, or a temporary one started here first.

Prefect starts its temporary server on the first API call and gives it PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS
(20 s by default) to answer. A first start creates and migrates its database, which takes longer than that on a loaded
machine; the run then failed like a failed stage although nothing ran. Here the server is started before the run, with
time to start (the setting, when set, or STARTUP_SECONDS), and a failure to start is reported as what it is.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import Future
from typing import Callable

STARTUP_SETTING = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"
STARTUP_SECONDS = 300  # a cold start measured 20-60 s on a loaded 2-core machine


class PrefectUnavailable(RuntimeError):
    """No Prefect API to run against: nothing ran."""


def startup_seconds(environ: dict[str, str]) -> int:
    """How long the temporary server may take to answer: the operator's setting when it is a positive integer."""
    try:
        value = int(environ.get(STARTUP_SETTING, ""))
    except ValueError:
        return STARTUP_SECONDS
    return value if value > 0 else STARTUP_SECONDS


def needs_temporary_server() -> bool:
    """Would a run start Prefect's temporary server (no PREFECT_API_URL, and a temporary server allowed)?"""
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED

    return not PREFECT_API_URL.value() and bool(PREFECT_SERVER_EPHEMERAL_ENABLED.value())


def start_api() -> Callable[[], None]:
    """Start Prefect's temporary server when the run would need one (no PREFECT_API_URL) and return the wait for it to
    answer. The server process boots in about 10 s; the caller imports the pipeline meanwhile (2-3 s it otherwise
    spent before the server started) and then waits. The wait raises PrefectUnavailable when it did not start."""
    if not needs_temporary_server():
        return lambda: None  # a server of the operator's, or none allowed: Prefect's own error then says so
    from prefect.server.api.server import SubprocessASGIServer  # here, not in the thread: no import runs beside ours

    seconds = startup_seconds(dict(os.environ))
    started: Future[None] = Future()

    def start() -> None:
        try:
            SubprocessASGIServer().start(timeout=seconds)
            started.set_result(None)
        except BaseException as error:  # noqa: BLE001 - handed to the wait
            started.set_exception(error)

    threading.Thread(target=start, name="infimmr-prefect-server-start", daemon=True).start()

    def wait() -> None:
        try:
            started.result()
        except Exception as error:  # noqa: BLE001 - whatever stopped it, the run has not started
            detail = " ".join(str(error).split())[:1500] or type(error).__name__
            raise PrefectUnavailable(
                f"Prefect's temporary server (started because PREFECT_API_URL is not set) did not answer within "
                f"{seconds} s, so nothing ran: {detail}\nStart a server (`infimmr server`) and export "
                f"PREFECT_API_URL=http://127.0.0.1:4200/api, or allow more time with {STARTUP_SETTING}"
            ) from error

    return wait


def ensure_api() -> None:
    """Start Prefect's temporary server now when the run would need one (no PREFECT_API_URL); later calls reuse it."""
    start_api()()
