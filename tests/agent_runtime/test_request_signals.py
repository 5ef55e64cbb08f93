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
    # disconnect() says whether it was connected; connected again at once.
    was_connected = request_finished.disconnect(close_old_connections)
    request_finished.connect(close_old_connections)
    assert was_connected
