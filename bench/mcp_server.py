"""The MCP server of the MCP benchmark: one ``echo`` tool, over stdio or Streamable HTTP."""

import argparse

from mcp.server import MCPServer

server = MCPServer("bench", log_level="WARNING")


@server.tool(description="Return the given text unchanged.")
def echo(text: str) -> str:
    return text


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, help="serve Streamable HTTP here (default: stdio)")
    args = parser.parse_args()
    if args.port:
        server.run("streamable-http", host="127.0.0.1", port=args.port)
    else:
        server.run("stdio")
