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


def test_the_server_refuses_to_start_with_a_placeholder_key() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_RUNTIME__")}
    env.update(
        AGENT_RUNTIME__INTERNAL_API_KEY="your-internal-key",
        AGENT_RUNTIME__SECRET_KEY="a-real-secret-0123456789abcdef0123456789",
        DJANGO_SETTINGS_MODULE="agent_runtime.settings",
    )
    result = subprocess.run(
        [sys.executable, "-c", "import agent_runtime.asgi"],
        env=env,
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "AGENT_RUNTIME__INTERNAL_API_KEY is empty or a placeholder" in result.stderr


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
