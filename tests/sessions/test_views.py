"""The sessions API in-process: the queries each request costs, and the refusals.

(The same endpoints are exercised over real HTTP in ``tests/e2e/test_sessions_api.py``.)
"""

from datetime import timedelta

import pytest
from django.conf import settings
from django.test import Client

from sessions.models import Message, Session
from sessions.records import ActivityKey
from sessions.schemas import cursor_encode
from tests.sessions.factories import T0, make_session

pytestmark = pytest.mark.django_db


@pytest.fixture
def api() -> Client:
    # The sync test client runs the async views' sync_to_async work on this thread, inside the
    # test's transaction, so django_assert_num_queries sees every query of the request.
    return Client(headers={"X-Internal-Auth": settings.INTERNAL_API_KEY})


@pytest.mark.parametrize("size", [3, 60])
def test_each_request_costs_a_constant_number_of_queries(
    api: Client, size: int, django_assert_num_queries
) -> None:  # type: ignore[no-untyped-def]
    for i in range(size):
        make_session(f"s{i}", messages=size if i == 0 else 1, last_activity_at=T0 + timedelta(i))
    with django_assert_num_queries(1):
        first = api.get("/agent/sessions", {"limit": 2})
    with django_assert_num_queries(1):
        second = api.get("/agent/sessions", {"limit": 2, "cursor": first.json()["next_cursor"]})
    with django_assert_num_queries(1):
        detail = api.get("/agent/sessions/s0")
    with django_assert_num_queries(2):
        history = api.get("/agent/sessions/s0/messages", {"after": 1, "limit": 200})
    # The delete locks the row, then deletes the messages, the tool approvals and the session
    # (plus the SAVEPOINT and RELEASE of its transaction, nested in the test's).
    with django_assert_num_queries(6):
        deleted = api.delete("/agent/sessions/s0")
    assert [r.status_code for r in (first, second, detail, history, deleted)] == [
        200,
        200,
        200,
        200,
        204,
    ]
    assert len(history.json()["messages"]) == size - 1


def test_responses_have_the_documented_shape(api: Client) -> None:
    make_session("s1", messages=2, last_activity_at=T0)
    Message.objects.filter(seq=2).update(
        model="dev-llm", prompt_tokens=3, completion_tokens=4, total_tokens=7, finish_reason="stop"
    )
    listing = api.get("/agent/sessions").json()
    assert listing == {
        "sessions": [
            {
                "session_id": "s1",
                "created_at": listing["sessions"][0]["created_at"],
                "last_activity_at": listing["sessions"][0]["last_activity_at"],
                "message_count": 2,
                "turn_running": False,
            }
        ],
        "next_cursor": None,
    }
    history = api.get("/agent/sessions/s1/messages").json()
    assert history["session_id"] == "s1"
    assert (history["has_more"], history["next_after"]) == (False, 2)
    user, answer = history["messages"]
    assert set(user) == {
        "seq",
        "role",
        "content",
        "tool_calls",
        "tool_call_id",
        "tool_name",
        "status",
        "created_at",
        "model",
        "usage",
        "finish_reason",
        "error_code",
        "superseded",
    }
    assert (user["usage"], user["model"], user["finish_reason"]) == (None, None, None)
    assert (user["superseded"], answer["superseded"]) == (False, False)
    assert answer["usage"] == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
    assert (answer["model"], answer["finish_reason"]) == ("dev-llm", "stop")
    # Past the end: no messages, and next_after stays where the client is (to poll).
    assert api.get("/agent/sessions/s1/messages", {"after": 9}).json()["next_after"] == 9


@pytest.mark.parametrize(
    ("path", "params", "fields"),
    [
        ("/agent/sessions", {"limit": "0"}, ["limit"]),
        ("/agent/sessions", {"limit": "201"}, ["limit"]),
        ("/agent/sessions", {"limit": "ten"}, ["limit"]),
        ("/agent/sessions", {"cursor": "not-a-cursor"}, ["cursor"]),
        ("/agent/sessions", {"cursor": "eyJhdCI6IDF9"}, ["cursor"]),  # {"at": 1}
        ("/agent/sessions", {"cursor": "x", "limit": "-1"}, ["limit", "cursor"]),
        ("/agent/sessions/s1/messages", {"after": "-1"}, ["after"]),
        ("/agent/sessions/s1/messages", {"after": "1.5"}, ["after"]),
        ("/agent/sessions/s1/messages", {"limit": "1000"}, ["limit"]),
    ],
)
def test_bad_parameters_are_422_listing_the_fields(
    api: Client, path: str, params: dict, fields: list[str]
) -> None:
    make_session("s1", messages=1)
    response = api.get(path, params)
    assert response.status_code == 422
    body = response.json()
    assert (body["code"], body["detail"]) == ("invalid_request", "Invalid query parameters.")
    assert sorted(e["field"] for e in body["errors"]) == sorted(fields)
    assert all(set(e) == {"field", "message", "type"} for e in body["errors"])


def test_a_cursor_for_a_naive_time_is_refused(api: Client) -> None:
    naive = cursor_encode(ActivityKey(last_activity_at=T0.replace(tzinfo=None), pk=1))
    assert api.get("/agent/sessions", {"cursor": naive}).status_code == 422


def test_empty_and_unknown_parameters_are_ignored(api: Client) -> None:
    make_session("s1")
    response = api.get("/agent/sessions", {"cursor": "", "limit": "", "colour": "blue"})
    assert response.status_code == 200
    assert [s["session_id"] for s in response.json()["sessions"]] == ["s1"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/agent/sessions/nope"),
        ("delete", "/agent/sessions/nope"),
        ("get", "/agent/sessions/nope/messages"),
    ],
)
def test_unknown_sessions_are_404(api: Client, method: str, path: str) -> None:
    response = getattr(api, method)(path)
    assert response.status_code == 404
    assert response.json() == {"detail": "No session 'nope'.", "code": "not_found"}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/agent/sessions"),
        ("delete", "/agent/sessions"),
        ("put", "/agent/sessions/s1"),
        ("patch", "/agent/sessions/s1"),
        ("post", "/agent/sessions/s1"),
        ("post", "/agent/sessions/s1/messages"),
        ("delete", "/agent/sessions/s1/messages"),
    ],
)
def test_wrong_methods_are_405_json(api: Client, method: str, path: str) -> None:
    make_session("s1", messages=1)
    response = getattr(api, method)(path)
    assert response.status_code == 405
    assert response.json() == {"detail": "Method not allowed.", "code": "method_not_allowed"}
    assert Session.objects.filter(session_id="s1").exists()


def test_head_is_allowed_where_get_is(api: Client) -> None:
    make_session("s1")
    assert api.head("/agent/sessions/s1").status_code == 200
    assert api.head("/agent/sessions/s1/messages").status_code == 200
    assert api.head("/agent/sessions").status_code == 200


def test_the_api_requires_the_internal_key() -> None:
    make_session("s1")
    for method, path in [("get", "/agent/sessions"), ("delete", "/agent/sessions/s1")]:
        assert getattr(Client(), method)(path).status_code == 401
    assert Session.objects.filter(session_id="s1").exists()
