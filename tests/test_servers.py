"""The E2E harness reports how a server it started ended (a model server's crash, above all)."""

import subprocess
import sys

from tests.servers import ServerProcess


def _ended(code: str, tmp_path) -> str | None:  # type: ignore[no-untyped-def]
    log = tmp_path / "server.log"
    process = subprocess.Popen([sys.executable, "-c", code])
    process.wait(timeout=60)
    return ServerProcess(url="http://127.0.0.1:1", process=process, log=log).ended()


def test_a_crash_is_named_with_its_signal_and_the_shells_exit_status(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # What a general protection fault in llama.cpp looks like to its parent.
    ended = _ended("import os, signal; os.kill(os.getpid(), signal.SIGSEGV)", tmp_path)
    assert ended == "was killed by SIGSEGV (exit status 139)"


def test_an_exit_is_named_with_its_status(tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert _ended("raise SystemExit(3)", tmp_path) == "exited with status 3"
