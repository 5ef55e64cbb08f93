import os
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from agent_runtime.checks import (
    REQUIRED_MIDDLEWARE,
    effective_middleware,
    required_middleware_check,
    settings_problems,
    validate_settings,
    wrapped_middleware_deploy_check,
)
from tests.servers import BASE_DIR


def _python(*args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    """Python in the project directory with the production settings and these variables only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_RUNTIME__")}
    env.update(DJANGO_SETTINGS_MODULE="agent_runtime.settings", **settings)
    return subprocess.run(
        [sys.executable, *args], env=env, cwd=BASE_DIR, capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize("key", ["", "your-internal-key", "change-me", "CHANGE-ME-please"])
def test_placeholder_keys_are_refused_with_debug_off(settings, key: str) -> None:  # type: ignore[no-untyped-def]
    settings.DEBUG = False
    settings.INTERNAL_API_KEY = key
    with pytest.raises(ImproperlyConfigured, match="INTERNAL_API_KEY"):
        validate_settings()


def test_placeholders_are_allowed_in_debug(settings) -> None:  # type: ignore[no-untyped-def]
    settings.DEBUG = True
    settings.INTERNAL_API_KEY = "your-internal-key"
    settings.SECRET_KEY = "change-me"
    assert settings_problems() == []


def test_bad_client_path_and_url_are_reported(settings) -> None:  # type: ignore[no-untyped-def]
    settings.LLM_CLIENT = "streaming.nowhere.Client"
    settings.LLM_PROXY_URL = "localhost:8000"
    problems = " ".join(settings_problems())
    assert "LLM_CLIENT" in problems
    assert "LLM_PROXY_URL" in problems


@pytest.mark.timeout(300)
def test_a_bad_broker_is_reported(settings) -> None:  # type: ignore[no-untyped-def]
    settings.RUN_BROKER = "streaming.runs.redis.RedisBroker"
    settings.REDIS_URL = ""
    assert "AGENT_RUNTIME__REDIS_URL is empty" in " ".join(settings_problems())
    settings.RUN_BROKER = "streaming.runs.nowhere.Broker"
    settings.REDIS_URL = "localhost:6379"
    problems = " ".join(settings_problems())
    assert "RUN_BROKER: cannot import" in problems
    assert "REDIS_URL must be" in problems


def test_the_server_refuses_to_start_with_a_placeholder_key() -> None:
    result = _python(
        "-c",
        "import agent_runtime.asgi",
        AGENT_RUNTIME__INTERNAL_API_KEY="your-internal-key",
        AGENT_RUNTIME__SECRET_KEY="a-real-secret-0123456789abcdef0123456789",
    )
    assert result.returncode != 0
    assert "AGENT_RUNTIME__INTERNAL_API_KEY is empty or a placeholder" in result.stderr


def test_an_empty_secret_key_is_reported_as_a_problem(settings) -> None:  # type: ignore[no-untyped-def]
    # Django raises on reading an empty SECRET_KEY; the check must say it in its own words.
    settings.DEBUG = False
    settings.INTERNAL_API_KEY = "a-real-internal-key-0123456789abcdef"
    settings.SECRET_KEY = ""
    assert settings_problems() == [
        "AGENT_RUNTIME__SECRET_KEY is empty or a placeholder; set a real secret."
    ]


@pytest.mark.parametrize(
    "command",
    [
        ["manage.py", "check"],
        ["manage.py", "createsuperuser", "--noinput", "--username", "admin"],
        ["-c", "import agent_runtime.asgi"],  # what uvicorn does first
    ],
)
@pytest.mark.timeout(300)
def test_empty_keys_get_the_clear_message_not_djangos_error(command: list[str]) -> None:
    # A fresh clone's keys: empty (set so, and DEBUG off, so that a .env cannot win).
    result = _python(
        *command,
        AGENT_RUNTIME__DEBUG="false",
        AGENT_RUNTIME__INTERNAL_API_KEY="",
        AGENT_RUNTIME__SECRET_KEY="",
    )
    assert result.returncode != 0
    assert "AGENT_RUNTIME__SECRET_KEY is empty or a placeholder" in result.stderr
    assert "AGENT_RUNTIME__INTERNAL_API_KEY is empty or a placeholder" in result.stderr
    assert "The SECRET_KEY setting must not be empty" not in result.stderr


def test_wrappers_stand_for_the_django_middleware_they_run() -> None:
    present = effective_middleware()
    for path in REQUIRED_MIDDLEWARE:
        assert path in present, path
    assert required_middleware_check() == []


def test_a_missing_admin_middleware_is_an_error(settings) -> None:  # type: ignore[no-untyped-def]
    settings.ADMIN_MIDDLEWARE = [
        p for p in settings.ADMIN_MIDDLEWARE if not p.endswith("SessionMiddleware")
    ]
    [error] = required_middleware_check()
    assert error.id == "agent_runtime.E002"
    assert "SessionMiddleware" in error.msg


def test_djangos_hsts_check_runs_through_the_wrapper(settings) -> None:  # type: ignore[no-untyped-def]
    settings.SECURE_HSTS_SECONDS = 0
    ids = [message.id for message in wrapped_middleware_deploy_check()]
    assert "security.W004" in ids
