"""The tool registry: each tool is a Pydantic arguments model, a description and an executor.

A server-side tool is an async function taking its validated arguments model; a client-side
tool has no function here, the IDE runs it and posts the result back. The OpenAI ``tools``
schema is generated from the arguments model. Active tools are dotted paths in
``settings.TOOLS``; the registry class itself is ``settings.TOOL_REGISTRY``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string
from pydantic import BaseModel, ConfigDict

ToolFunction = Callable[[Any], Awaitable[Any]]


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    arguments: type[BaseModel]
    executor: Literal["server", "client"]
    function: ToolFunction | None = None
    #: Seconds a server-side call may take; ``None`` means ``settings.TOOL_TIMEOUT_SECONDS``.
    timeout: float | None = None
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
    *, name: str, description: str, arguments: type[BaseModel], timeout: float | None = None
) -> Callable[[ToolFunction], Tool]:
    """Declare an async function as a server-side tool."""

    def wrap(function: ToolFunction) -> Tool:
        return Tool(name, description, arguments, "server", function, timeout)

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


class ToolRegistry:
    """Tools by name, and their OpenAI schemas (computed once)."""

    def __init__(self, tools: Iterable[Tool] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        for tool in tools:
            self.register(tool)

    def register(self, tool: Tool) -> None:
        if tool.name in self._tools:
            raise ImproperlyConfigured(f"Two tools are named {tool.name!r}.")
        if tool.executor == "server" and tool.function is None:
            raise ImproperlyConfigured(f"Server-side tool {tool.name!r} has no function.")
        self._tools[tool.name] = tool
        self.__dict__.pop("openai_schemas", None)

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._tools.values())

    @cached_property
    def openai_schemas(self) -> list[dict[str, Any]]:
        return [tool.openai_schema() for tool in self._tools.values()]

    def with_tools(self, tools: Iterable[Tool]) -> ToolRegistry:
        """This registry plus ``tools`` (one turn's declared tools); a configured tool keeps
        its name: a declared tool of the same name is left out, as is a repeated one."""
        extra: dict[str, Tool] = {}
        for tool in tools:
            if tool.name not in self._tools:
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

    def __iter__(self):  # type: ignore[no-untyped-def]
        yield from self.base
        yield from self._tools.values()

    @cached_property
    def openai_schemas(self) -> list[dict[str, Any]]:
        return [*self.base.openai_schemas, *(t.openai_schema() for t in self._tools.values())]


class SettingsToolRegistry(ToolRegistry):
    """The registry of the tools named by dotted paths in ``settings.TOOLS``."""

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
        super().__init__(tools)


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
