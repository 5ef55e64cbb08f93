"""Prometheus metrics: the HTTP-level ones, and the ``/metrics`` exposition.

Under ``uvicorn --workers N`` every worker has its own memory, so each would report only its
own numbers. With ``PROMETHEUS_MULTIPROC_DIR`` set (``manage.py serve`` sets it whenever it
starts more than one worker) prometheus_client writes every value to a memory-mapped file in
that directory and ``/metrics`` adds up the files of all workers. The directory must be empty
when the server starts (``serve`` empties it). Turn metrics live in ``streaming.telemetry``.
"""

from __future__ import annotations

import glob
import logging
import multiprocessing
import os
import re

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# The *_created series double the output and multiprocess mode has none: one shape for both.
disable_created_metrics()

HTTP_REQUESTS = Counter(
    "agent_runtime_http_requests",
    "HTTP requests answered, by method and status code.",
    ["method", "status"],
)

request_logger = logging.getLogger("agent_runtime.requests")
# Probes and scrapes hit these every few seconds: their lines go to DEBUG.
_QUIET_PATHS = frozenset({"/health", "/metrics"})
_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_LIVE_GAUGE_FILE = re.compile(r"gauge_live\w*_(\d+)\.db$")


def http_request_observed(*, method: str, status: int) -> None:
    # A client may send any method name: label values must stay a small, fixed set.
    HTTP_REQUESTS.labels(method if method in _KNOWN_METHODS else "other", str(status)).inc()


def request_observed(
    *, method: str, path: str, status: int, duration_s: float, streaming: bool
) -> None:
    """A request was answered: count it and write its one log line (``RequestIdMiddleware``)."""
    http_request_observed(method=method, status=status)
    request_logger.log(
        logging.DEBUG if path in _QUIET_PATHS else logging.INFO,
        "request",
        extra={
            "method": method,
            "path": path[:200],
            "status": status,
            # For an event stream: the time to the response headers, not to its end.
            "duration_ms": round(duration_s * 1000, 1),
            "streaming": streaming,
        },
    )


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


def unshared_worker_problem() -> str | None:
    """Why ``/metrics`` of this process misleads, when another process started it as one of
    its workers without a shared metrics directory (``uvicorn --workers N``); else None.

    ``manage.py serve`` always sets the directory for several workers. uvicorn's ``--reload``
    also starts its server as a child: the metrics are right then, the parent's log lines not.
    """
    if multiprocess_dir() is not None or multiprocessing.parent_process() is None:
        return None
    return (
        f"this worker was started by another process (uvicorn --workers N, or --reload) "
        f"without {MULTIPROC_ENV}: /metrics reports only the counts of whichever worker "
        "answers, and the parent process does not log in the runtime's format. "
        "Run several workers with `manage.py serve --workers N` (or AGENT_RUNTIME__WORKERS)."
    )


def _forget_dead_workers(path: str) -> None:
    """Drop the live gauges of workers that died (uvicorn restarts them without telling us)."""
    for name in glob.glob(os.path.join(path, "gauge_live*_*.db")):
        match = _LIVE_GAUGE_FILE.search(name)
        if match is None:
            continue
        pid = int(match.group(1))
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            multiprocess.mark_process_dead(pid, path)
        except PermissionError:  # alive, owned by another user
            pass


def exposition() -> tuple[bytes, str]:
    """The metrics of this process, or of every worker in multiprocess mode."""
    path = multiprocess_dir()
    if path is None:
        return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
    _forget_dead_workers(path)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=path)
    return generate_latest(registry), CONTENT_TYPE_LATEST
