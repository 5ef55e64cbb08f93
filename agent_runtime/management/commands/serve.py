"""``manage.py serve``: the production server (uvicorn), configured from settings.

Runs the system checks first (a placeholder secret stops it here), then uvicorn with
``WORKERS`` processes on ``HOST:PORT``, logging in the runtime's format. It never migrates:
that is the explicit ``manage.py migrate`` step (``docker/entrypoint.sh migrate``).

With more than one worker the Prometheus metrics need a shared directory
(``PROMETHEUS_MULTIPROC_DIR``): it is emptied here before the workers start, and a fresh
temporary one is used when none is set.
"""

import logging
import os
import shutil
import tempfile
from pathlib import Path

import uvicorn
from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from agent_runtime.http_protocol import HTTP_PROTOCOL
from agent_runtime.metrics import MULTIPROC_ENV

logger = logging.getLogger("agent_runtime.serve")


def prepare_multiprocess_dir(workers: int) -> tuple[str | None, bool]:
    """Empty (or create) the metrics directory: ``(path, made_here)``; no path with one worker
    and no ``PROMETHEUS_MULTIPROC_DIR``."""
    path = os.environ.get(MULTIPROC_ENV)
    made_here = False
    if not path and workers > 1:
        path = tempfile.mkdtemp(prefix="agent-runtime-metrics-")
        os.environ[MULTIPROC_ENV] = path  # inherited by the worker processes
        made_here = True
    if not path:
        return None, False
    directory = Path(path)
    directory.mkdir(parents=True, exist_ok=True)
    # Files left by an earlier run would add its counts to this one's.
    for entry in directory.iterdir():
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    return path, made_here


class Command(BaseCommand):
    help = "Serve the runtime with uvicorn (HOST, PORT, WORKERS from settings)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default=None, help="default: AGENT_RUNTIME__HOST")
        parser.add_argument("--port", type=int, default=None, help="default: AGENT_RUNTIME__PORT")
        parser.add_argument(
            "--workers", type=int, default=None, help="default: AGENT_RUNTIME__WORKERS"
        )

    def handle(self, *args: object, **options: object) -> None:
        host = str(options["host"] or settings.HOST)
        port = int(options["port"] or settings.PORT)  # type: ignore[call-overload]
        workers = int(options["workers"] or settings.WORKERS)  # type: ignore[call-overload]
        metrics_dir, made_here = prepare_multiprocess_dir(workers)
        # A log record, not a print: every line the server writes is in the log format.
        logger.info(
            "serving",
            extra={"host": host, "port": port, "workers": workers, "metrics_dir": metrics_dir},
        )
        try:
            uvicorn.run(
                "agent_runtime.asgi:application",
                host=host,
                port=port,
                workers=workers,
                # uvicorn's httptools protocol, closing connections whose headers drip in.
                http=HTTP_PROTOCOL,
                # The client address (REMOTE_ADDR) comes from X-Forwarded-For for these peers.
                forwarded_allow_ips=settings.FORWARDED_ALLOW_IPS,
                # agent_runtime.lifespan closes the upstream client on shutdown; uvicorn's
                # access log is replaced by the runtime's own request log (with request id,
                # in the configured format).
                lifespan="on",
                access_log=False,
                log_config=settings.LOGGING,
                log_level=settings.LOG_LEVEL.lower(),
                # On SIGTERM, open event streams get this long to finish (their turns then store
                # what they have) before the worker stops.
                timeout_graceful_shutdown=30,
            )
        finally:
            if made_here and metrics_dir:
                shutil.rmtree(metrics_dir, ignore_errors=True)
