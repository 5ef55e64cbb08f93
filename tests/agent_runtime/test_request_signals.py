"""``request_started_trimmed``: no receiver is left to cost a thread hop per request."""

from collections.abc import Iterator

import pytest
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, reset_queries

from agent_runtime.request_signals import request_started_trimmed


@pytest.fixture
def restored() -> Iterator[None]:
    yield
    request_started.connect(close_old_connections)
    request_started.connect(reset_queries)


@pytest.mark.usefixtures("restored")
def test_request_started_has_no_receiver_left() -> None:
    assert request_started.has_listeners()
    request_started_trimmed()
    assert not request_started.has_listeners()


@pytest.mark.usefixtures("restored")
def test_connections_are_still_checked_at_each_request_end() -> None:
    request_started_trimmed()
    assert request_finished.has_listeners()
    receivers = request_finished.send(sender=None)
    assert close_old_connections in [receiver for receiver, _ in receivers]
