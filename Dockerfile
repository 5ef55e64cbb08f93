# syntax=docker/dockerfile:1
# Agent Runtime: a multi-stage build. The first stage resolves the locked dependencies with uv;
# the final image holds only the virtual environment and the source, and runs as a non-root user.
#
#   docker build -t agent-runtime .
#   docker run --rm agent-runtime migrate      # apply migrations (an explicit step)
#   docker run --rm -p 8001:8001 agent-runtime # serve (the default command)
# See docker-compose.yml for the whole stack and README.md ("Docker") for the settings.

ARG PYTHON_VERSION=3.11

FROM ghcr.io/astral-sh/uv:0.13 AS uv

# --- build: the locked, production-only virtual environment --------------------------------
FROM python:${PYTHON_VERSION}-slim-bookworm AS build
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /app
# Dependencies first (a layer that survives source changes), exactly as uv.lock pins them.
RUN --mount=type=cache,target=/root/.cache/uv \
    --mount=type=bind,source=uv.lock,target=uv.lock \
    --mount=type=bind,source=pyproject.toml,target=pyproject.toml \
    uv sync --frozen --no-dev --no-install-project
COPY . /app
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev \
 && python -m compileall -q agent_runtime sessions streaming devllm

# --- runtime -----------------------------------------------------------------------------------
FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime
RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid app --home-dir /app --shell /usr/sbin/nologin app
COPY --from=build --chown=app:app /app /app
WORKDIR /app
ENV PATH="/app/.venv/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    AGENT_RUNTIME__HOST=0.0.0.0 \
    AGENT_RUNTIME__PORT=8001 \
    AGENT_RUNTIME__WORKERS=2 \
    AGENT_RUNTIME__LOG_FORMAT=json \
    # Shared by the uvicorn workers so /metrics adds them up; emptied by `serve` at start.
    PROMETHEUS_MULTIPROC_DIR=/tmp/agent-runtime-metrics
USER app
EXPOSE 8001
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('AGENT_RUNTIME__PORT', '8001'), timeout=2)"]
ENTRYPOINT ["/app/docker/entrypoint.sh"]
CMD ["serve"]
