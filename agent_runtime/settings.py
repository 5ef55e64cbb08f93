"""Settings: every value comes from one django-environ ``env`` with the ``AGENT_RUNTIME__`` prefix.

Each setting is declared once with a safe default; production differs only by environment
variables (or a ``.env`` file beside ``manage.py``).
"""

import os
from datetime import timedelta

from agent_runtime.env import BASE_DIR, env
from agent_runtime.logging_config import logging_config

# The upstream model, turns, runs, tools and upstream faults.
from agent_runtime.runtime_settings import *  # noqa: F403
from agent_runtime.runtime_settings import LLM_API_KEY, LLM_PROXY_KEY

# --- Django core -------------------------------------------------------------------------------
DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env.str("SECRET_KEY", default="")
if DEBUG and not SECRET_KEY:
    # Development only: with DEBUG off an empty key stops the server (agent_runtime.checks).
    SECRET_KEY = "django-insecure-development-only"
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
VERSION = env.str("VERSION", default="0.1.0")
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO").upper()

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.messages",
    # Its label is "sessions"; ours is "agent_sessions" (module "sessions"): no clash.
    "django.contrib.sessions",
    "django.contrib.staticfiles",
    "servestatic",
    "corsheaders",
    "axes",
    "agent_runtime.apps.AgentRuntimeConfig",
    "sessions.apps.AgentSessionsConfig",
    "streaming.apps.StreamingConfig",
]

# Every middleware here runs on the event loop: Django runs a sync hook (any
# ``MiddlewareMixin``'s) through a thread hop per request, so Django's own header middleware
# run through agent_runtime.middleware.OnEventLoop, and the admin's through AdminOnlyMiddleware.
MIDDLEWARE = [
    # First: every response, error or not, carries X-Request-ID and is logged and counted.
    "agent_runtime.middleware.RequestIdMiddleware",
    # Next, so that every response (a 401 too) has the security headers.
    "agent_runtime.middleware.SecurityMiddleware",
    "agent_runtime.middleware.XFrameOptionsMiddleware",
    # Before the key check, which a browser's preflight cannot pass; off unless configured.
    "agent_runtime.middleware.CorsMiddleware",
    "agent_runtime.middleware.ErrorJsonMiddleware",
    "agent_runtime.middleware.InternalAuthMiddleware",
    # After the key check: a body too large or too slow (read by agent_runtime.handler).
    "agent_runtime.middleware.RequestBodyMiddleware",
    "agent_runtime.middleware.CommonMiddleware",
    "agent_runtime.admin_only.AdminOnlyMiddleware",
]
# What only the admin needs, run for ADMIN_PATH_PREFIXES (below) only (agent_runtime.admin_only).
ADMIN_MIDDLEWARE = [
    "servestatic.middleware.ServeStaticMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # Last, as django-axes requires: turns its lockout into the 429 page.
    "axes.middleware.AxesMiddleware",
]
# Django's checks of these look for them in MIDDLEWARE by name; agent_runtime.checks runs them
# on what the wrappers above stand for instead.
SILENCED_SYSTEM_CHECKS = [
    "security.W001",
    "security.W002",
    "security.W003",
    "admin.E408",
    "admin.E409",
    "admin.E410",
    "axes.W002",
]
# The admin's sessions live in the database, so that logging out (or changing the password)
# ends them: a copied cookie is worthless afterwards. Signed cookies would stay valid until they
# expire. ``manage.py clearsessions`` deletes the expired rows.
SESSION_ENGINE = "django.contrib.sessions.backends.db"
SESSION_COOKIE_HTTPONLY = True

ROOT_URLCONF = "agent_runtime.urls"
ASGI_APPLICATION = "agent_runtime.asgi.application"
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database ----------------------------------------------------------------------------------
DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'agent_runtime.sqlite3'}")
}
# All ORM work runs on asgiref's one database thread (agent_runtime.asgi): its connection is
# kept from one request to the next. One that failed is closed after the failure.
DATABASES["default"]["CONN_MAX_AGE"] = None
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            # WAL lets readers run beside the single writer; IMMEDIATE takes the write lock at
            # BEGIN so two writers queue instead of failing with "database is locked" mid-way.
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
elif env.bool("DATABASE_POOL", default=False):
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1,
        "max_size": env.int("DATABASE_POOL_MAX_SIZE", default=10),
    }
    # Django's pool refuses persistent connections: the pool keeps them instead.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Static, i18n ------------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# The admin's static files are served by ServeStatic's async middleware under uvicorn, straight
# from the installed apps (no collectstatic step); a reverse proxy may serve /static/ instead.
SERVESTATIC_USE_FINDERS = True
# The paths ADMIN_MIDDLEWARE runs for: the admin's pages and its static files.
ADMIN_PATH_PREFIXES = ("/admin/", f"/{STATIC_URL}")
USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en-us"

