"""Fixtures the instructor's test modules share."""

import pytest

from grader.instructor.cli import main
from grader.instructor.workspace import Workspace


@pytest.fixture(scope="session")
def released(tmp_path_factory):
    """A released workspace, made once (release takes a while); tests copy it, never change it."""
    tmp = tmp_path_factory.mktemp("released")
    ws = Workspace.at(tmp / "workspace")
    assert main(["release", "--out", str(tmp / "notebooks"), "--workspace", str(ws.root)]) == 0
    return ws


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """Debian's Chromium, driven by Playwright, for the tests that open feedback pages in it."""
    from playwright.sync_api import sync_playwright

    from browser_lab import CHROMIUM, launch_chromium

    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: the browser tests drive Debian's Chromium. Install it with: "
                    "sudo apt-get update && sudo apt-get install -y chromium (never `playwright install`).",
                    pytrace=False)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TMPDIR", str(tmp_path_factory.mktemp("chromium")))  # its profile goes there
        with sync_playwright() as playwright:
            launched = launch_chromium(playwright, CHROMIUM)
            try:
                yield launched
            finally:
                launched.close()
