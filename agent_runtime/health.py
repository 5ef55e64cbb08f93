"""Liveness with a real database round trip."""

from typing import Literal

from django.db import DatabaseError, connection
from pydantic import BaseModel


class HealthBody(BaseModel):
    """``GET /health``: 200 when healthy, 503 when the database cannot be reached."""

    status: Literal["healthy", "unhealthy"]
    service: Literal["agent-runtime"] = "agent-runtime"
    version: str
    database: Literal["ok", "unavailable"]


def database_ping() -> bool:
    """True when the default database answers a trivial query."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError:
        return False
    return True
