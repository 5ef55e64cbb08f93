"""Django's ``request_started`` receivers, removed where the runtime serves requests.

Django sends ``request_started`` through ``Signal.asend``, which runs sync receivers through
``sync_to_async``: while any is connected, every request waits for a thread hop before it
starts. Django connects two, and neither has work to do here:

- ``close_old_connections`` is connected to ``request_finished`` too, which Django sends from
  the response's ``close()`` on the database thread at every request's end (and on a client's
  disconnect): a connection that failed or aged is closed when the request that used it ends,
  before the next one starts. Work outside requests closes its own after a failure
  (``streaming.active_turns``).
- ``reset_queries`` empties the query log, which only ``DEBUG`` fills.
"""

from django.conf import settings
from django.core.signals import request_started
from django.db import close_old_connections, reset_queries


def request_started_trimmed() -> None:
    """Disconnect them (public ``Signal.disconnect``); called once by ``agent_runtime.asgi``."""
    request_started.disconnect(close_old_connections)
    if not settings.DEBUG:
        request_started.disconnect(reset_queries)
