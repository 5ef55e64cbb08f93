import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import respx.mocks
from django.db import connection

from tests.servers import DevLLM, Runtime, database_url, start_devllm, start_runtime

E2E_KEY = "e2e-internal-key-6f1c2a9b8d7e"

# respx mocks at the httpx layer (AsyncClient._transport_for_url), not inside httpcore: the
# upstream client's default transport is aiohttp's (httpx-aiohttp), which httpcore never sees.
# Same routes, same assertions, whichever transport LLM_HTTP_TRANSPORT picks.
respx.mocks.DEFAULT_MOCKER = "httpx"


def pytest_report_header(config: pytest.Config) -> str:
    """Which database this run uses, so that a log shows each run's backend."""
    from django.conf import settings

    database = settings.DATABASES["default"]
    engine = database["ENGINE"].rsplit(".", 1)[-1]
    return f"database: {engine} (test database {database['TEST']['NAME']})"


def pytest_sessionstart(session: pytest.Session) -> None:
    """``REQUIRE_DATABASE=postgresql`` (or ``sqlite3``): stop at once on any other backend."""
    from django.conf import settings

    wanted = os.environ.get("REQUIRE_DATABASE")
    engine = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    if wanted and wanted != engine:
        raise pytest.UsageError(
            f"REQUIRE_DATABASE={wanted} but this run's database is {engine}: "
            "check AGENT_RUNTIME__DATABASE_URL (environment, then .env)"
        )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """``REQUIRE_NO_SKIPS=1`` (CI): any skip is a failure, whatever raised it."""
    report = yield
    if (
        report.skipped
        and not hasattr(report, "wasxfail")
        and os.environ.get("REQUIRE_NO_SKIPS") == "1"
    ):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"REQUIRE_NO_SKIPS=1 but the test skipped: {reason}"
    return report


@pytest.fixture(scope="session")
def server_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("server-logs")


@pytest.fixture(scope="session")
def devllm_process(server_logs: Path) -> Iterator[DevLLM]:
    server = start_devllm(server_logs)
    yield server
    server.stop()


@pytest.fixture
def devllm(devllm_process: DevLLM) -> DevLLM:
    """The session's development LLM, with an empty script and log."""
    devllm_process.reset()
    return devllm_process


@pytest.fixture(scope="session")
def e2e_database_url(django_db_setup: None, django_db_blocker: pytest.FixtureRequest) -> str:
    with django_db_blocker.unblock():  # type: ignore[attr-defined]
        return database_url(connection.settings_dict)


@pytest.fixture(scope="session")
def runtime_factory(
    server_logs: Path, e2e_database_url: str, devllm_process: DevLLM
) -> Iterator[object]:
    """Start runtime servers with extra settings; all are stopped at the end of the run."""
    started: list[Runtime] = []

    def start(*, llm_url: str | None = None, workers: int = 1, **settings: object) -> Runtime:
        server = start_runtime(
            server_logs,
            db_url=e2e_database_url,
            llm_url=llm_url or devllm_process.url,
            key=E2E_KEY,
            workers=workers,
            **settings,
        )
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def runtime_process(runtime_factory) -> Runtime:  # type: ignore[no-untyped-def]
    return runtime_factory()


@pytest.fixture
def runtime(runtime_process: Runtime, devllm: DevLLM, transactional_db: None) -> Runtime:
    """The shared runtime server, talking to a reset development LLM, on a clean database."""
    return runtime_process
