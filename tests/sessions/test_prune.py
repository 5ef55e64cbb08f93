"""Pruning idle sessions: ``session_prune`` and ``manage.py prune_sessions``."""

import os
import subprocess
import sys
import uuid
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from sessions import services
from sessions.models import Message, Session
from sessions.records import PruneResult
from sessions.services import deletion
from tests.servers import BASE_DIR
from tests.sessions.factories import make_session

pytestmark = pytest.mark.django_db


def prune(*args: str) -> str:
    out = StringIO()
    call_command("prune_sessions", *args, stdout=out)
    return out.getvalue()


def remaining() -> set[str]:
    return set(Session.objects.values_list("session_id", flat=True))


@pytest.fixture
def frozen_now(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    now = timezone.now().replace(microsecond=500_000)
    monkeypatch.setattr(timezone, "now", lambda: now)
    return now


def test_the_age_boundary_is_strict(frozen_now) -> None:  # type: ignore[no-untyped-def]
    hour = timedelta(hours=1)
    make_session("just-older", last_activity_at=frozen_now - hour - timedelta(microseconds=1))
    make_session("exactly", last_activity_at=frozen_now - hour)
    make_session("younger", last_activity_at=frozen_now - hour + timedelta(seconds=1))
    output = prune("--older-than", "1h")
    assert remaining() == {"exactly", "younger"}
    assert "Deleted 1 sessions and 0 messages" in output


@pytest.mark.parametrize(
    ("age", "idle"),
    [
        ("90s", timedelta(seconds=90)),
        ("30m", timedelta(minutes=30)),
        ("12h", timedelta(hours=12)),
        ("30d", timedelta(days=30)),
        ("7", timedelta(days=7)),
        (" 2D ", timedelta(days=2)),
    ],
)
def test_every_age_unit(frozen_now, age: str, idle: timedelta) -> None:  # type: ignore[no-untyped-def]
    make_session("gone", last_activity_at=frozen_now - idle - timedelta(seconds=1))
    make_session("kept", last_activity_at=frozen_now - idle + timedelta(seconds=1))
    prune("--older-than", age)
    assert remaining() == {"kept"}


def test_deletes_the_messages_with_their_sessions_and_nothing_else() -> None:
    old = timezone.now() - timedelta(days=40)
    make_session("old-a", last_activity_at=old, messages=5)
    make_session("old-b", last_activity_at=old, messages=3)
    make_session("recent", messages=4)
    output = prune("--older-than", "30d")
    assert remaining() == {"recent"}
    assert Message.objects.count() == 4
    assert set(Message.objects.values_list("session__session_id", flat=True)) == {"recent"}
    assert "Deleted 2 sessions and 8 messages" in output


def test_dry_run_changes_nothing_and_says_what_would_go() -> None:
    old = timezone.now() - timedelta(days=40)
    make_session("old-a", last_activity_at=old, messages=5)
    make_session("old-b", last_activity_at=old, messages=3)
    make_session("old-running", last_activity_at=old, messages=2, running=True)
    make_session("recent", messages=4)
    output = prune("--older-than", "30d", "--dry-run")
    assert remaining() == {"old-a", "old-b", "old-running", "recent"}
    assert Message.objects.count() == 14
    assert "Dry run: would delete 2 sessions and 8 messages" in output
    assert "1 idle session(s) kept: a turn is running in them" in output
    assert "Nothing was changed." in output


def test_works_in_batches_with_progress_and_a_total() -> None:
    old = timezone.now() - timedelta(days=2)
    for i in range(7):
        make_session(f"old-{i}", last_activity_at=old + timedelta(seconds=i), messages=2)
    output = StringIO()
    call_command("prune_sessions", "--older-than=1d", "--batch-size=3", verbosity=2, stdout=output)
    assert remaining() == set()
    lines = output.getvalue().splitlines()
    assert [line.split(":")[0].strip() for line in lines[:3]] == ["batch 1", "batch 2", "batch 3"]
    assert "batch 3: 7 sessions, 14 messages deleted so far" in lines[2]
    assert lines[3].startswith("Deleted 7 sessions and 14 messages")
    assert "in 3 batch(es)" in lines[3]


def test_batches_go_oldest_first_with_running_totals() -> None:
    old = timezone.now() - timedelta(days=2)
    for i in range(5):
        make_session(f"old-{i}", last_activity_at=old + timedelta(seconds=i), messages=1)
    after_each: list[tuple[int, set[str]]] = []

    def on_batch(progress: PruneResult) -> None:
        after_each.append((progress.sessions, remaining()))

    result = services.session_prune(older_than=timedelta(days=1), batch_size=2, on_batch=on_batch)
    assert after_each == [
        (2, {"old-2", "old-3", "old-4"}),
        (4, {"old-4"}),
        (5, set()),
    ]
    assert (result.sessions, result.messages, result.batches) == (5, 5, 3)


@pytest.mark.django_db(transaction=True)
def test_each_batch_is_its_own_transaction(monkeypatch: pytest.MonkeyPatch) -> None:
    # Real transactions (no test-wide one around them): a later batch that fails leaves the
    # earlier batches deleted, and its own sessions in place.
    old = timezone.now() - timedelta(days=2)
    for i in range(5):
        make_session(f"old-{i}", last_activity_at=old + timedelta(seconds=i), messages=1)
    delete = deletion._sessions_delete_locked
    calls = []

    def delete_then_fail_the_second_batch(pks):  # type: ignore[no-untyped-def]
        calls.append(pks)
        deleted = delete(pks)
        if len(calls) == 2:
            raise RuntimeError("the database went away")
        return deleted

    monkeypatch.setattr(deletion, "_sessions_delete_locked", delete_then_fail_the_second_batch)
    with pytest.raises(RuntimeError, match="went away"):
        services.session_prune(older_than=timedelta(days=1), batch_size=2)
    assert remaining() == {"old-2", "old-3", "old-4"}
    assert Message.objects.count() == 3


def test_a_session_with_a_running_turn_is_kept() -> None:
    old = timezone.now() - timedelta(days=40)
    make_session("running", last_activity_at=old, messages=2, running=True)
    make_session("crashed", last_activity_at=old, messages=2, lease_expired=True)
    output = prune("--older-than", "30d")
    assert remaining() == {"running"}
    assert Message.objects.filter(session__session_id="running").count() == 2
    assert "Deleted 1 sessions and 2 messages" in output
    assert "1 idle session(s) kept: a turn is running in them" in output


@pytest.mark.parametrize("how", ["lease", "turn_open"])
def test_a_turn_that_starts_after_the_batch_was_read_keeps_its_session(
    monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    old = timezone.now() - timedelta(days=40)
    for name in ("a", "b", "c"):
        make_session(name, last_activity_at=old, messages=1)
    read_batch = deletion.session_prune_batch

    def read_then_start_a_turn(**kwargs):  # type: ignore[no-untyped-def]
        keys = read_batch(**kwargs)
        if keys and Session.objects.filter(session_id="b").exists():
            if how == "lease":  # only the lease: the idle time alone would let it go
                Session.objects.filter(session_id="b").update(
                    active_turn_id=uuid.uuid4(),
                    active_turn_expires_at=timezone.now() + timedelta(seconds=30),
                )
            else:
                services.turn_open(session_id="b", turn_id=uuid.uuid4(), content="still here")
        return keys

    monkeypatch.setattr(deletion, "session_prune_batch", read_then_start_a_turn)
    result = services.session_prune(older_than=timedelta(days=30), batch_size=10)
    assert remaining() == {"b"}
    assert (result.sessions, result.kept_running) == (2, 1)
    assert Message.objects.filter(session__session_id="b").count() == (1 if how == "lease" else 2)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "the following arguments are required: --older-than"),
        (["--older-than", "abc"], "write a whole number with an optional unit"),
        (["--older-than", "1.5h"], "write a whole number"),
        (["--older-than", "-5"], "write a whole number"),
        (["--older-than", "10w"], "write a whole number"),
        (["--older-than", ""], "write a whole number"),
        (["--older-than", "0"], "must be more than zero"),
        (["--older-than", "0s"], "must be more than zero"),
        (["--older-than", "99999999999d"], "is too large"),
        (["--older-than", "999999d"], "is too large"),
        (["--older-than", "1d", "--batch-size", "0"], "--batch-size must be at least 1"),
        (["--older-than", "1d", "--batch-size", "many"], "invalid int value: 'many'"),
    ],
)
def test_bad_arguments_are_clear_command_errors(args: list[str], message: str) -> None:
    make_session("old", last_activity_at=timezone.now() - timedelta(days=400))
    with pytest.raises(CommandError, match=message):
        prune(*args)
    assert remaining() == {"old"}


@pytest.mark.parametrize(
    "kwargs", [{"older_than": timedelta(0)}, {"older_than": timedelta(days=1), "batch_size": 0}]
)
def test_the_service_refuses_nonsense(kwargs: dict) -> None:
    with pytest.raises(ValueError, match="must be"):
        services.session_prune(**kwargs)


@pytest.mark.timeout(300)  # two manage.py processes
def test_the_readmes_dry_run_works_without_the_keys(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A fresh clone has no keys; pruning serves nothing, so it must not need them."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_RUNTIME__")}
    env.update(
        DJANGO_SETTINGS_MODULE="agent_runtime.settings",
        AGENT_RUNTIME__DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        AGENT_RUNTIME__DEBUG="false",
        AGENT_RUNTIME__INTERNAL_API_KEY="",
        AGENT_RUNTIME__SECRET_KEY="",
    )

    def manage(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            env={**env, **extra},
            cwd=BASE_DIR,
            capture_output=True,
            text=True,
            timeout=120,
        )

    migrated = manage("migrate", AGENT_RUNTIME__DEBUG="true")
    assert migrated.returncode == 0, migrated.stderr
    result = manage("prune_sessions", "--older-than", "30d", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "Dry run: would delete 0 sessions and 0 messages" in result.stdout
