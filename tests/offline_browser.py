"""Headless Chromium with the network blocked: what a page shows on a
hospital LAN without internet."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

#: no DNS for any name and every connection through a proxy that does not exist
OFFLINE_FLAGS = (
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--proxy-server=http://127.0.0.1:9",
    "--proxy-bypass-list=<-loopback>",
)


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.fail("chromium is not installed (scripts/bootstrap.sh installs it)")
    return found


def _run(args: list[str], timeout: int = 120) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [
                chromium(),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                f"--user-data-dir={profile}",
                *OFFLINE_FLAGS,
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def offline_dom(page: Path) -> str:
    """The DOM after load (scripts run, network blocked)."""
    return _run(["--virtual-time-budget=5000", "--dump-dom", page.resolve().as_uri()]).stdout


def offline_screenshot(page: Path, png: Path, size: str = "1280,2000") -> Path:
    _run([f"--screenshot={png}", f"--window-size={size}", page.resolve().as_uri()])
    return png
