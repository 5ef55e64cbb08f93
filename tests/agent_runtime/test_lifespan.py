from typing import Any

from agent_runtime.lifespan import Lifespan
from streaming import llm_client


async def test_shutdown_closes_the_upstream_client() -> None:
    client = llm_client.get_llm_client()
    messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return next(messages)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("lifespan must not reach Django")

    await Lifespan(app)({"type": "lifespan"}, receive, send)
    assert sent == [{"type": "lifespan.startup.complete"}, {"type": "lifespan.shutdown.complete"}]
    assert client.http.is_closed
    assert llm_client.get_llm_client() is not client  # a fresh one on next use
    await llm_client.reset_llm_client()


async def test_http_passes_through() -> None:
    seen = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["type"])

    await Lifespan(app)({"type": "http"}, None, None)
    assert seen == ["http"]
