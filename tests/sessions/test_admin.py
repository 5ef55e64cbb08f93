"""The sessions admin in-process: queries, search, filters, transcript pages, permissions.

(A real browser drives it over HTTP in ``tests/e2e/test_admin_browser.py``.)
"""

import re

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from sessions.admin import COLLAPSE_AFTER_CHARS
from sessions.models import Message, Session
from tests.sessions.factories import add_messages, make_session, tool_conversation

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/agent_sessions/session/"


def change_url(session: Session) -> str:
    return f"{CHANGELIST}{session.pk}/change/"


def seqs_shown(html: str) -> list[int]:
    return [int(seq) for seq in re.findall(r'data-seq="(\d+)"', html)]


def row_cells(html: str, session_id: str) -> list[str]:
    """The <td> cells of the changelist row of ``session_id``."""
    row = re.search(rf"<tr>(?:(?!</tr>).)*>{session_id}</a>.*?</tr>", html, re.S)
    assert row is not None, session_id
    return re.findall(r"<td[^>]*>(.*?)</td>", row.group(0), re.S)


def text(cell: str) -> str:
    """A cell's text, without its markup."""
    return re.sub(r"<[^>]+>", "", cell).strip()


def queries_for(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


def test_the_session_list_costs_the_same_queries_for_3_or_40_sessions(admin_client: Client) -> None:
    for i in range(3):
        make_session(f"s{i}", messages=3)
    few = queries_for(admin_client, CHANGELIST)
    for i in range(3, 40):
        failed = make_session(f"s{i}", messages=2)
        add_messages(failed, 1, status=Message.Status.FAILED, model="m", total_tokens=5)
    assert queries_for(admin_client, CHANGELIST) == few  # no query per row


def test_the_list_shows_count_activity_model_tokens_and_outcome(admin_client: Client) -> None:
    tool_conversation("with-tools")
    failed = make_session("broke", messages=1)
    add_messages(failed, 1, status=Message.Status.FAILED, error_code="upstream_timeout")
    cut = make_session("cut", messages=1)
    add_messages(cut, 1, status=Message.Status.CANCELLED)
    both = make_session("both", messages=1, running=True)
    add_messages(both, 1, status=Message.Status.FAILED)
    add_messages(both, 1, status=Message.Status.INTERRUPTED)
    html = admin_client.get(CHANGELIST).content.decode()
    # Cells: checkbox, messages, last activity, model, total tokens, problems, turn running.
    tools = row_cells(html, "with-tools")
    assert tools[1] == "4"
    assert (tools[3], tools[4]) == ("dev-llm", "55")  # model of the latest answer, total tokens
    assert (tools[5], tools[6]) == ("—", "—")
    assert [text(c) for c in row_cells(html, "broke")[5:7]] == ["failed", "—"]
    assert [text(c) for c in row_cells(html, "cut")[5:7]] == ["interrupted", "—"]
    assert [text(c) for c in row_cells(html, "both")[5:7]] == ["failed, interrupted", "running"]


def test_search_by_session_id_and_by_message_text(admin_client: Client) -> None:
    make_session("alpha", messages=2)
    beta = make_session("beta", messages=1)
    add_messages(beta, 1, content="the quick brown fox")
    add_messages(beta, 1, content="another fox")  # two hits, one row

    def found(query: str) -> list[str]:
        html = admin_client.get(CHANGELIST, {"q": query}).content.decode()
        return re.findall(r'<th class="field-session_id"><a [^>]*>([^<]+)</a>', html)

    assert found("brown fox") == ["beta"]
    assert found("fox") == ["beta"]
    assert found("alph") == ["alpha"]
    assert found("nowhere") == []


def test_outcome_and_running_filters(admin_client: Client) -> None:
    make_session("clean", messages=2)
    failed = make_session("failed", messages=1)
    add_messages(failed, 1, status=Message.Status.FAILED)
    cut = make_session("cut", messages=1)
    add_messages(cut, 1, status=Message.Status.INTERRUPTED)
    make_session("running", messages=1, running=True)

    def listed(**params: str) -> set[str]:
        html = admin_client.get(CHANGELIST, params).content.decode()
        return set(re.findall(r'<th class="field-session_id"><a [^>]*>([^<]+)</a>', html))

    assert listed(outcome="failed") == {"failed"}
    assert listed(outcome="interrupted") == {"cut"}
    assert listed(outcome="clean") == {"clean", "running"}
    assert listed(running="yes") == {"running"}
    assert "running" not in listed(running="no")
    assert admin_client.get(CHANGELIST, {"last_activity_at__year": "2026"}).status_code == 200


def test_the_transcript_is_in_order_with_tool_calls_and_results(admin_client: Client) -> None:
    session = tool_conversation("tools")
    html = admin_client.get(change_url(session)).content.decode()
    assert seqs_shown(html) == [1, 2, 3, 4]
    assert re.findall(r'data-role="(\w+)"', html) == ["user", "assistant", "tool", "assistant"]
    assert 'class="tool-name">calculator</code>' in html
    assert "&quot;expr&quot;: &quot;6*7&quot;" in html  # arguments, indented JSON
    assert 'Result of <code>calculator</code> call <code class="call-id">call_7</code>' in html
    assert "12 prompt + 5 completion = 17" in html
    assert "Six times seven is 42." in html


def test_a_500_message_transcript_is_paged_and_long_content_collapsed(
    admin_client: Client,
) -> None:
    session = make_session("long", messages=499)
    add_messages(session, 1, content="x" * (COLLAPSE_AFTER_CHARS + 1))
    first = admin_client.get(change_url(session)).content.decode()
    assert seqs_shown(first) == list(range(1, 101))
    assert "Messages 1\u2013100 of 500" in first
    last = admin_client.get(change_url(session), {"page": 5}).content.decode()
    assert seqs_shown(last) == list(range(401, 501))
    assert last.count('<details class="content-collapsed">') == 1
    assert f"({COLLAPSE_AFTER_CHARS + 1} characters; show all)" in last


def test_the_transcript_page_costs_the_same_queries_for_4_or_100_messages(
    admin_client: Client,
) -> None:
    small = tool_conversation("small")
    big = make_session("big", messages=100)
    assert queries_for(admin_client, change_url(small)) == queries_for(
        admin_client, change_url(big)
    )


def test_nothing_can_be_added_or_edited(admin_client: Client) -> None:
    session = tool_conversation("tools")
    changelist = admin_client.get(CHANGELIST).content.decode()
    assert f'href="{CHANGELIST}add/"' not in changelist
    page = admin_client.get(change_url(session)).content.decode()
    assert 'name="_save"' not in page
    assert "<textarea" not in page
    assert 'name="session_id"' not in page
    assert admin_client.get(f"{CHANGELIST}add/").status_code == 403
    before = Session.objects.get(pk=session.pk).last_activity_at
    response = admin_client.post(change_url(session), {"session_id": "renamed"})
    assert response.status_code == 403
    assert Session.objects.get(pk=session.pk).last_activity_at == before
    # Messages are not in the admin at all.
    for path in ("/admin/agent_sessions/message/", "/admin/agent_sessions/message/add/"):
        response = admin_client.get(path)
        assert response.status_code == 404
        assert response.json()["code"] == "not_found"


def test_a_superuser_deletes_a_session_with_its_messages(admin_client: Client) -> None:
    session = make_session("doomed", messages=300)
    make_session("kept", messages=2)
    confirm = admin_client.get(f"{CHANGELIST}{session.pk}/delete/").content.decode()
    assert "300 messages" in confirm
    assert confirm.count("<li>") < 20  # a summary, not one line per message
    response = admin_client.post(f"{CHANGELIST}{session.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert set(Session.objects.values_list("session_id", flat=True)) == {"kept"}
    assert Message.objects.count() == 2


def test_the_delete_action_on_several_sessions(admin_client: Client) -> None:
    pks = [make_session(f"s{i}", messages=2).pk for i in range(3)]
    response = admin_client.post(
        CHANGELIST,
        {"action": "delete_selected", "_selected_action": pks[:2], "post": "yes"},
    )
    assert response.status_code == 302
    assert list(Session.objects.values_list("pk", flat=True)) == [pks[2]]
    assert Message.objects.count() == 2


@pytest.mark.parametrize(("can_delete", "status"), [(False, 403), (True, 302)])
def test_deleting_needs_the_delete_permission(can_delete: bool, status: int) -> None:
    staff = User.objects.create_user("viewer", password="x", is_staff=True)
    codenames = ["view_session"] + (["delete_session"] if can_delete else [])
    staff.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    client = Client()
    client.force_login(staff)
    session = make_session("s", messages=2)
    assert client.get(change_url(session)).status_code == 200
    response = client.post(f"{CHANGELIST}{session.pk}/delete/", {"post": "yes"})
    assert response.status_code == status
    assert Session.objects.filter(pk=session.pk).exists() is not can_delete


@pytest.mark.parametrize("digits", [20, 25])
def test_an_id_too_large_for_any_primary_key_is_404_not_a_crash(
    admin_client: Client, digits: int
) -> None:
    # SQLite raised OverflowError on it (500); the largest 64-bit key is 19 digits.
    make_session("real", messages=1)
    response = admin_client.get(f"{CHANGELIST}{'9' * digits}/change/")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_the_largest_possible_id_is_still_looked_up(admin_client: Client) -> None:
    # Not a 404 from the range check: Django's own "perhaps it was deleted" redirect.
    response = admin_client.get(f"{CHANGELIST}{2**63 - 1}/change/")
    assert response.status_code == 302
    assert response["Location"] == "/admin/"
