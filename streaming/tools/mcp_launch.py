"""Start a stdio MCP server with only the environment its configuration gives it, plus PATH.

The SDK's stdio transport adds a few of the runtime's own variables (HOME, USER, SHELL...) to
the environment a server gets; the runtime starts this script instead (``python -I``, so that
nothing from the runtime's environment changes how it runs), with the names of the variables
to keep, and it replaces itself with the server: same process, same pid, nothing else kept.

    python -I mcp_launch.py NAME,NAME,... COMMAND [ARG ...]
"""

import os
import sys


def main() -> None:
    names, *command = sys.argv[1:]
    kept = {name: os.environ[name] for name in names.split(",") if name in os.environ}
    os.execvpe(command[0], command, kept)


if __name__ == "__main__":
    main()
