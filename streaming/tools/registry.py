"""The tool registry: each tool is a Pydantic arguments model, a description and an executor.

A server-side tool is an async function taking its validated arguments model; a client-side
tool has no function here, the IDE runs it and posts the result back. The OpenAI ``tools``
schema is generated from the arguments model (or, for tools described by a JSON schema such as
MCP tools, from a ``SchemaArguments``). A server-side tool may ask for the user's approval
before its calls run (``approval``; ``streaming.tools.approval`` decides). Active tools are
dotted paths in ``settings.TOOLS``, plus the tools of the MCP servers in
``settings.MCP_SERVERS`` (``streaming.tools.mcp``), which come and go at run time; the registry
class itself is ``settings.TOOL_REGISTRY``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal, Protocol

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string
from pydantic import BaseModel, ConfigDict

logger = logging.getLogger(__name__)

ToolFunction = Callable[[Any], Awaitable[Any]]
#: Whether a call needs the user's approval: always, never, or a predicate over its validated
#: arguments model.
Approval = Literal["always", "never"] | Callable[[Any], bool]


class ArgumentsSchema(Protocol):
    """What a tool's ``arguments`` must do: a Pydantic model class, or a ``SchemaArguments``."""

    def model_json_schema(self) -> dict[str, Any]: ...

    def model_validate_json(self, raw: str) -> Any: ...


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    arguments: type[BaseModel] | ArgumentsSchema
    #: Who runs it: the runtime ("server") or the IDE ("client"), as in the ``tool_call`` event.
    executor: Literal["server", "client"]
    function: ToolFunction | None = None
    #: Seconds a server-side call may take; ``None`` means ``settings.TOOL_TIMEOUT_SECONDS``.
    timeout: float | None = None
    approval: Approval = "never"
    #: Where a server-side tool comes from, when not compiled in: ``mcp:<server>``.
    source: str = ""

    @property
    def executor_label(self) -> str:
        """``server``, ``client`` or ``mcp:<server>``: the executor GET /agent/tools shows."""
        return self.source or self.executor

    #: The arguments' JSON Schema as a client declared it (``declared_client_tool``); None:
    #: generated from ``arguments``.
    parameters: dict[str, Any] | None = None

    def openai_schema(self) -> dict[str, Any]:
        if self.parameters is not None:
            parameters = self.parameters
        else:
            parameters = self.arguments.model_json_schema()
            parameters.pop("title", None)
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": parameters,
            },
        }


def server_tool(
    *,
    name: str,
    description: str,
    arguments: type[BaseModel],
    timeout: float | None = None,
    approval: Approval = "never",
) -> Callable[[ToolFunction], Tool]:
    """Declare an async function as a server-side tool."""

    def wrap(function: ToolFunction) -> Tool:
        return Tool(name, description, arguments, "server", function, timeout, approval)

    return wrap


def client_tool(*, name: str, description: str, arguments: type[BaseModel]) -> Tool:
    """Declare a tool that the IDE executes and reports back with a ``tool_result``."""
    return Tool(name, description, arguments, "client")


class DeclaredArguments(BaseModel):
    """The arguments of a tool a client declared: any JSON object (the client checks them)."""

    model_config = ConfigDict(extra="allow")


def declared_client_tool(*, name: str, description: str, parameters: dict[str, Any] | None) -> Tool:
    """A client-side tool that a frontend declared for one turn, with its own JSON Schema."""
    schema = parameters if parameters else {"type": "object", "properties": {}}
    return Tool(name, description, DeclaredArguments, "client", parameters=schema)


class ToolSource(Protocol):
    """Tools found at run time (an MCP server's), next to the registered ones.

    ``revision`` changes whenever ``tools()`` does; ``ready()`` waits for the first discovery
    and never raises; ``aclose()`` stops whatever the source runs.
    """

    revision: int

    def tools(self) -> Iterable[Tool]: ...

    async def ready(self) -> None: ...

    async def aclose(self) -> None: ...


