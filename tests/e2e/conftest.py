"""Fixtures of the browser tests."""

import os
from pathlib import Path

import pytest


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    """Where a test saves its screenshots: ``SCREENSHOTS_DIR`` (``docs/screenshots`` refreshes
    the docs' ones), else a temporary directory."""
    directory = Path(os.environ.get("SCREENSHOTS_DIR") or tmp_path)
    directory.mkdir(parents=True, exist_ok=True)
    return directory
