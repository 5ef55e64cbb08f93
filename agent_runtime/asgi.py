"""ASGI entry point: ``uvicorn agent_runtime.asgi:application``.

Django's application, wrapped so that request bodies over ``MAX_BODY_BYTES`` are refused
before Django reads them. No migrations here: the container runs them as an explicit step
(``docker/entrypoint.sh migrate``).
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agent_runtime.settings")

django_application = get_asgi_application()

# Refuse to serve with placeholder secrets or a broken configuration.
from django.conf import settings  # noqa: E402

from agent_runtime.body_limit import BodySizeLimit  # noqa: E402
from agent_runtime.checks import validate_settings  # noqa: E402
from agent_runtime.lifespan import Lifespan  # noqa: E402

validate_settings()

application = Lifespan(BodySizeLimit(django_application, max_bytes=settings.MAX_BODY_BYTES))
