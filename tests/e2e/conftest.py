"""Fixtures of the end-to-end tests."""

import os
from pathlib import Path

import pytest

from tests.servers import DevLLM, Runtime

#: The tools of the tool approval tests: ``guarded`` declares its approval; the calculator
#: declares none, and ``APPROVAL_SETTING`` adds it.
APPROVAL_TOOLS = ",".join(
    [
        "streaming.tools.builtin.echo",
        "streaming.tools.builtin.calculator",
        "streaming.tools.builtin.read_file",
        "tests.tools.guarded",
        "tests.tools.whoami",
    ]
)
APPROVAL_SETTING = "calc*"


@pytest.fixture(scope="session")
def approval_runtime_process(runtime_factory) -> Runtime:  # type: ignore[no-untyped-def]
    """A runtime whose calculator and ``guarded`` calls wait for the user's approval."""
    return runtime_factory(tools=APPROVAL_TOOLS, tools_requiring_approval=APPROVAL_SETTING)


@pytest.fixture
def approval_runtime(
    approval_runtime_process: Runtime, devllm: DevLLM, transactional_db: None
) -> Runtime:
    """The approval runtime, talking to a reset development LLM, on a clean database."""
    return approval_runtime_process


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    """Where a test saves its screenshots: ``SCREENSHOTS_DIR`` (``docs/screenshots`` refreshes
    the docs' ones), else a temporary directory."""
    directory = Path(os.environ.get("SCREENSHOTS_DIR") or tmp_path)
    directory.mkdir(parents=True, exist_ok=True)
    return directory
