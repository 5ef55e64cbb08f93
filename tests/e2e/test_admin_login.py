"""The admin's login: failed logins are throttled per username and per client address, and a
flood of them does not hold up the API's turns (issue 18, item 1).

Client addresses are set with ``X-Forwarded-For``, which the server believes from loopback
(``FORWARDED_ALLOW_IPS``' default): only header values, no traffic goes to them.
"""

import asyncio
import re
import statistics
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.servers import DevLLM, Runtime

pytestmark = pytest.mark.e2e

LOGIN = "/admin/login/"
FAILURE_LIMIT = 3


@pytest.fixture(scope="module")
def admin_server(runtime_factory) -> Runtime:  # type: ignore[no-untyped-def]
    return runtime_factory(serve=True, admin_login_failure_limit=FAILURE_LIMIT)


@pytest.fixture
def served(admin_server: Runtime, devllm: DevLLM, transactional_db: None) -> Runtime:
    return admin_server


def _login_form(page: httpx.Response) -> tuple[str, str]:
    """The CSRF cookie and the form's token (sent by hand: the cookie is ``Secure``)."""
    cookie = re.search(r"csrftoken=([^;]+)", page.headers["set-cookie"])
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert cookie, page.headers
    assert token, page.text[:500]
    return cookie.group(1), token.group(1)


def _login(
    client: httpx.Client, username: str, address: str, password: str = "wrong"
) -> httpx.Response:
    headers = {"X-Forwarded-For": address}
    cookie, token = _login_form(client.get(LOGIN, headers=headers))
    return client.post(
        LOGIN,
        data={"username": username, "password": password, "csrfmiddlewaretoken": token},
        headers={**headers, "Cookie": f"csrftoken={cookie}", "Referer": f"{client.base_url}"},
    )


def test_the_nth_failed_login_is_locked_out_per_username_and_per_address(served: Runtime) -> None:
    with httpx.Client(base_url=served.url, timeout=30) as client:
        # One username from ever-new addresses: locked out at the limit, whatever the address.
        for n in range(FAILURE_LIMIT - 1):
            assert _login(client, "alice", f"198.51.100.{n}").status_code == 200  # the form again
        locked = _login(client, "alice", "198.51.100.200")
        assert locked.status_code == 429
        assert "too many" in locked.text.lower()
        # Another username from a fresh address is not.
        assert _login(client, "bob", "198.51.100.201").status_code == 200

        # One address with ever-new usernames: locked out at the limit, whatever the username.
        for n in range(FAILURE_LIMIT - 1):
            assert _login(client, f"user{n}", "203.0.113.7").status_code == 200
        assert _login(client, "carol", "203.0.113.7").status_code == 429
        # Another address is not.
        assert _login(client, "dave", "203.0.113.8").status_code == 200


def test_a_locked_out_login_is_refused_even_with_the_right_password(served: Runtime) -> None:
    from django.contrib.auth.models import User

    User.objects.create_superuser("root", "root@example.com", "right-password")
    with httpx.Client(base_url=served.url, timeout=30) as client:
        for n in range(FAILURE_LIMIT):
            _login(client, "root", f"192.0.2.{n}")
        answer = _login(client, "root", "192.0.2.100", password="right-password")
        assert answer.status_code == 429
        assert "sessionid" not in answer.headers.get("set-cookie", "")


# --- A flood of logins while turns stream ---------------------------------------------------


def _time_to_first_byte(client: httpx.Client, n: int) -> float:
    started = time.perf_counter()
    with client.stream(
        "POST", "/agent/message/stream", json={"session_id": f"ttfb-{n}", "content": "hi"}
    ) as response:
        assert response.status_code == 200
        chunks = response.iter_raw()
        next(chunks)
        first = time.perf_counter() - started
        for _ in chunks:  # the rest of the turn
            pass
    return first


def _median_ttfb(client: httpx.Client, first: int, *, turns: int = 7, seconds: float = 0) -> float:
    """The median of at least ``turns`` turns' times to first byte, measured over at least
    ``seconds``."""
    times: list[float] = []
    until = time.monotonic() + seconds
    while len(times) < turns or time.monotonic() < until:
        times.append(_time_to_first_byte(client, first + len(times)))
    return statistics.median(times)


@pytest.fixture
def flood(served: Runtime) -> Iterator[tuple[threading.Event, dict[str, int]]]:
    """50 clients posting wrong passwords to the login form, each as fast as it is answered,
    once the test sets the ``go`` event it is given with the counts.

    Each post has a new username and a new address, as a distributed guesser's would: the
    throttling never stops one, so every post has its password hashed.
    """
    counts = {"sent": 0, "answered": 0, "errors": 0}
    go, stop = threading.Event(), threading.Event()

    async def client_loop(i: int) -> None:
        async with httpx.AsyncClient(base_url=served.url, timeout=120) as client:
            page = await client.get(LOGIN, headers={"X-Forwarded-For": f"10.{i}.0.1"})
            cookie, token = _login_form(page)
            await asyncio.to_thread(go.wait)
            n = 0
            while True:
                n += 1
                counts["sent"] += 1
                try:
                    answer = await client.post(
                        LOGIN,
                        data={
                            "username": f"flood-{i}-{n}",
                            "password": "wrong",
                            "csrfmiddlewaretoken": token,
                        },
                        headers={
                            "X-Forwarded-For": f"10.{i}.{n // 250 % 250}.{n % 250 + 1}",
                            "Cookie": f"csrftoken={cookie}",
                        },
                    )
                    assert answer.status_code == 200  # the form again: a wrong password
                    counts["answered"] += 1
                except (httpx.HTTPError, AssertionError):
                    counts["errors"] += 1

    async def run() -> None:
        clients = [asyncio.create_task(client_loop(i)) for i in range(50)]
        await asyncio.to_thread(stop.wait)
        for task in clients:  # not waiting for the queued logins' answers
            task.cancel()
        await asyncio.gather(*clients, return_exceptions=True)

    thread = threading.Thread(target=asyncio.run, args=(run(),), daemon=True)
    thread.start()
    yield go, counts
    go.set()
    stop.set()
    thread.join(timeout=300)


def test_a_login_flood_does_not_hold_up_a_turns_first_byte(
    served: Runtime, flood: tuple[threading.Event, dict[str, int]]
) -> None:
    go, counts = flood
    with httpx.Client(
        base_url=served.url, timeout=30, headers={"X-Internal-Auth": served.key}
    ) as client:
        _time_to_first_byte(client, 0)  # the first turn opens the database connection
        quiet = _median_ttfb(client, 100)
        go.set()
        deadline = time.monotonic() + 60
        while counts["sent"] < 50 and time.monotonic() < deadline:
            time.sleep(0.1)
        answered_before = counts["answered"]
        flooded = _median_ttfb(client, 200, seconds=8)
        in_flight = counts["sent"] - counts["answered"] - counts["errors"]
        # The flood's logins are served, if slowly: the admin's thread runs at the lowest
        # priority, so on a machine busy with other work it may get no CPU within the window.
        deadline = time.monotonic() + 120
        while counts["answered"] == answered_before and time.monotonic() < deadline:
            time.sleep(0.2)
    print(f"time to first byte: quiet {quiet * 1000:.1f} ms, flooded {flooded * 1000:.1f} ms")
    # The flood ran while the turns did: most clients were waiting for an answer, and their
    # logins were hashed and answered.
    assert counts["answered"] > answered_before, counts
    assert in_flight >= 40, counts
    assert counts["errors"] == 0, counts
    assert flooded <= 3 * quiet, (quiet, flooded)
