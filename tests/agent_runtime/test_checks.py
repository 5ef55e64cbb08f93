import os
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from agent_runtime.checks import settings_problems, validate_settings
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
