"""A stage process ends without the interpreter's teardown once its work is stored (issue 15: 1-3 s with torch and a
model loaded), but its atexit handlers still run and nothing it printed is lost."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import atexit
import infimmr_core.worker as worker

class Teardown:
    def __del__(self):  # a module global's finalizer runs only in the interpreter's teardown
        print("teardown", flush=True)

kept = Teardown()
atexit.register(lambda: print("atexit"))
print("work")  # block-buffered into a pipe: still in the buffer when exit_now is called
worker.exit_now(3)
"""


def test_exit_now_runs_atexit_handlers_flushes_and_skips_the_teardown():
    out = subprocess.run([sys.executable, "-c", CHILD], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert (out.returncode, out.stdout) == (3, "work\natexit\n"), out.stderr[-2000:]
