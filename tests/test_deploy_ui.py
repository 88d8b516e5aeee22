"""The pipeline deployment's run form in the Prefect UI, rendered by headless Chromium: a recipe by name, `KEY=VALUE`
overrides, force, and the whole recipe only as the advanced alternative.

Needs Debian's `chromium` (apt-get install chromium); skipped where it is absent. The screenshot (the form filled in as
"infimmr-3b with a different phase-2 learning rate") is written to $INFIMMR_SCREENSHOT_DIR (default: the test's
temporary directory) as run-form.png; the README shows docs/run-form.png, made this way.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.test_deploy import deployment, infimmr

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def chromium(url: str, *args: str, height: int = 2400) -> subprocess.CompletedProcess:
    # No background networking (this machine is offline, and the UI needs none of it); virtual time lets the
    # single-page app fetch the schema from the API and render before the capture.
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
         "--virtual-time-budget=20000", f"--window-size=1400,{height}", *args, url],
        capture_output=True, text=True, timeout=180,
    )


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium package is not installed")
def test_run_form_is_a_recipe_name_and_overrides(prefect_server, cli_env, tmp_path):
    infimmr(["deploy", "--no-schedule"], cli_env, tmp_path)
    dep = deployment(prefect_server, "infimmr-pipeline/pipeline")
    ui = prefect_server.removesuffix("/api")
    # The UI's own "Custom run" link carries parameters like this: the user story, filled in.
    wanted = {"recipe_name": "infimmr-3b", "overrides": ["phases.2.learning_rate=1e-6"]}
    url = f"{ui}/v2/deployments/deployment/{dep['id']}/run?parameters={quote(json.dumps(wanted))}"

    dom = chromium(url, "--dump-dom").stdout
    for label in ("recipe_name", "built-in", "recipe file", "overrides", "Add item", "force", "recipe (Optional)",
                  "Settings to change, each", "Stages to recompute"):
        assert label in dom, f"{label!r} is not on the run form"
    assert "Learning Rate" not in dom and "Base Model" not in dom, "the recipe tree is back on the form"

    # The other UI renders descriptions as Markdown: code spans, no quotes or swallowed tags.
    legacy = chromium(f"{ui}/deployments/deployment/{dep['id']}/run", "--dump-dom").stdout
    assert "markdown-renderer__codespan\">KEY=VALUE</code>" in legacy and "<blockquote" not in legacy

    out = Path(os.environ.get("INFIMMR_SCREENSHOT_DIR") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    chromium(url, f"--screenshot={out / 'run-form.png'}", height=1000)
    from PIL import Image

    with Image.open(out / "run-form.png") as image:
        assert image.size == (1400, 1000)
        assert len(image.convert("L").getcolors(maxcolors=1 << 16) or range(1 << 16)) > 16, "blank screenshot"
