"""The tool registry: each tool is a Pydantic arguments model, a description and an executor.

A server-side tool is an async function taking its validated arguments model; a client-side
tool has no function here, the IDE runs it and posts the result back. The OpenAI ``tools``
schema is generated from the arguments model. A server-side tool may ask for the user's
approval before its calls run (``approval``; ``streaming.tools.approval`` decides). Active
tools are dotted paths in ``settings.TOOLS``; the registry class is ``settings.TOOL_REGISTRY``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string
from pydantic import BaseModel

ToolFunction = Callable[[Any], Awaitable[Any]]
#: Whether a call needs the user's approval: always, never, or a predicate over its validated
#: arguments model.
Approval = Literal["always", "never"] | Callable[[Any], bool]


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    arguments: type[BaseModel]
    executor: Literal["server", "client"]
    function: ToolFunction | None = None
    #: Seconds a server-side call may take; ``None`` means ``settings.TOOL_TIMEOUT_SECONDS``.
    timeout: float | None = None
    approval: Approval = "never"

    def openai_schema(self) -> dict[str, Any]:
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
        if tool.executor == "client" and tool.approval != "never":
            raise ImproperlyConfigured(
                f"Client-side tool {tool.name!r} declares an approval: the client runs it and "
                "asks its user itself; approval is for server-side tools."
            )
        self._tools[tool.name] = tool
        self.__dict__.pop("openai_schemas", None)

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._tools.values())

    @cached_property
    def openai_schemas(self) -> list[dict[str, Any]]:
        return [tool.openai_schema() for tool in self._tools.values()]


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
