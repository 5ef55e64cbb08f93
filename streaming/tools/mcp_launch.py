"""Start a stdio MCP server with only the environment its configuration gives it, plus PATH.

The SDK's stdio transport adds a few of the runtime's own variables (HOME, USER, SHELL...) to
the environment a server gets; the runtime starts this script instead (``python -I``, so that
nothing from the runtime's environment changes how it runs), with the names of the variables
to keep, and it replaces itself with the server: same process, same pid, nothing else kept.
On Linux the server also gets SIGTERM when the worker that started it dies, even if it was
killed without a chance to close its sessions.

    python -I mcp_launch.py NAME,NAME,... COMMAND [ARG ...]
"""

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>; kept across exec


def die_with_parent() -> None:
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the worker died before the signal was armed
        sys.exit(1)


def main() -> None:
    names, *command = sys.argv[1:]
    kept = {name: os.environ[name] for name in names.split(",") if name in os.environ}
    die_with_parent()
    os.execvpe(command[0], command, kept)


if __name__ == "__main__":
    main()
