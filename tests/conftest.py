import os
import sys
from pathlib import Path

import pytest
import torch

# The test helpers (implementations.py) live beside the tests.
sys.path.insert(0, str(Path(__file__).parent))

ROOT = Path(__file__).resolve().parent.parent

# The files that take minutes, longest first (measured with `make test` on two cores). Under
# pytest-xdist (`make test`: --dist loadfile --no-loadscope-reorder) they are handed out first, so
# that no long file starts last and runs alone while the other worker has nothing left to do; the
# other files follow in their usual order. A plain `pytest` keeps the usual order throughout.
LONGEST_FIRST = (
    "tests/test_colab.py",
    "tests/test_course.py",
    "tests/instructor/test_installed.py",
    "tests/instructor/engine/test_engine.py",
    "tests/test_browser.py",
    "tests/instructor/test_cli_errors.py",
    "tests/instructor/test_hostile.py",
    "tests/test_imbalance.py",
    "tests/instructor/test_results.py",
    "tests/instructor/test_merge.py",
)


@pytest.fixture
def root() -> Path:
    return ROOT


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """Debian's Chromium, driven by Playwright, for the tests that open pages in it (the lab, feedback):
    one per test module."""
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


def pytest_collection_modifyitems(config, items):
    if os.environ.get("PYTEST_XDIST_WORKER"):  # every worker collects, and orders, the same way
        rank = {name: index for index, name in enumerate(LONGEST_FIRST)}
        items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))  # stable
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device; none is present")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
