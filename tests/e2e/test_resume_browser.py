"""A real browser follows a turn with ``EventSource`` (Playwright driving Debian's Chromium).

A browser's ``EventSource`` cannot send ``X-Internal-Auth``, so the page is served by a small
gateway in the test that adds the key, as the service's own gateway would. The gateway cuts
the first stream after a few events: the browser reconnects by itself with ``Last-Event-ID``.
Then the page is reloaded mid-turn; it shows the whole answer, once.

Needs Debian's ``chromium`` (``apt-get install -y chromium``; ``.ci/run`` installs it).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_admin_browser import CHROMIUM, CHROMIUM_ARGS
from tests.e2e.test_resume import final_answer, sid, wait_until_running
from tests.servers import DevLLM, Runtime

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

PAGE = """<!doctype html>
<title>resume</title>
<pre id="answer"></pre><p id="state">open</p>
<script>
const answer = document.getElementById("answer");
const state = document.getElementById("state");
const source = new EventSource("/agent/sessions/SESSION/stream");
source.onmessage = (event) => {
  if (event.data === "[DONE]") { source.close(); state.textContent = "done"; return; }
  answer.textContent += JSON.parse(event.data).token;
};
</script>
"""


class Gateway(ThreadingHTTPServer):
    """Serves the page; forwards every other GET to the runtime with the key added."""

    daemon_threads = True

    def __init__(self, runtime: Runtime, session_id: str, cut_after: int) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.runtime = runtime
        self.page = PAGE.replace("SESSION", session_id).encode()
        self.cut_after = cut_after
        self.streams_opened = 0
        self.last_event_ids: list[str | None] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: Gateway

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        if self.path == "/":
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(self.server.page)))
            self.end_headers()
            self.wfile.write(self.server.page)
            return
        if not self.path.startswith("/agent/"):  # the browser asks for a favicon, too
            self.send_error(404)
            return
        self.server.streams_opened += 1
        cut = self.server.streams_opened == 1  # only the first stream is cut
        headers = {"X-Internal-Auth": self.server.runtime.key, "Accept": "text/event-stream"}
        if last := self.headers.get("Last-Event-ID"):
            headers["Last-Event-ID"] = last
        self.server.last_event_ids.append(last)
        with httpx.stream(
            "GET", self.server.runtime.url + self.path, headers=headers, timeout=60
        ) as upstream:
            self.send_response(upstream.status_code)
            self.send_header("Content-Type", upstream.headers.get("content-type", "text/plain"))
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            sent = 0
            for chunk in upstream.iter_raw():
                try:
                    self.wfile.write(chunk)
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    return  # the page was reloaded
                sent += chunk.count(b"\ndata: ")
                if cut and sent >= self.server.cut_after:
                    return  # the connection drops mid-turn


@pytest.fixture
def browser_page() -> Iterator[object]:
    if not CHROMIUM.exists():
        reason = "Chromium is not installed: run `apt-get install -y chromium` (Debian)"
        if os.environ.get("REQUIRE_CHROMIUM") == "1":
            pytest.fail(f"REQUIRE_CHROMIUM=1 but {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser.new_context().new_page()
        finally:
            browser.close()


def test_a_reloaded_page_shows_the_whole_answer(
    runtime: Runtime,
    devllm: DevLLM,
    browser_page,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    session_id = sid("browser")
    tokens = [f"t{i} " for i in range(150)]
    devllm.script({"tokens": tokens, "token_delay_ms": 80})
    body = {"session_id": session_id, "content": "go", "on_disconnect": "continue"}
    poster = threading.Thread(
        target=lambda: runtime.client.post("/agent/message/stream", json=body), daemon=True
    )
    poster.start()
    wait_until_running(runtime, session_id)

    gateway = Gateway(runtime, session_id, cut_after=5)
    threading.Thread(target=gateway.serve_forever, daemon=True).start()
    try:
        page = browser_page
        page.goto(gateway.url + "/")
        # The cut stream is resumed by the browser itself, from the last id it saw.
        page.wait_for_function("document.getElementById('answer').textContent.length > 60")
        assert gateway.streams_opened >= 2
        assert gateway.last_event_ids[0] is None
        assert gateway.last_event_ids[1] is not None

        still = runtime.client.get(f"/agent/sessions/{session_id}").json()["running_turn"]
        assert still is not None  # so the reload below is mid-turn
        page.reload()  # a fresh page, no cursor: the turn from its start
        page.wait_for_function(
            "document.getElementById('state').textContent === 'done'", timeout=120_000
        )
        shown = page.inner_text("#answer")
    finally:
        gateway.shutdown()
        gateway.server_close()
    poster.join(60)

    # Playwright's event loop runs in this thread: the ORM must run in another one.
    with ThreadPoolExecutor(1) as pool:
        stored = pool.submit(final_answer, session_id).result()
    assert stored.status == "complete"
    assert shown == stored.content == "".join(tokens)
