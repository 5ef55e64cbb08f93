"""ASGI entry point: ``uvicorn agent_runtime.asgi:application``."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agent_runtime.settings")

application = get_asgi_application()

# Refuse to serve with placeholder secrets or a broken configuration.
from agent_runtime.checks import validate_settings  # noqa: E402

validate_settings()