# --- Request limits ----------------------------------------------------------------------------
# Counted in code points: a character outside the BMP ("\U0001f600") is one.
MAX_MESSAGE_CHARS = env.int("MAX_MESSAGE_CHARS", default=100_000)
# Bodies above this are refused with 413 before they are parsed. The default lets any message
# within MAX_MESSAGE_CHARS through in any JSON encoding (without padding): at worst 12 bytes a
# character, one outside the BMP written as two escapes ("\ud83d\ude00"), plus 64 KiB for the
# other fields.
MAX_BODY_BYTES = env.int("MAX_BODY_BYTES", default=MAX_MESSAGE_CHARS * 12 + 64 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_BODY_BYTES
# A body (once its headers are in) that sends nothing for this long, or is not complete this
# long after its headers, is answered 408 request_timeout (agent_runtime.request_body).
REQUEST_BODY_IDLE_TIMEOUT_SECONDS = env.float("REQUEST_BODY_IDLE_TIMEOUT_SECONDS", default=10.0)
REQUEST_BODY_TIMEOUT_SECONDS = env.float("REQUEST_BODY_TIMEOUT_SECONDS", default=60.0)
# A connection whose request headers are not complete this long after it opened (or after the
# request's first byte, on a reused connection) is closed (agent_runtime.http_protocol).
REQUEST_HEADER_TIMEOUT_SECONDS = env.float("REQUEST_HEADER_TIMEOUT_SECONDS", default=10.0)

# --- Authentication ----------------------------------------------------------------------------
INTERNAL_API_KEY = env.str("INTERNAL_API_KEY", default="")
# Paths served without the internal key (the admin has its own login).
PUBLIC_PATH_PREFIXES = ("/health", "/admin/", "/openapi.json", "/static/")

# --- Admin login throttling (django-axes) ------------------------------------------------------
# The first of these backends refuses a locked-out login before any password is hashed.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# A username, or a client address, with this many failed logins is locked out (429) for the
# cool-off; each further failure during it starts the cool-off again.
AXES_FAILURE_LIMIT = env.int("ADMIN_LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(seconds=env.float("ADMIN_LOGIN_COOLOFF_SECONDS", default=900.0))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
# The address is REMOTE_ADDR, which uvicorn takes from X-Forwarded-For only when the peer is one
# of FORWARDED_ALLOW_IPS (below); never a header that any client can set.
AXES_CLIENT_IP_CALLABLE = "agent_runtime.admin_login.client_address"
# Admin requests served at once per worker, each on a thread of its own (agent_runtime.handler);
# more wait their turn. One password hash takes a core for about a second.
ADMIN_CONCURRENCY = env.int("ADMIN_CONCURRENCY", default=1)

# --- HTTPS and browsers ------------------------------------------------------------------------
# ``manage.py check --deploy`` is silent with the production values listed in .env.example.
# Redirect plain HTTP to HTTPS (off: TLS usually ends at a proxy in front of the service).
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
# The container health check and Prometheus call these over plain HTTP from inside.
SECURE_REDIRECT_EXEMPT = [r"^health$", r"^metrics$"]
# Behind a TLS-terminating proxy that sets X-Forwarded-Proto (only then: clients could forge it).
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https")
    if env.bool("SECURE_PROXY_SSL_HEADER", default=False)
    else None
)
# Strict-Transport-Security, sent on HTTPS responses only; opt-in, as it binds browsers for
# its whole lifetime.
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
# The admin's cookies travel over HTTPS only, unless in development.
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
# Origins allowed to post the admin's forms over HTTPS, e.g. https://runtime.example.com.
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# Browser origins allowed to call the API (CORS, by django-cors-headers); empty: no CORS
# headers at all. "*": any.
_cors_origins = env.list("CORS_ALLOWED_ORIGINS", default=[])
CORS_ALLOW_ALL_ORIGINS = "*" in _cors_origins
CORS_ALLOWED_ORIGINS = [origin for origin in _cors_origins if origin != "*"]
CORS_ALLOW_METHODS = ("GET", "POST", "DELETE", "OPTIONS")
CORS_ALLOW_HEADERS = ("Content-Type", "X-Internal-Auth", "X-Request-ID", "Last-Event-ID")
CORS_EXPOSE_HEADERS = ("X-Request-ID",)
CORS_PREFLIGHT_MAX_AGE = 600

# --- Conversation ------------------------------------------------------------------------------
SYSTEM_PROMPT = env.str("SYSTEM_PROMPT", default="")
# History sent upstream: at most this many stored messages, and about this many tokens.
CONTEXT_MAX_MESSAGES = env.int("CONTEXT_MAX_MESSAGES", default=200)
CONTEXT_MAX_TOKENS = env.int("CONTEXT_MAX_TOKENS", default=32_000)

# --- Logging -----------------------------------------------------------------------------------
# json: one JSON object per line (for log shippers); plain: for people at a terminal.
LOG_FORMAT = env.str("LOG_FORMAT", default="plain" if DEBUG else "json").lower()
LOGGING = logging_config(
    log_format=LOG_FORMAT,
    level=LOG_LEVEL,
    secrets=[INTERNAL_API_KEY, SECRET_KEY, LLM_API_KEY, LLM_PROXY_KEY],
)

# --- Serving (``manage.py serve``, the container's entry point) --------------------------------
HOST = env.str("HOST", default="127.0.0.1")
PORT = env.int("PORT", default=8001)
# uvicorn worker processes; WEB_CONCURRENCY is the common name hosting platforms set.
WORKERS = env.int("WORKERS", default=int(os.environ.get("WEB_CONCURRENCY") or 1))
# The proxies whose X-Forwarded-For / X-Forwarded-Proto uvicorn believes (comma-separated
# addresses or networks, "*" for any): the client address (REMOTE_ADDR) of a request from one of
# them is the one it names. The admin's login throttling counts failures per that address.
FORWARDED_ALLOW_IPS = env.str("FORWARDED_ALLOW_IPS", default="127.0.0.1,::1")
