"""``manage.py prune_sessions --older-than <age> [--dry-run] [--batch-size N]``."""

import re
import time
from datetime import UTC, datetime, timedelta

from django.core import checks
from django.core.management.base import BaseCommand, CommandError, CommandParser

from sessions.records import PruneResult
from sessions.services import DEFAULT_PRUNE_BATCH, session_prune

_AGE = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$", re.IGNORECASE)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "": "days"}
#: At verbosity 1, a progress line at most this often (seconds); every batch at verbosity 2.
PROGRESS_EVERY = 5.0


def parse_age(text: str) -> timedelta:
    """``90s``, ``30m``, ``12h``, ``30d``; a bare number means days. Positive and representable."""
    match = _AGE.match(text)
    if match is None:
        raise CommandError(
            f"--older-than {text!r}: write a whole number with an optional unit, "
            "s, m, h or d (a bare number means days), e.g. 90s, 30m, 12h, 30d."
        )
    number, unit = int(match[1]), match[2].lower()
    if number == 0:
        raise CommandError("--older-than must be more than zero.")
    try:
        age = timedelta(**{_UNITS[unit]: number})
        datetime.now(UTC) - age  # the cutoff must be a representable date
    except OverflowError:
        raise CommandError(f"--older-than {text!r} is too large.") from None
    return age


class Command(BaseCommand):
    help = (
        "Delete the sessions, and their messages, with no activity for longer than --older-than; "
        "never a session in which a turn is running."
    )
    # The models' checks only: pruning serves nothing, so it needs neither the internal key
    # nor the secret key (agent_runtime.checks), and runs from cron with the database URL alone.
    requires_system_checks = [checks.Tags.models]

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than",
            required=True,
            metavar="AGE",
            help="Idle time: 90s, 30m, 12h or 30d; a bare number means days.",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Change nothing; report what would go."
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=DEFAULT_PRUNE_BATCH,
            metavar="N",
            help=f"Sessions deleted per transaction (default {DEFAULT_PRUNE_BATCH}).",
        )

    def handle(self, *args: object, **options: object) -> None:
        age = parse_age(str(options["older_than"]))
        batch_size = options["batch_size"]
        assert isinstance(batch_size, int)
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        verbosity = int(options["verbosity"])  # type: ignore[call-overload]
        started = time.monotonic()
        last_report = started

        def report(progress: PruneResult) -> None:
            nonlocal last_report
            now = time.monotonic()
            if verbosity >= 2 or (verbosity == 1 and now - last_report >= PROGRESS_EVERY):
                last_report = now
                self.stdout.write(
                    f"  batch {progress.batches}: {progress.sessions} sessions, "
                    f"{progress.messages} messages deleted so far ({now - started:.1f}s)"
                )

        result = session_prune(
            older_than=age,
            dry_run=bool(options["dry_run"]),
            batch_size=batch_size,
            on_batch=report,
        )
        cutoff = f"idle since before {result.cutoff:%Y-%m-%d %H:%M:%S} UTC"
        kept = (
            f"; {result.kept_running} idle session(s) kept: a turn is running in them"
            if result.kept_running
            else ""
        )
        if result.dry_run:
            self.stdout.write(
                self.style.WARNING(
                    f"Dry run: would delete {result.sessions} sessions and "
                    f"{result.messages} messages {cutoff}{kept}. Nothing was changed."
                )
            )
        else:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Deleted {result.sessions} sessions and {result.messages} messages {cutoff} "
                    f"in {result.batches} batch(es), {time.monotonic() - started:.1f}s{kept}."
                )
            )
