"""examples/web-chat in a real headless Chromium: useChat on the AI SDK endpoint, through the
Vite dev server's proxy (which adds the internal key), against uvicorn and the development LLM.

Needs Debian's ``chromium`` (``apt-get install -y chromium``): without it the tests skip, unless
``REQUIRE_CHROMIUM=1`` (``.ci/run``) makes that a failure. The example's packages are installed
with ``npm ci`` the first time. Set ``SCREENSHOTS_DIR=docs/screenshots`` to refresh the
screenshot the docs show.
"""

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import E2E_KEY
from tests.e2e.test_admin_browser import CHROMIUM, CHROMIUM_ARGS
from tests.servers import (
    DevLLM,
    Runtime,
    ServerProcess,
    free_port,
    node_project_ready,
    wait_until_up,
)

pytestmark = pytest.mark.e2e

WEB_CHAT = Path(__file__).resolve().parent.parent.parent / "examples" / "web-chat"
SLOW_REPLY = {"tokens": [f"w{i} " for i in range(300)], "token_delay_ms": 60}


def _web_chat_for(runtime: Runtime, server_logs: Path) -> Iterator[str]:
    """The example's dev server in front of ``runtime``, until the generator is closed."""
    if not CHROMIUM.exists():
        message = "Chromium is not installed: run `apt-get install -y chromium` (Debian)."
        if os.environ.get("REQUIRE_CHROMIUM") == "1":
            pytest.fail(f"REQUIRE_CHROMIUM=1 but {message}")
        pytest.skip(message)
    node = node_project_ready(WEB_CHAT)
    vite = WEB_CHAT / "node_modules" / "vite" / "bin" / "vite.js"
    port = free_port()
    log = server_logs / f"vite-{port}.log"
    env = {
        **os.environ,
        "AGENT_RUNTIME_URL": runtime.url,
        "AGENT_RUNTIME__INTERNAL_API_KEY": E2E_KEY,
        "WEB_CHAT_PORT": str(port),
    }
    process = subprocess.Popen(
        [node, str(vite)], cwd=WEB_CHAT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )
    server = ServerProcess(url=f"http://127.0.0.1:{port}", process=process, log=log)
    try:
        wait_until_up(server.url + "/", process, log, timeout=120)
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="module")
def web_chat(runtime_process: Runtime, server_logs: Path) -> Iterator[str]:
    yield from _web_chat_for(runtime_process, server_logs)


@pytest.fixture(scope="module")
def approval_web_chat(approval_runtime_process: Runtime, server_logs: Path) -> Iterator[str]:
    """The page in front of a runtime whose calculator calls wait for the user's approval."""
    yield from _web_chat_for(approval_runtime_process, server_logs)


@pytest.fixture
def page(devllm: DevLLM, transactional_db: None) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            context = browser.new_context(viewport={"width": 1200, "height": 760})
            context.set_default_timeout(60_000)
            yield context.new_page()
        finally:
            browser.close()


def _send(page, text: str) -> None:  # type: ignore[no-untyped-def]
    page.get_by_label("Message").fill(text)
    page.get_by_role("button", name="Send").click()


def _start_a_slow_answer(page, url: str, devllm: DevLLM) -> None:  # type: ignore[no-untyped-def]
    """Open the chat and send a message whose answer streams slowly; return once it streams."""
    from playwright.sync_api import expect

    devllm.script(SLOW_REPLY)
    page.goto(url)
    _send(page, "a long answer please")
    expect(page.locator("article[data-role=assistant]").last).to_contain_text("w1 ")


def _stored(runtime: Runtime, chat: str) -> list[dict]:
    response = runtime.client.get(f"/agent/sessions/{chat}/messages")
    return response.json()["messages"] if response.status_code == 200 else []


def _eventually(check, what: str, seconds: float = 60) -> None:  # type: ignore[no-untyped-def]
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


