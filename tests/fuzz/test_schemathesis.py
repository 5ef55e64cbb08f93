"""Schemathesis against the live server's /openapi.json, with and without the key.

Every case is checked by schemathesis (no 5xx, status, content type, body and headers as
documented, invalid data rejected, undeclared methods 405 with Allow, auth enforced) and here:
a rejected request (4xx) wrote no row. Run with ``pytest -m fuzz`` (CI does, on SQLite).
"""

import time
from collections import Counter

import pytest
import schemathesis
from django.db.models import Max
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from sessions.models import Message, Session
from tests.servers import DevLLM, Runtime

pytestmark = [pytest.mark.e2e, pytest.mark.fuzz]

#: Cases run per (test, status class); checked by the last test of the module.
CASES: Counter[str] = Counter()
MIN_CASES = 2000


@pytest.fixture(scope="module")
def fuzz_runtime(runtime_factory) -> Runtime:  # type: ignore[no-untyped-def]
    return runtime_factory()


def _schema(runtime: Runtime, *, max_examples: int) -> schemathesis.BaseSchema:
    schema = schemathesis.openapi.from_url(runtime.url + "/openapi.json")
    schema.config.generation.update(
        modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
        max_examples=max_examples,
        deterministic=True,
        # U+0000 is refused by design (422: PostgreSQL cannot store it), which a JSON schema
        # cannot say for every string; tests/e2e/test_request_limits.py covers it.
        allow_x00=False,
        # Unknown query parameters (like unknown body fields) are ignored by design.
        allow_extra_parameters=False,
    )
    # Read whole event streams (default: 20 events), so that every event is validated and no
    # turn is cut short by schemathesis closing the connection.
    schema.config.max_stream_events = 1000
    # Content over MAX_MESSAGE_CHARS (the schema's maxLength) is refused with 413, as documented.
    rejection = schema.config.checks.negative_data_rejection
    rejection.expected_statuses = [*rejection.expected_statuses, "413"]
    return schema


@pytest.fixture
def api(fuzz_runtime: Runtime, devllm: DevLLM, transactional_db: None) -> schemathesis.BaseSchema:
    return _schema(fuzz_runtime, max_examples=250)


api_schema = schemathesis.pytest.from_fixture("api")


@pytest.fixture(autouse=True)
def _node_id_for_schemathesis(request: pytest.FixtureRequest) -> None:
    # schemathesis 4.32's lazy schemas read ``node._nodeid``, which pytest 9 no longer has.
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


def _state() -> tuple[int, int, object]:
    return (
        Session.objects.count(),
        Message.objects.count(),
        Session.objects.aggregate(Max("updated_at"))["updated_at__max"],
    )


def _call(case, runtime: Runtime, headers: dict[str, str], label: str) -> None:  # type: ignore[no-untyped-def]
    before = _state()
    response = case.call(headers=headers)
    CASES[f"{label}: {response.status_code}"] += 1
    seen = (
        f"{case.method} {case.path} {case.body!r} -> {response.status_code} {response.text[:300]}"
    )
    case.validate_response(response, headers=headers, excluded_checks=_exempt(response))
    if 400 <= response.status_code < 500:
        after = _state()
        assert after == before, f"a rejected request wrote ({before} -> {after}): {seen}"
    else:
        _wait_for_running_turns()
        if _state() != before:
            CASES["accepted requests that wrote"] += 1  # the state seen here is the server's


def _exempt(response) -> list:  # type: ignore[no-untyped-def]
    """Checks that cannot hold for this response, with the reason."""
    if response.status_code == 422:
        errors = response.json().get("errors") or []
        if any(e.get("type") == "invalid_cursor" for e in errors):
            # A cursor is opaque: no schema can say which strings are ones this API issued, so
            # a schema-valid made-up cursor is rightly refused.
            return [positive_data_acceptance]
        if any(e.get("type") == "union_tag_not_found" for e in errors):
            # The ag-ui-protocol package's JSON Schema gives a message's `role` a default (so
            # leaves it optional), while its validation needs `role` to tell the kinds apart.
            return [positive_data_acceptance]
        if any(
            e.get("type") in ("interrupt_answered_twice", "resume_beside_user_message")
            for e in errors
        ):
            # AG-UI's resume entries: a JSON schema cannot say that no two name the same
            # interrupt, nor that resolved entries exclude a new user message.
            return [positive_data_acceptance]
        if any(e.get("type") == "nothing_to_answer" for e in errors):
            # What is new in a posted chat depends on the stored one (the AI SDK and AG-UI
            # routes): no schema can say it.
            return [positive_data_acceptance]
    return []


def _wait_for_running_turns() -> None:
    """A stream the client left early ends its turn on the server a moment later (storing the
    partial answer): let it finish before the next case counts rows."""
    deadline = time.monotonic() + 10
    while Session.objects.filter(active_turn_id__isnull=False).exists():
        assert time.monotonic() < deadline, "a turn is still running 10 s after its response"
        time.sleep(0.02)


@api_schema.parametrize()
def test_with_the_key(case, fuzz_runtime: Runtime) -> None:  # type: ignore[no-untyped-def]
    _call(case, fuzz_runtime, {"X-Internal-Auth": fuzz_runtime.key}, "with key")


@api_schema.parametrize()
def test_without_the_key(case, fuzz_runtime: Runtime) -> None:  # type: ignore[no-untyped-def]
    _call(case, fuzz_runtime, {}, "without key")


def test_enough_cases_ran() -> None:
    wrote = CASES.pop("accepted requests that wrote", 0)
    print(f"\nschemathesis cases by status: {dict(sorted(CASES.items()))}")
    assert sum(CASES.values()) >= MIN_CASES, dict(CASES)
    # The row check reads the database the server writes: accepted turns show up in it.
    assert wrote > 0
