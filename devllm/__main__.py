"""Run the development LLM: ``python -m devllm --port 8002 [--token-delay-ms 10] [--tokens N]``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket

import uvicorn

from devllm.app import DevLLMApp, DevLLMConfig


class Listener:
    """Owns the listening socket so the ``refuse`` fault can really refuse connections."""

    def __init__(self, server: uvicorn.Server, host: str, port: int) -> None:
        self.server, self.host, self.port = server, host, port

    async def refuse(self, seconds: float) -> None:
        for listening in self.server.servers:
            listening.close()
        await asyncio.sleep(seconds)
        server, config = self.server, self.server.config

        def protocol() -> asyncio.Protocol:
            # The protocol uvicorn's start-up serves its sockets with, from public attributes.
            return config.http_protocol_class(
                config=config, server_state=server.server_state, app_state=server.lifespan.state
            )

        loop = asyncio.get_running_loop()
        server.servers = [
            await loop.create_server(protocol, sock=bind_socket(self.host, self.port))
        ]


def bind_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    env = os.environ.get
    parser.add_argument("--host", default=env("DEVLLM_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(env("DEVLLM_PORT", "8002")))
    parser.add_argument(
        "--token-delay-ms", type=float, default=float(env("DEVLLM_TOKEN_DELAY_MS", "30"))
    )
    parser.add_argument("--tokens", type=int, default=int(env("DEVLLM_TOKENS", "0")) or None)
    parser.add_argument("--model", default=env("DEVLLM_MODEL", "dev-llm"))
    parser.add_argument("--log-level", default=env("DEVLLM_LOG_LEVEL", "warning"))
    args = parser.parse_args()

    app = DevLLMApp(
        DevLLMConfig(model=args.model, token_delay_ms=args.token_delay_ms, tokens=args.tokens)
    )
    config = uvicorn.Config(
        app, loop="auto", http="auto", log_level=args.log_level, access_log=False, lifespan="on"
    )
    server = uvicorn.Server(config)
    app.listener = Listener(server, args.host, args.port)
    print(
        f"development LLM (a stand-in, not a model) on http://{args.host}:{args.port}/v1",
        flush=True,
    )
    # uvicorn shuts down gracefully on SIGINT, then re-raises it: no traceback for that.
    with contextlib.suppress(KeyboardInterrupt):
        server.run(sockets=[bind_socket(args.host, args.port)])


if __name__ == "__main__":
    main()
