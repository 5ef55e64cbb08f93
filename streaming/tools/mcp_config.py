"""The operator's MCP server configuration (``AGENT_RUNTIME__MCP_SERVERS``).

The value is inline JSON or the path of a JSON file, in the ``mcpServers`` shape that Claude
Desktop, Cursor and VS Code use (VS Code's ``servers`` key is read too). ``command`` means a
stdio server, ``url`` a Streamable HTTP one. It is only ever read from the environment, never
from a request.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal

from django.core.exceptions import ImproperlyConfigured
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, model_validator

SETTING = "AGENT_RUNTIME__MCP_SERVERS"
#: A server name becomes the prefix of its tools' names (``<server>__<tool>``), which the
#: OpenAI tool format limits to letters, digits, ``_`` and ``-``.
SERVER_NAME = re.compile(r"^[A-Za-z0-9-]+(?:_[A-Za-z0-9-]+)*$")


class MCPServerConfig(BaseModel):
    """One server: ``command`` (stdio) or ``url`` (Streamable HTTP), and the runtime's options."""

    # Other clients' keys (e.g. "disabled", "envFile") are ignored, not refused.
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    command: str | None = None
    args: list[str] = Field(default_factory=list)
    #: The whole environment of a stdio server, with the runtime's PATH (unless set here).
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None
    url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    #: VS Code's transport hint; checked against command/url when given.
    type: Literal["stdio", "http", "streamable-http"] | None = None
    #: Only these of the server's tools are offered (by the server's own tool names).
    allowed_tools: list[str] | None = Field(
        default=None, validation_alias=AliasChoices("allowed_tools", "allowedTools")
    )
    #: Seconds one call may take (default: AGENT_RUNTIME__TOOL_TIMEOUT_SECONDS).
    timeout: float | None = Field(default=None, gt=0)
    #: Whether the server's tools need the user's approval. Stored and shown by
    #: GET /agent/tools; it takes effect when tool approvals land.
    requires_approval: bool = Field(
        default=False, validation_alias=AliasChoices("requires_approval", "requiresApproval")
    )

    @model_validator(mode="before")
    @classmethod
    def _approval_word(cls, data: Any) -> Any:
        """``"approval": "required" | "never"`` is accepted for ``requires_approval``."""
        if isinstance(data, dict) and "approval" in data and "requires_approval" not in data:
            word = data["approval"]
            if word not in ("required", "never", True, False):
                raise ValueError('"approval" must be "required" or "never"')
            data = {**data, "requires_approval": word in ("required", True)}
        return data

    @model_validator(mode="after")
    def _one_transport(self) -> MCPServerConfig:
        if (self.command is None) == (self.url is None):
            raise ValueError('give either "command" (a stdio server) or "url" (Streamable HTTP)')
        if self.url is not None and not self.url.startswith(("http://", "https://")):
            raise ValueError('"url" must be an http(s) URL')
        if self.type is not None and (self.type == "stdio") != (self.command is not None):
            raise ValueError(f'"type" is {self.type!r} but the server has no matching field')
        return self

    @property
    def transport(self) -> Literal["stdio", "http"]:
        return "stdio" if self.command is not None else "http"


class MCPServersFile(BaseModel):
    model_config = ConfigDict(extra="ignore")

    mcpServers: dict[str, MCPServerConfig] = Field(default_factory=dict)
    servers: dict[str, MCPServerConfig] = Field(default_factory=dict)


def mcp_servers_parse(value: str) -> dict[str, MCPServerConfig]:
    """The servers that ``value`` (inline JSON or a file path) configures, by name.

    Raises ImproperlyConfigured with what to fix: unreadable file, invalid JSON, an entry with
    neither command nor url, a name that cannot prefix tool names.
    """
    text = value.strip()
    if not text:
        return {}
    if not text.startswith("{"):
        path = Path(text).expanduser()
        try:
            text = path.read_text()
        except OSError as exc:
            raise ImproperlyConfigured(
                f"{SETTING}: cannot read the file {str(path)!r} ({exc.strerror}); give the path "
                "of a JSON file, or the JSON itself."
            ) from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ImproperlyConfigured(
            f"{SETTING}: invalid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); "
            'expected {"mcpServers": {"<name>": {"command": ...} or {"url": ...}}}.'
        ) from exc
    try:
        parsed = MCPServersFile.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'top level'}: {e['msg']}"
            for e in exc.errors(include_url=False)
        )
        raise ImproperlyConfigured(f"{SETTING}: {problems}.") from exc
    servers = {**parsed.servers, **parsed.mcpServers}
    if not servers and not ({"mcpServers", "servers"} & set(data)):
        raise ImproperlyConfigured(f'{SETTING}: no "mcpServers" object in the JSON.')
    for name in servers:
        if not SERVER_NAME.match(name) or len(name) > 40:
            raise ImproperlyConfigured(
                f"{SETTING}: server name {name!r} must be 1-40 letters, digits, '-' or single "
                "'_' (it prefixes the tool names as <server>__<tool>)."
            )
    return servers
