"""The runtime's own settings: the upstream model, turns, runs, tools and upstream faults.

``agent_runtime.settings`` takes them all; they are read from the same ``AGENT_RUNTIME__``
environment (``agent_runtime.env``).
"""

from django.core.exceptions import ImproperlyConfigured

from agent_runtime.env import env

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
# The upstream client's transport under the httpx API: "aiohttp" (httpx-aiohttp; about half the
# CPU of httpx's own, docs/benchmarks.md) or "httpx" (httpx's own: HTTP/2, SOCKS proxies).
LLM_HTTP_TRANSPORT = env.str("LLM_HTTP_TRANSPORT", default="aiohttp")
if LLM_HTTP_TRANSPORT not in ("aiohttp", "httpx"):
    raise ImproperlyConfigured(
        f"AGENT_RUNTIME__LLM_HTTP_TRANSPORT must be aiohttp or httpx, not {LLM_HTTP_TRANSPORT!r}"
    )
# Ask for a usage chunk at the end of the stream (OpenAI, vLLM, LiteLLM, llama.cpp accept it).
LLM_INCLUDE_USAGE = env.bool("LLM_INCLUDE_USAGE", default=True)
LLM_TEMPERATURE = env.float("LLM_TEMPERATURE", default=None)
LLM_MAX_TOKENS = env.int("LLM_MAX_TOKENS", default=None)

# --- Turns -------------------------------------------------------------------------------------
# A running turn holds a lease on its session, renewed while it runs; a crashed worker's lease
# lapses after this many seconds.
TURN_LEASE_SECONDS = env.float("TURN_LEASE_SECONDS", default=30.0)
# How often a worker looks for cancel requests aimed at its turns (one query per worker).
CANCEL_POLL_SECONDS = env.float("CANCEL_POLL_SECONDS", default=0.2)

# --- Runs: turns that outlive their connection, and their event logs -------------------------
# What a client's leaving does to the turn it started: cancel (stored as interrupted) or continue
# (the turn runs to its end; the cancel route stops it). A request may choose for itself.
ON_DISCONNECT = env.str("ON_DISCONNECT", default="cancel")
if ON_DISCONNECT not in ("cancel", "continue"):
    raise ImproperlyConfigured(
        f"AGENT_RUNTIME__ON_DISCONNECT must be cancel or continue, not {ON_DISCONNECT!r}"
    )
# How long a turn's events can still be replayed after it ends.
RUN_EVENTS_TTL_SECONDS = env.float("RUN_EVENTS_TTL_SECONDS", default=600.0)
# In-process broker: the most bytes of ended turns' logs a worker keeps for the TTL above (the
# oldest are forgotten first; resuming one then answers 204).
RUN_EVENTS_KEEP_MAX_BYTES = env.int("RUN_EVENTS_KEEP_MAX_BYTES", default=16 * 1024 * 1024)
# A reader of a turn that does not wait for it (under on_disconnect=continue, or a resumed
# reader) is dropped when it falls this many more events behind; it may resume from its last id.
RUN_READER_MAX_LAG_EVENTS = env.int("RUN_READER_MAX_LAG_EVENTS", default=10_000)
# A client that accepts no byte of its stream for this long is disconnected.
STREAM_IDLE_WRITE_TIMEOUT_SECONDS = env.float("STREAM_IDLE_WRITE_TIMEOUT_SECONDS", default=30.0)
# What one connection may hold of a reply its client has not taken, in bytes: the kernel's send
# buffer (SO_SNDBUF; Linux doubles it) and the server's write buffer. Past it the stream waits
# for its client, and so does its turn. 0: the defaults (the kernel's grows to 4 MB).
STREAM_SEND_BUFFER_BYTES = env.int("STREAM_SEND_BUFFER_BYTES", default=8 * 1024)
# Redis for the event broker, e.g. redis://127.0.0.1:6379/0; needed for several workers or hosts.
REDIS_URL = env.str("REDIS_URL", default="")
# The event broker (dotted path): in-process unless REDIS_URL is set.
RUN_BROKER = env.str(
    "RUN_BROKER",
    default="streaming.runs.redis.RedisBroker"
    if REDIS_URL
    else "streaming.runs.broker.InProcessBroker",
)
# Redis only: the events of a turn that a reader on another worker asked for are written this
# soon after they happen, several turns' events in one round trip.
RUN_EVENTS_FLUSH_SECONDS = env.float("RUN_EVENTS_FLUSH_SECONDS", default=0.002)
# Redis only: the events of a turn that no reader elsewhere asked for, this soon.
RUN_EVENTS_UNFOLLOWED_FLUSH_SECONDS = env.float("RUN_EVENTS_UNFOLLOWED_FLUSH_SECONDS", default=0.05)
# Redis only: the most entries a turn's stream keeps (each holds the events of one flush).
RUN_EVENTS_MAX_ENTRIES = env.int("RUN_EVENTS_MAX_ENTRIES", default=100_000)

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
# Tool calls one model call may make; the calls past it get an error event, do not run and
# are not stored.
TOOL_MAX_CALLS_PER_STEP = env.int("TOOL_MAX_CALLS_PER_STEP", default=32)
# MCP servers whose tools are offered as <server>__<tool>: the path of a JSON file, or the JSON
# itself, in the "mcpServers" shape of Claude Desktop, Cursor and VS Code (docs/api.md).
MCP_SERVERS = env.str("MCP_SERVERS", default="")
# Longest an MCP server may take to start and list its tools.
MCP_CONNECT_TIMEOUT_SECONDS = env.float("MCP_CONNECT_TIMEOUT_SECONDS", default=30.0)
# Server-side tools whose every call waits for the user's approval, on top of those whose
# declaration asks for it: names or shell-style globs (fnmatch, case-sensitive), comma-separated.
TOOLS_REQUIRING_APPROVAL = env.list("TOOLS_REQUIRING_APPROVAL", default=[])

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
