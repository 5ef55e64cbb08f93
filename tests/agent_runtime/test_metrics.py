"""Start-up warning for worker processes that cannot share their metrics."""

import pytest

from agent_runtime import metrics


def test_a_child_process_without_a_shared_directory_is_told_to_use_serve(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(metrics.MULTIPROC_ENV, raising=False)
    monkeypatch.setattr(metrics.multiprocessing, "parent_process", lambda: object())
    problem = metrics.unshared_worker_problem()
    assert problem is not None
    assert "manage.py serve --workers N" in problem
    assert "/metrics" in problem


def test_a_child_process_with_a_shared_directory_is_fine(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    monkeypatch.setenv(metrics.MULTIPROC_ENV, str(tmp_path))
    monkeypatch.setattr(metrics.multiprocessing, "parent_process", lambda: object())
    assert metrics.unshared_worker_problem() is None


def test_a_single_process_is_fine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(metrics.MULTIPROC_ENV, raising=False)
    monkeypatch.setattr(metrics.multiprocessing, "parent_process", lambda: None)
    assert metrics.unshared_worker_problem() is None
