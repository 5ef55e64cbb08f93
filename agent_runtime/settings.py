"""Settings: every value comes from one django-environ ``env`` with the ``AGENT_RUNTIME__`` prefix.

Each setting is declared once with a safe default; production differs only by environment
variables (or a ``.env`` file beside ``manage.py``).
"""

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.FileAwareEnv()
env.prefix = "AGENT_RUNTIME__"
# A .env file is read if present; real environment variables win over it.
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

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
    "django.contrib.staticfiles",
    "servestatic",
    "agent_runtime.apps.AgentRuntimeConfig",
    "sessions.apps.AgentSessionsConfig",
    "streaming.apps.StreamingConfig",
]

# Every middleware here is async-capable: a sync one would add a thread hop per request.
MIDDLEWARE = [
    "agent_runtime.middleware.ErrorJsonMiddleware",
    "agent_runtime.middleware.InternalAuthMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "servestatic.middleware.ServeStaticMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
# The admin needs a session; signed cookies avoid installing django.contrib.sessions, whose
# app label would collide with ours.
SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
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
# Under ASGI connections are per thread: never keep them across requests.
DATABASES["default"]["CONN_MAX_AGE"] = 0
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
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Static, i18n ------------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# The admin's static files are served by ServeStatic's async middleware under uvicorn, straight
# from the installed apps (no collectstatic step); a reverse proxy may serve /static/ instead.
SERVESTATIC_USE_FINDERS = True
USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en-us"

# --- Request limits ----------------------------------------------------------------------------
MAX_MESSAGE_CHARS = env.int("MAX_MESSAGE_CHARS", default=100_000)
# Bodies above this are refused with 413 before they are parsed (4 bytes a char, plus room).
MAX_BODY_BYTES = env.int("MAX_BODY_BYTES", default=MAX_MESSAGE_CHARS * 4 + 64 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_BODY_BYTES

# --- Authentication ----------------------------------------------------------------------------
INTERNAL_API_KEY = env.str("INTERNAL_API_KEY", default="")
# Paths served without the internal key (the admin has its own login).
PUBLIC_PATH_PREFIXES = ("/health", "/admin/", "/openapi.json", "/static/")

# --- Upstream LLM ------------------------------------------------------------------------------
LLM_PROXY_URL = env.str("LLM_PROXY_URL", default="http://127.0.0.1:8002")
LLM_MODEL = env.str("LLM_MODEL", default="dev-llm")
LLM_API_KEY = env.str("LLM_API_KEY", default="")
LLM_PROXY_KEY = env.str("LLM_PROXY_KEY", default="")
LLM_CLIENT = env.str("LLM_CLIENT", default="streaming.llm_client.OpenAIChatClient")
LLM_CONNECT_TIMEOUT = env.float("LLM_CONNECT_TIMEOUT", default=5.0)
# Longest silence between two upstream chunks before the turn fails as stalled.
LLM_READ_TIMEOUT = env.float("LLM_READ_TIMEOUT", default=60.0)
# Longest a whole upstream call may take, first byte to last.
LLM_TOTAL_TIMEOUT = env.float("LLM_TOTAL_TIMEOUT", default=600.0)
LLM_MAX_CONNECTIONS = env.int("LLM_MAX_CONNECTIONS", default=1000)
# Ask for a usage chunk at the end of the stream (OpenAI, vLLM, LiteLLM, llama.cpp accept it).
LLM_INCLUDE_USAGE = env.bool("LLM_INCLUDE_USAGE", default=True)
LLM_TEMPERATURE = env.float("LLM_TEMPERATURE", default=None)
LLM_MAX_TOKENS = env.int("LLM_MAX_TOKENS", default=None)

# --- Conversation ------------------------------------------------------------------------------
SYSTEM_PROMPT = env.str("SYSTEM_PROMPT", default="")
# History sent upstream: at most this many stored messages, and about this many tokens.
CONTEXT_MAX_MESSAGES = env.int("CONTEXT_MAX_MESSAGES", default=200)
CONTEXT_MAX_TOKENS = env.int("CONTEXT_MAX_TOKENS", default=32_000)

# --- Logging -----------------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django": {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False},
        # httpx logs every upstream request at INFO; that is noise at our request rate.
        "httpx": {"level": "WARNING"},
    },
}

# --- Turns -------------------------------------------------------------------------------------
# A running turn holds a lease on its session, renewed while it runs; a crashed worker's lease
# lapses after this many seconds.
TURN_LEASE_SECONDS = env.float("TURN_LEASE_SECONDS", default=30.0)
# How often a worker looks for cancel requests aimed at its turns (one query per worker).
CANCEL_POLL_SECONDS = env.float("CANCEL_POLL_SECONDS", default=0.2)

# --- Tools -------------------------------------------------------------------------------------
# Dotted paths of the active tools (streaming.tools.registry.Tool objects), comma-separated.
TOOLS = env.list(
    "TOOLS",
    default=[
        "streaming.tools.builtin.echo",
        "streaming.tools.builtin.calculator",
        "streaming.tools.builtin.read_file",
    ],
)
TOOL_REGISTRY = env.str("TOOL_REGISTRY", default="streaming.tools.registry.SettingsToolRegistry")
# Longest a server-side tool call may run.
TOOL_TIMEOUT_SECONDS = env.float("TOOL_TIMEOUT_SECONDS", default=30.0)
# Model calls one turn may make before a runaway tool loop is stopped.
TOOL_MAX_STEPS = env.int("TOOL_MAX_STEPS", default=8)

# --- Upstream faults, heartbeats, busy sessions ------------------------------------------------
# Attempts at a model call that fails before its first token (refused, 429, 5xx...).
LLM_RETRY_ATTEMPTS = env.int("LLM_RETRY_ATTEMPTS", default=3)
# First backoff; doubles per attempt up to the maximum; jittered; Retry-After is honoured.
LLM_RETRY_BACKOFF_SECONDS = env.float("LLM_RETRY_BACKOFF_SECONDS", default=0.5)
LLM_RETRY_MAX_BACKOFF_SECONDS = env.float("LLM_RETRY_MAX_BACKOFF_SECONDS", default=8.0)
# Give up retrying when the next wait would pass this many seconds since the first attempt.
LLM_RETRY_TOTAL_SECONDS = env.float("LLM_RETRY_TOTAL_SECONDS", default=30.0)
# A ": ping" comment goes out after this many seconds without any event.
HEARTBEAT_SECONDS = env.float("HEARTBEAT_SECONDS", default=15.0)
# A message for a session whose turn is running: reject (409), enqueue (wait), or interrupt
# (cancel the running turn, then run).
SESSION_BUSY_STRATEGY = env.str("SESSION_BUSY_STRATEGY", default="reject")
# How long enqueue and interrupt wait for the running turn to end before answering 409.
SESSION_BUSY_WAIT_SECONDS = env.float("SESSION_BUSY_WAIT_SECONDS", default=30.0)
