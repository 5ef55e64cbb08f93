"""Admin sessions live on the server: logging out, or a password change, ends them."""

import pytest
from django.apps import apps
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client

pytestmark = pytest.mark.django_db

PASSWORD = "correct-horse-battery-staple"


def logged_in_cookie(user: User) -> str:
    """Log in through the admin's own form; the session cookie it sets."""
    client = Client()
    response = client.post(
        "/admin/login/?next=/admin/", {"username": user.username, "password": PASSWORD}
    )
    assert response.status_code == 302
    assert response["Location"] == "/admin/"
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def admin_home_with(cookie: str) -> int | str:
    """What ``/admin/`` answers a client presenting only this session cookie."""
    client = Client()
    client.cookies[settings.SESSION_COOKIE_NAME] = cookie
    response = client.get("/admin/")
    return response.status_code if response.status_code != 302 else response["Location"]


@pytest.fixture
def staff() -> User:
    return User.objects.create_superuser("admin", "admin@example.com", PASSWORD)


def test_a_cookie_works_until_logout_and_is_refused_when_replayed_after_it(staff: User) -> None:
    cookie = logged_in_cookie(staff)
    assert admin_home_with(cookie) == 200

    client = Client()
    client.cookies[settings.SESSION_COOKIE_NAME] = cookie
    assert client.post("/admin/logout/").status_code == 200

    assert admin_home_with(cookie) == "/admin/login/?next=/admin/"


def test_a_password_change_ends_the_sessions_opened_before_it(staff: User) -> None:
    cookie = logged_in_cookie(staff)
    staff.set_password("another-long-password-42")
    staff.save()
    assert admin_home_with(cookie) == "/admin/login/?next=/admin/"


def test_contrib_sessions_and_the_conversation_app_coexist() -> None:
    # The collision is the module name "sessions", not the label: both apps are installed.
    assert apps.get_app_config("sessions").name == "django.contrib.sessions"
    assert apps.get_app_config("agent_sessions").name == "sessions"