class ToolRegistry:
    """Tools by name, and their OpenAI schemas (computed again only when a source changes)."""

    def __init__(self, tools: Iterable[Tool] = (), *, sources: Iterable[ToolSource] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        self.sources = list(sources)
        self._found: dict[str, Tool] = {}
        self._found_revision: tuple[int, ...] | None = None
        self._schemas: list[dict[str, Any]] = []
        for tool in tools:
            self.register(tool)

    def register(self, tool: Tool) -> None:
        if tool.name in self._tools:
            raise ImproperlyConfigured(f"Two tools are named {tool.name!r}.")
        if tool.executor == "server" and tool.function is None:
            raise ImproperlyConfigured(f"Server-side tool {tool.name!r} has no function.")
        if tool.executor == "client" and tool.approval != "never":
            raise ImproperlyConfigured(
                f"Client-side tool {tool.name!r} declares an approval: the client runs it and "
                "asks its user itself; approval is for server-side tools."
            )
        self._tools[tool.name] = tool
        self.__dict__.pop("_static_schemas", None)
        self._found_revision = None

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name) or self._source_tools().get(name)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter([*self._tools.values(), *self._source_tools().values()])

    @property
    def openai_schemas(self) -> list[dict[str, Any]]:
        if not self.sources:
            return self._static_schemas
        self._source_tools()
        return self._schemas

    @cached_property
    def _static_schemas(self) -> list[dict[str, Any]]:
        return [tool.openai_schema() for tool in self._tools.values()]

    def _source_tools(self) -> dict[str, Tool]:
        """The sources' tools by name, collected again when a source's revision changed."""
        if not self.sources:
            return self._found
        revision = tuple(source.revision for source in self.sources)
        if revision != self._found_revision:
            found: dict[str, Tool] = {}
            for source in self.sources:
                for tool in source.tools():
                    if tool.name in self._tools or tool.name in found:
                        logger.warning("tool %r is already registered; ignoring another", tool.name)
                        continue
                    found[tool.name] = tool
            self._found, self._found_revision = found, revision
            self._schemas = self._static_schemas + [t.openai_schema() for t in found.values()]
        return self._found

    async def ready(self) -> None:
        """Wait until every source has tried to discover its tools once (never raises)."""
        if self.sources:
            await asyncio.gather(*(source.ready() for source in self.sources))

    async def aclose(self) -> None:
        for source in self.sources:
            await source.aclose()

    def with_tools(self, tools: Iterable[Tool]) -> ToolRegistry:
        """This registry plus ``tools`` (one turn's declared tools); a configured tool keeps
        its name: a declared tool of the same name is left out, as is a repeated one."""
        extra: dict[str, Tool] = {}
        for tool in tools:
            if self.get(tool.name) is None:
                extra.setdefault(tool.name, tool)
        if not extra:
            return self
        return _ExtendedRegistry(self, list(extra.values()))


class _ExtendedRegistry(ToolRegistry):
    """A registry and a few more tools, sharing the registry's computed schemas."""

    def __init__(self, base: ToolRegistry, extra: list[Tool]) -> None:
        super().__init__(extra)
        self.base = base

    def get(self, name: str) -> Tool | None:
        return self.base.get(name) or self._tools.get(name)

    async def ready(self) -> None:
        await self.base.ready()

    def __iter__(self):  # type: ignore[no-untyped-def]
        yield from self.base
        yield from self._tools.values()

    @cached_property
    def openai_schemas(self) -> list[dict[str, Any]]:
        return [*self.base.openai_schemas, *(t.openai_schema() for t in self._tools.values())]


class SettingsToolRegistry(ToolRegistry):
    """The tools named by dotted paths in ``settings.TOOLS``, and those of the MCP servers
    configured by ``settings.MCP_SERVERS``."""

    def __init__(self) -> None:
        tools = []
        for path in settings.TOOLS:
            try:
                tool = import_string(path)
            except ImportError as exc:
                raise ImproperlyConfigured(
                    f"AGENT_RUNTIME__TOOLS: cannot import {path!r}: {exc}"
                ) from exc
            if not isinstance(tool, Tool):
                raise ImproperlyConfigured(f"AGENT_RUNTIME__TOOLS: {path!r} is not a Tool.")
            tools.append(tool)
        sources = []
        if settings.MCP_SERVERS.strip():
            from streaming.tools.mcp import MCPToolSource

            sources.append(MCPToolSource.from_settings())
        super().__init__(tools, sources=sources)


_registry: ToolRegistry | None = None


def get_tool_registry() -> ToolRegistry:
    """The process's registry, built from ``settings.TOOL_REGISTRY`` on first use."""
    global _registry
    if _registry is None:
        _registry = import_string(settings.TOOL_REGISTRY)()
    return _registry


def reset_tool_registry() -> None:
    global _registry
    _registry = None


async def tool_registry_close() -> None:
    """Stop what the process's registry runs (MCP sessions and their processes); on shutdown."""
    global _registry
    registry, _registry = _registry, None
    if registry is not None:
        await registry.aclose()
