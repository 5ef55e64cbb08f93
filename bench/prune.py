"""Benchmark ``session_prune`` on PostgreSQL: time and peak memory to prune 1,000,000 messages.

    uv run python bench/prune.py [--url postgres://postgres@127.0.0.1:5432/postgres]
                                 [--sessions 10000] [--messages 100] [--batch-size 200]

Creates the scratch database ``agent_runtime_bench_prune`` (dropped at the end unless
``--keep``), migrates it, bulk-loads ``--sessions`` idle sessions of ``--messages`` messages
each with ``INSERT ... SELECT generate_series`` (plus 10% recent sessions and a few idle ones
with a running turn, which must survive), then times a dry run and the prune. Prints figures;
it asserts only that the right rows went.
"""

import argparse
import os
import resource
import statistics
import sys
import time
import tracemalloc
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

BENCH_DB = "agent_runtime_bench_prune"
RUNNING = 10  # idle sessions with a running turn: kept


def database_url(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


def recreate(url: str, *, drop_only: bool = False) -> None:
    with psycopg.connect(database_url(url, "postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')
        if not drop_only:
            conn.execute(f'CREATE DATABASE "{BENCH_DB}"')


def load(cursor, *, sessions: int, messages: int) -> None:  # type: ignore[no-untyped-def]
    """Idle sessions (40 days), recent ones (1 hour) and idle ones with a running turn."""
    recent = max(sessions // 10, 1)
    cursor.execute(
        """
        INSERT INTO agent_sessions_session
            (session_id, created_at, updated_at, last_activity_at, last_seq,
             active_turn_id, active_turn_expires_at)
        SELECT 'bench-' || g,
               now() - interval '41 days',
               now() - interval '40 days',
               now() - interval '40 days' - g * interval '1 second',
               %(messages)s,
               CASE WHEN g <= %(running)s THEN gen_random_uuid() END,
               CASE WHEN g <= %(running)s THEN now() + interval '1 hour' END
        FROM generate_series(1, %(total)s) AS g
        """,
        {"messages": messages, "running": RUNNING, "total": sessions + RUNNING},
    )
    cursor.execute(
        """
        INSERT INTO agent_sessions_session
            (session_id, created_at, updated_at, last_activity_at, last_seq)
        SELECT 'recent-' || g, now(), now(), now() - interval '1 hour', %(messages)s
        FROM generate_series(1, %(recent)s) AS g
        """,
        {"messages": messages, "recent": recent},
    )
    # About 200 characters a message; assistant messages carry usage and a model name.
    cursor.execute(
        """
        INSERT INTO agent_sessions_message
            (session_id, seq, role, content, status, model, finish_reason, error_code,
             tool_name, created_at, prompt_tokens, completion_tokens, total_tokens)
        SELECT s.id, g,
               CASE WHEN g %% 2 = 1 THEN 'user' ELSE 'assistant' END,
               repeat(md5(s.id::text || '-' || g::text), 6),
               'complete',
               CASE WHEN g %% 2 = 0 THEN 'dev-llm' ELSE '' END,
               CASE WHEN g %% 2 = 0 THEN 'stop' ELSE '' END,
               '', '', s.last_activity_at,
               CASE WHEN g %% 2 = 0 THEN 40 END,
               CASE WHEN g %% 2 = 0 THEN 50 END,
               CASE WHEN g %% 2 = 0 THEN 90 END
        FROM agent_sessions_session s CROSS JOIN generate_series(1, %(messages)s) AS g
        """,
        {"messages": messages},
    )


def run(args: argparse.Namespace, connection, session_prune) -> float:  # type: ignore[no-untyped-def]
    """Load the tables afresh, then a dry run and the prune; print figures, return its time."""
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE agent_sessions_message, agent_sessions_session RESTART IDENTITY")
        load(cursor, sessions=args.sessions, messages=args.messages)
        cursor.execute("VACUUM ANALYZE agent_sessions_session")
        cursor.execute("VACUUM ANALYZE agent_sessions_message")
        # Flush the load's dirty pages now, so that its checkpoint does not land in the prune.
        cursor.execute("CHECKPOINT")
        cursor.execute("SELECT count(*) FROM agent_sessions_message")
        total_messages = cursor.fetchone()[0]
    print(f"loaded {total_messages:,} messages in {time.perf_counter() - started:.1f}s")

    started = time.perf_counter()
    dry = session_prune(older_than=timedelta(days=30), dry_run=True)
    print(
        f"  dry run: would delete {dry.sessions:,} sessions, {dry.messages:,} messages, "
        f"keep {dry.kept_running} running; {time.perf_counter() - started:.2f}s"
    )

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    started = time.perf_counter()
    result = session_prune(older_than=timedelta(days=30), batch_size=args.batch_size)
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    assert (result.sessions, result.messages) == (args.sessions, args.sessions * args.messages)
    assert result.kept_running == RUNNING
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM agent_sessions_message")
        assert cursor.fetchone()[0] == total_messages - result.messages
    print(
        f"  prune: deleted {result.sessions:,} sessions and {result.messages:,} messages in "
        f"{elapsed:.1f}s ({result.messages / elapsed:,.0f} messages/s; {result.batches} "
        f"transactions, {elapsed / result.batches * 1000:.0f} ms each)"
    )
    print(
        f"  peak Python memory during the prune (tracemalloc): {peak / 1024:,.0f} KiB; "
        f"process max RSS {rss_before / 1024:,.0f} MiB before, {rss_after / 1024:,.0f} MiB after"
    )
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--url",
        default=os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres"),
        help="any database on the PostgreSQL server to use (the scratch one is created there)",
    )
    parser.add_argument("--sessions", type=int, default=10_000, help="idle sessions to prune")
    parser.add_argument("--messages", type=int, default=100, help="messages per session")
    parser.add_argument("--batch-size", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=1, help="load and prune this many times")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = parser.parse_args()

    recreate(args.url)
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "agent_runtime.settings",
            "AGENT_RUNTIME__DATABASE_URL": database_url(args.url, BENCH_DB),
            "AGENT_RUNTIME__LOG_LEVEL": "WARNING",
        }
    )
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from sessions.services import session_prune

    try:
        call_command("migrate", verbosity=0)
        print(
            f"PostgreSQL {connection.pg_version // 10000}; {args.sessions:,} idle sessions of "
            f"{args.messages} messages to prune, batches of {args.batch_size} sessions"
        )
        timings = [run(args, connection, session_prune) for _ in range(args.repeat)]
        if args.repeat > 1:
            print(
                f"median prune time over {args.repeat} runs: {statistics.median(timings):.1f}s "
                f"(min {min(timings):.1f}s, max {max(timings):.1f}s)"
            )
    finally:
        connection.close()
        if not args.keep:
            recreate(args.url, drop_only=True)


if __name__ == "__main__":
    main()