def test_a_message_and_a_client_tool_that_runs_in_the_page(
    page,  # type: ignore[no-untyped-def]
    web_chat: str,
    screenshots: Path,
) -> None:
    from playwright.sync_api import expect

    requests: list[httpx.Headers] = []
    page.on("request", lambda r: requests.append(r.headers) if "/agent/" in r.url else None)
    page.goto(f"{web_chat}/?chat=web-chat-a")
    _send(page, "hello there")
    answer = page.locator("article[data-role=assistant]").last
    expect(answer).to_contain_text("You said: 'hello there'")

    _send(page, '/tool read_file {"path": "notes.txt"}')
    tool = page.locator(".tool[data-tool=read_file]")
    expect(tool).to_have_attribute("data-state", "output-available")
    expect(tool).to_contain_text("ran in this page")
    expect(page.locator("article[data-role=assistant]").last).to_contain_text(
        "returned Remember: the runtime owns the history."
    )
    expect(page.get_by_test_id("status")).to_have_text("ready")
    page.screenshot(path=str(screenshots / "web-chat.png"))
    # The key is the proxy's: it never reaches the browser.
    assert requests
    assert all("x-internal-auth" not in {k.lower() for k in h} for h in requests)


def test_stop_cancels_the_turn_on_the_runtime(
    page,  # type: ignore[no-untyped-def]
    web_chat: str,
    runtime: Runtime,
    devllm: DevLLM,
) -> None:
    from playwright.sync_api import expect

    _start_a_slow_answer(page, f"{web_chat}/?chat=web-chat-stop", devllm)
    page.get_by_role("button", name="Stop").click()
    expect(page.get_by_test_id("status")).to_have_text("ready")
    _eventually(
        lambda: any(m["status"] == "cancelled" for m in _stored(runtime, "web-chat-stop")),
        "the cancelled answer to be stored",
    )
    [stream] = devllm.streams()
    assert not stream["completed"]


def test_a_reload_mid_answer_resumes_the_whole_answer(
    page,  # type: ignore[no-untyped-def]
    web_chat: str,
    runtime: Runtime,
    devllm: DevLLM,
) -> None:
    from playwright.sync_api import expect

    _start_a_slow_answer(page, f"{web_chat}/?chat=web-chat-reload", devllm)
    with page.expect_response(lambda r: r.url.endswith("/stream")) as resumed:
        page.reload()
    # useChat({resume: true}) asked for the running stream: the turn went on without the page.
    assert resumed.value.status == 200
    answer = page.locator("article[data-role=assistant]").last
    expect(answer).to_contain_text("w0 w1 w2 ")  # replayed from the turn's start
    expect(answer).to_contain_text("w299", timeout=90_000)  # and followed to its end
    expect(page.get_by_test_id("status")).to_have_text("ready")
    assert answer.inner_text().strip() == "".join(SLOW_REPLY["tokens"]).strip()
    expect(page.locator("article[data-role=assistant]")).to_have_count(1)
    _eventually(
        lambda: (
            [m["status"] for m in _stored(runtime, "web-chat-reload")] == ["complete", "complete"]
        ),
        "the whole answer to be stored",
    )
    [stream] = devllm.streams()  # one model call, never restarted
    assert stream["completed"]


def test_approve_and_deny_in_the_page(
    page,  # type: ignore[no-untyped-def]
    approval_web_chat: str,
    approval_runtime: Runtime,
    devllm: DevLLM,
) -> None:
    """A call that waits for approval shows Approve and Deny; each decision continues the turn
    once, and the runtime runs the approved call only."""
    from playwright.sync_api import expect

    page.goto(f"{approval_web_chat}/?chat=web-chat-approval")
    _send(page, '/tool calculator {"expr": "6*7"}')
    tool = page.locator(".tool[data-tool=calculator]").last
    expect(tool).to_have_attribute("data-state", "approval-requested")
    expect(page.get_by_test_id("status")).to_have_text("ready")
    assert len(devllm.requests()) == 1  # nothing runs before the decision
    tool.get_by_role("button", name="Approve").click()
    expect(tool).to_have_attribute("data-state", "output-available")
    expect(tool).to_contain_text("42")
    expect(page.locator("article[data-role=assistant]").last).to_contain_text("returned 42")

    _send(page, '/tool calculator {"expr": "1+1"}')
    denied = page.locator(".tool[data-tool=calculator]").last
    expect(denied).to_have_attribute("data-state", "approval-requested")
    denied.get_by_role("button", name="Deny").click()
    expect(denied).to_have_attribute("data-state", "output-denied")
    expect(page.locator("article[data-role=assistant]").last).to_contain_text(
        '"reason":"denied in the page"'  # the model was told why
    )
    expect(page.get_by_test_id("status")).to_have_text("ready")
    stored = _stored(approval_runtime, "web-chat-approval")
    tools = [m["content"] for m in stored if m["role"] == "tool"]
    assert tools[0] == "42"
    assert "denied in the page" in tools[1]
    assert len(devllm.requests()) == 4  # two calls asked, two continuations
