"""Which tool calls wait for the user's approval before they run.

The server decides, when the model's call is whole, from the tool's declaration
(``Tool.approval``) and ``settings.TOOLS_REQUIRING_APPROVAL`` (tool names or shell-style globs,
which can only add approval); nothing a client sends changes it. Only a valid server-side call
can wait: a client-side call is the client's to run (and to ask its user about), and a call
that cannot run is answered with its error at once.
"""

from __future__ import annotations

import logging
from fnmatch import fnmatchcase

from django.conf import settings

from streaming.tool_calls import ToolCall
from streaming.tools.registry import Tool

logger = logging.getLogger(__name__)


def tool_asks_approval(tool: Tool) -> bool:
    """Whether some calls of this tool wait for approval (always, or by its predicate)."""
    if tool.executor != "server":
        return False
    if any(fnmatchcase(tool.name, pattern) for pattern in settings.TOOLS_REQUIRING_APPROVAL):
        return True
    return tool.approval != "never"


def approval_required(call: ToolCall) -> bool:
    tool = call.tool
    if tool is None or call.problem is not None or tool.executor != "server":
        return False
    if any(fnmatchcase(call.name, pattern) for pattern in settings.TOOLS_REQUIRING_APPROVAL):
        return True
    if tool.approval == "always" or tool.approval == "never":
        return tool.approval == "always"
    try:
        return bool(tool.approval(call.arguments))
    except Exception:  # a broken predicate must not let the call run unasked
        logger.exception("tool %s: the approval predicate failed; asking the user", call.name)
        return True
