"""Liveness with a real database round trip."""

from typing import Literal

from django.db import DatabaseError, connection
from pydantic import BaseModel, Field


class HealthBody(BaseModel):
    """``GET /health``: 200 when healthy, 503 when the database cannot be reached."""

    status: Literal["healthy", "unhealthy"]
    service: Literal["agent-runtime"] = "agent-runtime"
    version: str
    database: Literal["ok", "unavailable"]
    broker: Literal["ok", "unavailable"] = Field(
        description="The event broker (AGENT_RUNTIME__RUN_BROKER). When it is unavailable "
        "turns still run and are stored, but cannot be resumed; the status stays healthy."
    )


def database_ping() -> bool:
    """True when the default database answers a trivial query."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError:
        return False
    return True
