"""ASGI entry point: ``uvicorn agent_runtime.asgi:application`` (``manage.py serve`` runs it).

Django's application through the runtime's handler (``agent_runtime.handler``: the admin's
sync work apart from the turns', bodies bounded in size and time and left unread for a request
without the key). No migrations here: the container runs them as an explicit step
(``docker/entrypoint.sh migrate``).
"""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agent_runtime.settings")
django.setup(set_prefix=False)  # as django.core.asgi.get_asgi_application does

from agent_runtime.checks import validate_settings  # noqa: E402
from agent_runtime.handler import RuntimeASGIHandler  # noqa: E402
from agent_runtime.lifespan import Lifespan  # noqa: E402
from agent_runtime.request_signals import request_started_trimmed  # noqa: E402
from streaming.runs.memory import freeze_startup_objects  # noqa: E402

# Refuse to serve with placeholder secrets or a broken configuration.
validate_settings()
request_started_trimmed()

application = Lifespan(RuntimeASGIHandler())

# Out of the garbage collector's walks: the full collection after runs end sees only what
# requests made (streaming.runs.memory).
freeze_startup_objects()
