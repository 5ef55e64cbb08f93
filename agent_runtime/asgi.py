"""ASGI entry point: ``uvicorn agent_runtime.asgi:application``.

Django's application, behind a body size limit that refuses bodies over ``MAX_BODY_BYTES``
before anything reads them. No migrations here: the container runs them as an explicit step
(``docker/entrypoint.sh migrate``).
"""

import os
from typing import Any

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agent_runtime.settings")

_django = get_asgi_application()


async def django_application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Django's handler, without a thread-sensitive context per request.

    ``ASGIHandler.__call__`` gives each request its own one-thread executor: a new thread,
    and so a new database connection, per request. Without it every ``sync_to_async`` call
    runs on asgiref's one database thread, which keeps its connection (``CONN_MAX_AGE``).
    """
    await _django.handle(scope, receive, send)


# Refuse to serve with placeholder secrets or a broken configuration.
from django.conf import settings  # noqa: E402

from agent_runtime.body_limit import BodySizeLimit  # noqa: E402
from agent_runtime.checks import validate_settings  # noqa: E402
from agent_runtime.lifespan import Lifespan  # noqa: E402
from agent_runtime.request_signals import request_started_trimmed  # noqa: E402

validate_settings()
request_started_trimmed()

application = Lifespan(BodySizeLimit(django_application, max_bytes=settings.MAX_BODY_BYTES))
