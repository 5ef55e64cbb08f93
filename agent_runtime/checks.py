"""Start-up validation: misconfiguration stops the server before the first request."""

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

PLACEHOLDER_PREFIXES = ("change-me", "changeme", "your-internal-key", "your-secret-key")


def _is_placeholder(value: str) -> bool:
    lowered = value.strip().lower()
    return not lowered or lowered.startswith(PLACEHOLDER_PREFIXES)


def settings_problems() -> list[str]:
    """Every reason the current settings cannot serve; empty when they can."""
    problems: list[str] = []
    if not settings.DEBUG:
        if _is_placeholder(settings.INTERNAL_API_KEY):
            problems.append(
                "AGENT_RUNTIME__INTERNAL_API_KEY is empty or a placeholder; set a real secret "
                "(or AGENT_RUNTIME__DEBUG=true for local development)."
            )
        if _is_placeholder(settings.SECRET_KEY):
            problems.append(
                "AGENT_RUNTIME__SECRET_KEY is empty or a placeholder; set a real secret."
            )
    for name in ("LLM_CLIENT", "RUN_BROKER"):
        try:
            import_string(getattr(settings, name))
        except ImportError as exc:
            problems.append(
                f"AGENT_RUNTIME__{name}: cannot import {getattr(settings, name)!r}: {exc}"
            )
    from streaming.tools.registry import get_tool_registry, reset_tool_registry

    reset_tool_registry()
    try:
        get_tool_registry()
    except (ImproperlyConfigured, ImportError) as exc:
        problems.append(str(exc))
    if settings.SESSION_BUSY_STRATEGY not in ("reject", "enqueue", "interrupt"):
        problems.append(
            "AGENT_RUNTIME__SESSION_BUSY_STRATEGY must be reject, enqueue or interrupt."
        )
    if settings.REDIS_URL and not settings.REDIS_URL.startswith(
        ("redis://", "rediss://", "unix://")
    ):
        problems.append("AGENT_RUNTIME__REDIS_URL must be a redis://, rediss:// or unix:// URL.")
    if settings.RUN_BROKER.endswith(".RedisBroker") and not settings.REDIS_URL:
        problems.append(
            "AGENT_RUNTIME__RUN_BROKER is the Redis broker but AGENT_RUNTIME__REDIS_URL is empty."
        )
    if settings.TOOL_MAX_STEPS < 1:
        problems.append("AGENT_RUNTIME__TOOL_MAX_STEPS must be at least 1.")
    if not settings.LLM_PROXY_URL.startswith(("http://", "https://")):
        problems.append("AGENT_RUNTIME__LLM_PROXY_URL must be an http(s) URL.")
    if settings.LOG_FORMAT not in ("json", "plain"):
        problems.append("AGENT_RUNTIME__LOG_FORMAT must be json or plain.")
    if settings.WORKERS < 1:
        problems.append("AGENT_RUNTIME__WORKERS must be at least 1.")
    for origin in settings.CORS_ALLOWED_ORIGINS:
        if origin != "*" and not origin.startswith(("http://", "https://")):
            problems.append(
                f"AGENT_RUNTIME__CORS_ALLOWED_ORIGINS: {origin!r} is not an origin "
                "(scheme://host[:port]) or *."
            )
    return problems


def validate_settings() -> None:
    """Raise ImproperlyConfigured listing every problem; called when the ASGI app is built."""
    problems = settings_problems()
    if problems:
        raise ImproperlyConfigured("Agent Runtime cannot start:\n- " + "\n- ".join(problems))


@checks.register(checks.Tags.security)
def runtime_settings_check(
    app_configs: object = None, **kwargs: object
) -> list[checks.CheckMessage]:
    return [checks.Error(p, id="agent_runtime.E001") for p in settings_problems()]
