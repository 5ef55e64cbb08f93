"""The one django-environ ``env`` every setting is read from: ``AGENT_RUNTIME__`` names, from the
environment or a ``.env`` file beside ``manage.py`` (real environment variables win)."""

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.FileAwareEnv()
env.prefix = "AGENT_RUNTIME__"
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)
