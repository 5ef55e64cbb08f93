"""Test settings: the production settings, fed test values through the environment."""

import hashlib
import os

os.environ.setdefault("AGENT_RUNTIME__INTERNAL_API_KEY", "test-internal-key-0123456789")
os.environ.setdefault("AGENT_RUNTIME__SECRET_KEY", "test-secret-key-0123456789abcdef0123456789")

from agent_runtime.settings import *  # noqa: F403
from agent_runtime.settings import BASE_DIR, DATABASES

# One test database per checkout, so that several checkouts can run the suite at once; the
# SQLite one is a file because the E2E tests' server processes open it too.
_checkout = hashlib.sha1(str(BASE_DIR).encode()).hexdigest()[:8]
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / f".test-{_checkout}.sqlite3")}
else:
    DATABASES["default"]["TEST"] = {"NAME": f"test_agent_runtime_{_checkout}"}
