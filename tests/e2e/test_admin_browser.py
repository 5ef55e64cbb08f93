"""The admin in a real headless Chromium (Playwright) against uvicorn, on the test database.

Needs Debian's ``chromium`` package (``apt-get install chromium``; ``.ci/run`` installs it).
Set ``SCREENSHOTS_DIR=docs/screenshots`` to refresh the screenshots the docs show.
"""

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from sessions.models import Message
from tests.servers import Runtime
from tests.sessions.factories import (
    add_messages,
    approval_conversation,
    make_session,
    tool_conversation,
)
from tests.skips import skip_unless_required

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PASSWORD = "correct-horse-battery-staple"


@pytest.fixture
def conversations(runtime: Runtime) -> dict[str, int]:
    """A superuser and a few conversations, written before the browser starts (the ORM is
    not used while Playwright's event loop runs in this thread)."""
    User.objects.create_superuser("debugger", "debugger@example.com", PASSWORD)
    approvals = approval_conversation("approval-session")
    now = timezone.now()
    for i, name in enumerate(["onboarding-chat", "refactor-help", "release-notes"]):
        make_session(name, last_activity_at=now - timedelta(hours=3 + i), messages=4 + 2 * i)
    failed = make_session("flaky-upstream", last_activity_at=now - timedelta(hours=2), messages=1)
    add_messages(
        failed, 1, status=Message.Status.FAILED, error_code="upstream_timeout", model="dev-llm"
    )
    cut = make_session("user-left", last_activity_at=now - timedelta(hours=1), messages=1)
    add_messages(cut, 1, status=Message.Status.INTERRUPTED, content="Half an ans")
    needle = make_session("zebra-question", last_activity_at=now - timedelta(minutes=30))
    add_messages(needle, 1, content="Why does the zebra crossing have stripes?")
    make_session("in-progress", messages=1, running=True)
    tools = tool_conversation("calculator-session")
    return {"tools": tools.pk, "approvals": approvals.pk}


@pytest.fixture
def page(conversations: dict[str, int]) -> Iterator[object]:
    if not CHROMIUM.exists():
        skip_unless_required(
            "REQUIRE_CHROMIUM",
            f"Chromium is not installed at {CHROMIUM}: run `apt-get install -y chromium` "
            "(Debian) to run the admin browser tests.",
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            context = browser.new_context(viewport={"width": 1500, "height": 900})
            yield context.new_page()
        finally:
            browser.close()


def test_debugging_a_conversation_in_the_admin(
    runtime: Runtime,
    conversations: dict[str, int],
    page,  # type: ignore[no-untyped-def]
    screenshots: Path,
) -> None:
    stylesheets: dict[str, int] = {}
    page.on(
        "response",
        lambda r: stylesheets.__setitem__(r.url, r.status) if r.url.endswith(".css") else None,
    )

    # Log in.
    page.goto(runtime.url + "/admin/")
    assert "/admin/login/" in page.url
    page.fill("#id_username", "debugger")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(runtime.url + "/admin/")
    assert page.locator("#site-name").inner_text() == "Django administration"
    # Styled: the admin's stylesheets were served under uvicorn and applied.
    base_css = runtime.url + "/static/admin/css/base.css"
    assert stylesheets.get(base_css) == 200
    header = page.eval_on_selector("#header", "e => getComputedStyle(e).backgroundColor")
    assert header not in ("", "rgba(0, 0, 0, 0)", "transparent")

    # The session list: columns, newest activity first, no way to add a session.
    page.click("a[href='/admin/agent_sessions/session/']")
    page.wait_for_url(runtime.url + "/admin/agent_sessions/session/")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 9
    names = page.locator("#result_list tbody th.field-session_id a").all_inner_texts()
    assert names[:2] == ["calculator-session", "in-progress"]
    headers = page.locator("#result_list thead th").all_inner_texts()
    for column in ("MESSAGES", "LAST ACTIVITY AT", "MODEL", "TOTAL TOKENS", "PROBLEMS"):
        assert any(column in h.upper() for h in headers), (column, headers)
    assert page.locator("a[href='/admin/agent_sessions/session/add/']").count() == 0
    page.screenshot(path=str(screenshots / "admin-session-list.png"), full_page=True)

    # Search by message text.
    page.fill("#searchbar", "zebra crossing")
    page.press("#searchbar", "Enter")
    page.wait_for_url(re.compile(r".*\?q=zebra"))
    assert page.locator("#result_list tbody th.field-session_id a").all_inner_texts() == [
        "zebra-question"
    ]

    # The transcript of a session with a tool call, in order, read-only.
    page.fill("#searchbar", "calculator-session")
    page.press("#searchbar", "Enter")
    page.wait_for_url(re.compile(r".*\?q=calculator"))
    page.click("#result_list a:text-is('calculator-session')")
    page.wait_for_url(re.compile(rf".*/session/{conversations['tools']}/change/.*"))
    messages = page.locator(".transcript-messages li.message")
    assert messages.count() == 4
    assert [messages.nth(i).get_attribute("data-seq") for i in range(4)] == ["1", "2", "3", "4"]
    assert [messages.nth(i).get_attribute("data-role") for i in range(4)] == [
        "user",
        "assistant",
        "tool",
        "assistant",
    ]
    assert "What is six times seven?" in messages.nth(0).inner_text()
    call = messages.nth(1).locator(".tool-call")
    assert call.locator(".tool-name").inner_text() == "calculator"
    assert '"expr": "6*7"' in call.locator(".arguments").inner_text()
    assert "12 prompt + 5 completion = 17" in messages.nth(1).inner_text()
    result = messages.nth(2)
    assert result.locator(".call-id").inner_text() == "call_7"
    assert result.locator("pre.content").inner_text() == "42"
    assert "Six times seven is 42." in messages.nth(3).inner_text()
    # Read-only: no inputs to edit, no save buttons, no way to add messages.
    assert page.locator("input[name=_save], input[name=_continue]").count() == 0
    assert page.locator("#session_form textarea, #session_form input[type=text]").count() == 0
    assert page.locator("a.addlink").filter(has_text="message").count() == 0
    page.screenshot(path=str(screenshots / "admin-transcript.png"), full_page=True)

    # The user's decisions on calls that asked for approval, with when, why and which request.
    page.goto(runtime.url + f"/admin/agent_sessions/session/{conversations['approvals']}/change/")
    calls = page.locator(".transcript-messages li.message .tool-call")
    assert calls.count() == 3
    approved, denied, waiting = (calls.nth(i).locator(".approval") for i in range(3))
    assert approved.locator(".decision").inner_text() == "approved"
    assert approved.locator(".request-id").inner_text() == "req-approve-7"
    assert approved.locator(".decided-at").count() == 1
    assert '"text": "hi there"' in approved.locator(".approved-arguments").inner_text()
    assert denied.locator(".decision").inner_text() == "denied"
    assert denied.locator(".reason").inner_text() == "keep the build"
    assert denied.locator(".request-id").inner_text() == "req-deny-8"
    assert waiting.locator(".decision").inner_text() == "not answered"
    assert waiting.locator(".decided-at").count() == 0
    denied_color = denied.locator(".decision").evaluate("e => getComputedStyle(e).color")
    approved_color = approved.locator(".decision").evaluate("e => getComputedStyle(e).color")
    assert denied_color != approved_color
    page.screenshot(path=str(screenshots / "admin-tool-approvals.png"), full_page=True)

    # Adding is refused outright, and messages have no admin pages.
    assert page.goto(runtime.url + "/admin/agent_sessions/session/add/").status == 403
    assert page.goto(runtime.url + "/admin/agent_sessions/message/").status == 404
