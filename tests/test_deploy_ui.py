"""The pipeline deployment's run form in the Prefect UI, rendered by headless Chromium: it shows the recipe's fields.

Needs Debian's `chromium` (apt-get install chromium); skipped where it is absent. The screenshot is written to
$INFIMMR_SCREENSHOT_DIR (default: the test's temporary directory) as run-form.png.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.test_deploy import deployment, infimmr

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def chromium(url: str, *args: str) -> subprocess.CompletedProcess:
    # No background networking (this machine is offline, and the UI needs none of it); virtual time lets the
    # single-page app fetch the schema from the API and render before the capture.
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
         "--virtual-time-budget=20000", "--window-size=1400,2400", *args, url],
        capture_output=True, text=True, timeout=180,
    )


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium package is not installed")
def test_run_form_shows_recipe_fields(prefect_server, cli_env, tmp_path):
    infimmr(["deploy", "--no-schedule"], cli_env, tmp_path)
    dep = deployment(prefect_server, "infimmr-pipeline/pipeline")
    url = prefect_server.removesuffix("/api") + f"/deployments/deployment/{dep['id']}/run"

    dom = chromium(url, "--dump-dom").stdout
    # Field titles and descriptions come from the recipe's pydantic models; `force` is the second parameter.
    for label in ("recipe", "Base Model", "Curation", "Phases", "Learning Rate", "Evaluation", "Publish", "Runtime",
                  "Recipe name (shown in the model card).", "force"):
        assert label in dom, f"{label!r} is not on the run form"

    out = Path(os.environ.get("INFIMMR_SCREENSHOT_DIR") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    chromium(url, f"--screenshot={out / 'run-form.png'}")
    from PIL import Image

    with Image.open(out / "run-form.png") as image:
        assert image.size == (1400, 2400)
        assert len(image.convert("L").getcolors(maxcolors=1 << 16) or range(1 << 16)) > 16, "blank screenshot"
