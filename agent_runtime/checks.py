"""Start-up validation: misconfiguration stops the server before the first request."""

from django.conf import settings
from django.core import checks
from django.core.checks.registry import registry
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

PLACEHOLDER_PREFIXES = ("change-me", "changeme", "your-internal-key", "your-secret-key")


def _is_placeholder(value: str) -> bool:
    lowered = value.strip().lower()
    return not lowered or lowered.startswith(PLACEHOLDER_PREFIXES)


def _secret_key() -> str:
    """``SECRET_KEY``, or "" when empty: Django raises on reading an empty one, and the check
    must report it in its own words, not as that traceback."""
    try:
        return settings.SECRET_KEY
    except ImproperlyConfigured:
        return ""


def settings_problems() -> list[str]:
    """Every reason the current settings cannot serve; empty when they can."""
    problems: list[str] = []
    if not settings.DEBUG:
        if _is_placeholder(settings.INTERNAL_API_KEY):
            problems.append(
                "AGENT_RUNTIME__INTERNAL_API_KEY is empty or a placeholder; set a real secret "
                "(or AGENT_RUNTIME__DEBUG=true for local development)."
            )
        if _is_placeholder(_secret_key()):
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


#: Django middleware that must run, and the check of Django's (silenced in settings, as it
#: looks for the name in MIDDLEWARE) that said so.
REQUIRED_MIDDLEWARE = {
    "django.middleware.security.SecurityMiddleware": "security.W001",
    "django.middleware.clickjacking.XFrameOptionsMiddleware": "security.W002",
    "django.middleware.csrf.CsrfViewMiddleware": "security.W003",
    "django.contrib.auth.middleware.AuthenticationMiddleware": "admin.E408",
    "django.contrib.messages.middleware.MessageMiddleware": "admin.E409",
    "django.contrib.sessions.middleware.SessionMiddleware": "admin.E410",
}


def effective_middleware() -> list[str]:
    """``MIDDLEWARE``, each wrapper replaced by the Django middleware it runs (``stands_for``)."""
    paths: list[str] = []
    for path in settings.MIDDLEWARE:
        stands_for = getattr(import_string(path), "stands_for", None)
        paths.extend(stands_for() if stands_for is not None else [path])
    return paths


@checks.register(checks.Tags.security)
def required_middleware_check(
    app_configs: object = None, **kwargs: object
) -> list[checks.CheckMessage]:
    present = effective_middleware()
    return [
        checks.Error(
            f"{path} must run: through its wrapper in MIDDLEWARE or in ADMIN_MIDDLEWARE "
            f"(Django's {check_id}).",
            id="agent_runtime.E002",
        )
        for path, check_id in REQUIRED_MIDDLEWARE.items()
        if path not in present
    ]


@checks.register(checks.Tags.security, deploy=True)
def wrapped_middleware_deploy_check(
    app_configs: object = None, **kwargs: object
) -> list[checks.CheckMessage]:
    """Django's deployment checks as they would run with the wrapped middleware listed by
    name (e.g. HSTS is checked only when SecurityMiddleware is); reports what that adds."""
    from django.test.utils import override_settings  # check time only, not in the server

    added: list[checks.CheckMessage] = []
    for check in registry.get_checks(include_deployment_checks=True):
        if checks.Tags.security not in getattr(check, "tags", ()):
            continue
        if check is wrapped_middleware_deploy_check:
            continue
        listed = check(app_configs=app_configs)
        with override_settings(MIDDLEWARE=effective_middleware()):
            wrapped = check(app_configs=app_configs)
        added.extend(message for message in wrapped if message not in listed)
    return added
