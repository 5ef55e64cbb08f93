"""``manage.py check --deploy`` with a production-like environment reports nothing."""

import os
import subprocess
import sys

from tests.servers import BASE_DIR

PRODUCTION_ENV = BASE_DIR / ".ci" / "deploy-check.env"


def _production_env() -> dict[str, str]:
    values = {}
    for line in PRODUCTION_ENV.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, value = line.split("=", 1)
            values[key] = value
    return values


def _check(**overrides: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_RUNTIME__")}
    env.update(_production_env(), DJANGO_SETTINGS_MODULE="agent_runtime.settings", **overrides)
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        env={k: v for k, v in env.items() if v is not None},
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_silent_in_production() -> None:
    result = _check()
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


def test_check_deploy_fails_on_the_defaults_it_is_meant_to_catch() -> None:
    result = _check(
        AGENT_RUNTIME__SECURE_HSTS_SECONDS="0", AGENT_RUNTIME__SECURE_SSL_REDIRECT="false"
    )
    assert result.returncode != 0
    assert "security.W004" in result.stderr
    assert "security.W008" in result.stderr


def test_check_deploy_reports_a_placeholder_key() -> None:
    result = _check(AGENT_RUNTIME__INTERNAL_API_KEY="your-internal-key")
    assert result.returncode != 0
    assert "agent_runtime.E001" in result.stderr
