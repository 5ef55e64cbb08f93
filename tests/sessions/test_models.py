"""The lease rule is written once: the queryset's form and the statements' SQL agree."""

import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from sessions.models import LEASE_HELD_SQL, Session

pytestmark = pytest.mark.django_db


def _sessions(now):  # type: ignore[no-untyped-def]
    cases = {
        "idle": (None, None),
        "held, no expiry": (uuid.uuid4(), None),
        "held": (uuid.uuid4(), now + timedelta(seconds=30)),
        "expired": (uuid.uuid4(), now - timedelta(seconds=30)),
        "expires now": (uuid.uuid4(), now),
        "stale expiry, no turn": (None, now + timedelta(seconds=30)),
    }
    for name, (turn_id, expires) in cases.items():
        Session.objects.create(
            session_id=name.replace(" ", "-").replace(",", ""),
            last_activity_at=now,
            active_turn_id=turn_id,
            active_turn_expires_at=expires,
        )


def test_the_sql_fragment_selects_what_the_queryset_selects() -> None:
    now = timezone.now()
    _sessions(now)
    stamp = Session._meta.get_field("active_turn_expires_at").get_db_prep_value(now, connection)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT session_id FROM {Session._meta.db_table} WHERE {LEASE_HELD_SQL}", [stamp]
        )
        by_sql = {row[0] for row in cursor.fetchall()}
        cursor.execute(
            f"SELECT session_id FROM {Session._meta.db_table} WHERE NOT {LEASE_HELD_SQL}", [stamp]
        )
        free_by_sql = {row[0] for row in cursor.fetchall()}
    held = set(Session.objects.lease_held(now).values_list("session_id", flat=True))
    free = set(Session.objects.lease_free(now).values_list("session_id", flat=True))
    assert held == {"held-no-expiry", "held"}  # written out by hand, not by the code
    assert by_sql == held
    assert free_by_sql == free
    assert held | free == set(Session.objects.values_list("session_id", flat=True))
    annotated = dict(Session.objects.with_lease_held(now).values_list("session_id", "lease_held"))
    assert {name for name, running in annotated.items() if running} == held
